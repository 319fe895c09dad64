//! The finalizer's mailbox: marshal reports finalized blocks here.

use crate::block::ChainBlock;
use commonware_actor::Feedback;
use commonware_consensus::Reporter;
use commonware_consensus::marshal::Update;
use futures::channel::mpsc;

/// Marshal's reporter: forwards updates to the finalizer actor. Unbounded because marshal
/// itself bounds what is outstanding (`max_pending_acks` blocks awaiting acknowledgement).
#[derive(Clone)]
pub(crate) struct Mailbox {
    pub(crate) sender: mpsc::UnboundedSender<Update<ChainBlock>>,
}

impl Reporter for Mailbox {
    type Activity = Update<ChainBlock>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        match self.sender.unbounded_send(activity) {
            Ok(()) => Feedback::Ok,
            Err(_) => Feedback::Closed,
        }
    }
}
