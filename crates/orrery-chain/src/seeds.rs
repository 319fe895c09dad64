//! The threshold seeds of recent views, captured from consensus certificates.
//!
//! Consensus reports every notarization and finalization it recovers or receives; each carries
//! the threshold seed of its view (a BLS threshold signature over the round). A proposer needs
//! the seed of its parent's view to fill `block.seed`, and a verifier checks the proof in the
//! block directly (it does not need this store). At most [`MAX_SEEDS`] views are kept.

use crate::block::ViewSeed;
use commonware_actor::Feedback;
use commonware_consensus::simplex::scheme::bls12381_threshold::vrf::Seedable as _;
use commonware_consensus::simplex::types::Activity;
use commonware_consensus::types::View;
use commonware_consensus::{Reporter, Viewable as _};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Views of seeds kept: the parent of a proposal is at most a few views back (views skipped
/// by nullification in between), and 1,024 covers minutes of skipped views.
pub const MAX_SEEDS: usize = 1_024;

/// Shared store of seeds by view.
#[derive(Clone, Default)]
pub struct Seeds {
    inner: Arc<Mutex<BTreeMap<View, ViewSeed>>>,
    notify: Arc<Notify>,
}

impl Seeds {
    /// Record a seed.
    pub fn insert(&self, seed: ViewSeed) {
        {
            let mut map = crate::lock::lock(&self.inner);
            map.insert(seed.view(), seed);
            while map.len() > MAX_SEEDS {
                map.pop_first();
            }
        }
        self.notify.notify_waiters();
    }

    /// The seed of `view`, if known.
    pub fn get(&self, view: View) -> Option<ViewSeed> {
        crate::lock::lock(&self.inner).get(&view).cloned()
    }

    /// The seed of `view`, waiting until it arrives (the caller bounds the wait).
    pub async fn wait(&self, view: View) -> ViewSeed {
        loop {
            let notified = self.notify.notified();
            if let Some(seed) = self.get(view) {
                return seed;
            }
            notified.await;
        }
    }
}

/// A reporter in front of marshal's wrapper that records the seed of each certificate it
/// sees, then forwards everything.
#[derive(Clone)]
pub struct SeedReporter<R> {
    /// Where seeds go.
    pub seeds: Seeds,
    /// The reporter the activity is forwarded to.
    pub inner: R,
}

impl<R> Reporter for SeedReporter<R>
where
    R: Reporter<Activity = Activity<crate::engine::Scheme, crate::block::BlockDigest>>,
{
    type Activity = Activity<crate::engine::Scheme, crate::block::BlockDigest>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        match &activity {
            Activity::Notarization(n) | Activity::Certification(n) => self.seeds.insert(n.seed()),
            Activity::Finalization(f) => self.seeds.insert(f.seed()),
            _ => {}
        }
        self.inner.report(activity)
    }
}
