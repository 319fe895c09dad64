//! Which committee members this validator hears from.
//!
//! Every live member votes in every view, so the distinct senders among the last
//! [`WINDOW`] vote messages are the members this node can currently hear. A crashed or
//! partitioned member drops out after a few views' worth of votes from the others. No clock is
//! involved, so the count is the same in the deterministic runtime as in production.

use crate::api::Live;
use commonware_p2p::{Message, Receiver};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Vote messages remembered: with 3 votes per view per member, 256 covers about 20 views of a
/// 4-member committee and 1 view of a 100-member one.
pub const WINDOW: usize = 256;

/// A vote receiver that counts distinct recent senders into [`Live::peers_connected`].
#[derive(Debug)]
pub struct HeardReceiver<R: Receiver> {
    inner: R,
    me: R::PublicKey,
    live: Arc<Live>,
    recent: VecDeque<R::PublicKey>,
    counts: HashMap<R::PublicKey, usize>,
}

impl<R: Receiver> HeardReceiver<R> {
    /// Wrap `inner`.
    pub fn new(inner: R, me: R::PublicKey, live: Arc<Live>) -> Self {
        HeardReceiver {
            inner,
            me,
            live,
            recent: VecDeque::with_capacity(WINDOW),
            counts: HashMap::new(),
        }
    }

    fn heard(&mut self, from: &R::PublicKey) {
        if *from == self.me {
            return;
        }
        self.recent.push_back(from.clone());
        *self.counts.entry(from.clone()).or_insert(0) += 1;
        if self.recent.len() > WINDOW
            && let Some(old) = self.recent.pop_front()
            && let Some(c) = self.counts.get_mut(&old)
        {
            *c -= 1;
            if *c == 0 {
                self.counts.remove(&old);
            }
        }
        self.live
            .peers_connected
            .store(self.counts.len(), Ordering::Relaxed);
    }
}

impl<R: Receiver> Receiver for HeardReceiver<R> {
    type Error = R::Error;
    type PublicKey = R::PublicKey;

    async fn recv(&mut self) -> Result<Message<Self::PublicKey>, Self::Error> {
        let message = self.inner.recv().await?;
        self.heard(&message.0);
        Ok(message)
    }

    fn capacity(&self) -> std::num::NonZeroUsize {
        self.inner.capacity()
    }
}
