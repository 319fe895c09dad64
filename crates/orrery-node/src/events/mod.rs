//! The live block stream: every finalized block, as a server-sent event `block` carrying a
//! [`BlockEvent`] JSON, fanned out to every connected client.
//!
//! Each client has its own queue of at most `event_buffer_blocks` messages. Publishing never
//! waits: a client whose queue is full is disconnected (its stream ends) and counted in
//! `event_clients_dropped_total`, so one slow reader can neither grow the node's memory nor
//! slow the others. At most `max_event_clients` are served at once.

use crate::backend::Finalized;
use crate::index::receipt_view;
use crate::metrics::Metrics;
use orrery_client::api::BlockEvent;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The name of every event the stream sends.
pub const BLOCK_EVENT_NAME: &str = "block";

/// The OpenAPI schema of one server-sent event of the stream, as OpenAPI 3.1 describes an
/// event stream (one schema per event): `event: block`, and `data` a JSON [`BlockEvent`].
/// The `contentSchema` that names `BlockEvent` is added by [`crate::api::openapi_document`]
/// (utoipa cannot write it).
pub struct BlockStreamEvent;

impl utoipa::PartialSchema for BlockStreamEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let mut data = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A BlockEvent, as JSON."))
            .build();
        data.content_media_type = "application/json".to_string();
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("One server-sent event: a finalized block."))
            .property(
                "event",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([BLOCK_EVENT_NAME])),
            )
            .property("data", data)
            .required("event")
            .required("data")
            .into()
    }
}

impl utoipa::ToSchema for BlockStreamEvent {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("BlockStreamEvent")
    }
}

/// The fan-out hub.
#[derive(Debug)]
pub struct EventHub {
    clients: Mutex<Vec<mpsc::Sender<Arc<str>>>>,
    buffer: usize,
    max_clients: usize,
}

impl EventHub {
    /// A hub with `buffer` messages per client and at most `max_clients` clients.
    pub fn new(buffer: usize, max_clients: usize) -> EventHub {
        EventHub {
            clients: Mutex::new(Vec::new()),
            buffer,
            max_clients,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::Sender<Arc<str>>>> {
        match self.clients.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Register a client; `None` if the hub is full.
    pub fn subscribe(&self) -> Option<mpsc::Receiver<Arc<str>>> {
        let mut clients = self.lock();
        clients.retain(|c| !c.is_closed());
        if clients.len() >= self.max_clients {
            return None;
        }
        let (tx, rx) = mpsc::channel(self.buffer);
        clients.push(tx);
        Some(rx)
    }

    /// Disconnect every client (their streams end), e.g. at shutdown.
    pub fn close(&self) {
        self.lock().clear();
    }

    /// Clients connected.
    pub fn clients(&self) -> usize {
        self.lock().len()
    }

    /// Send `message` to every client; drop the ones that are full or gone. Returns how many
    /// were dropped for being slow.
    pub fn publish(&self, message: Arc<str>) -> usize {
        let mut slow = 0;
        self.lock().retain(|c| match c.try_send(message.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                slow += 1;
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        slow
    }

    /// Publish a finalized block and update the client metrics.
    pub fn publish_block(&self, f: &Finalized, metrics: &Metrics) {
        let json = serde_json::to_string(&block_event(f)).unwrap_or_default();
        let slow = self.publish(json.into());
        metrics.event_clients_dropped.inc_by(slow as u64);
        metrics.event_clients.set(self.clients() as i64);
    }
}

/// The stream message for a block.
pub fn block_event(f: &Finalized) -> BlockEvent {
    let mut events: Vec<serde_json::Value> = f
        .receipts
        .iter()
        .flat_map(|r| receipt_view(r).events)
        .collect();
    events.extend(f.events.iter().filter_map(|e| serde_json::to_value(e).ok()));
    BlockEvent {
        height: f.block.height,
        hash: f.block_hash,
        time_ms: f.block.time_ms,
        tx_count: f.block.txs.len() as u32,
        state_root: f.state_root,
        events,
    }
}

#[cfg(test)]
mod tests;
