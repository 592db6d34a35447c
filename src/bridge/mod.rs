//! The bridge core: the accounts, and the one path every event and operation
//! takes. Backend events get registry IDs and go onto the bus (`ingest`);
//! operations from any consumer (WebSocket client or wasm bot) resolve their IDs
//! (`accounts`), pass the caller's permissions (`permissions`), have their
//! chain checked (`outgoing`), act on the account and are audited on the bus
//! (`execute`, and `sim` for the operations only the simulated world has).

mod accounts;
mod execute;
mod ingest;
mod outgoing;
pub mod pacer;
mod permissions;
mod sim;

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use parking_lot::RwLock;

use self::pacer::Pacer;
pub use self::permissions::{Caller, CallerKind, Permissions, Scope};
use crate::backend::{Backend, EventSink};
use crate::bus::Bus;
use crate::media::MediaPolicy;
use crate::metrics::Metrics;
use crate::registry::{Clock, Registry};
use crate::schema::AccountId;

pub struct Bridge {
    registry: Arc<Registry>,
    bus: Arc<Bus>,
    clock: Arc<dyn Clock>,
    media: MediaPolicy,
    accounts: RwLock<BTreeMap<AccountId, Arc<dyn Backend>>>,
    /// Each account's send pacer.
    pacers: RwLock<BTreeMap<AccountId, Arc<Pacer>>>,
    metrics: Metrics,
}

impl Bridge {
    pub fn new(registry: Arc<Registry>, bus: Arc<Bus>, clock: Arc<dyn Clock>, media: MediaPolicy) -> Arc<Self> {
        Arc::new(Self {
            registry,
            bus,
            clock,
            media,
            accounts: RwLock::new(BTreeMap::new()),
            pacers: RwLock::new(BTreeMap::new()),
            metrics: Metrics::default(),
        })
    }

    pub fn bus(&self) -> &Arc<Bus> {
        &self.bus
    }

    /// What `/metrics` counts as it happens.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Where backends report events; holds the bridge weakly.
    pub fn sink(self: &Arc<Self>) -> EventSink {
        let bridge: Weak<Self> = Arc::downgrade(self);
        Arc::new(move |account, event| bridge.upgrade().map(|b| b.ingest(account, event)).unwrap_or(0))
    }

    fn now_s(&self) -> i64 {
        (self.clock.now_ms() / 1000) as i64
    }
}
