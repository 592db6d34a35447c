//! The accounts the bridge acts for, and the registry IDs an operation names,
//! resolved to what they stand for (or to the error code the protocol promises).

use std::sync::Arc;

use super::Bridge;
use super::pacer::{Pacer, PacingConfig};
use crate::backend::Backend;
use crate::registry::{Handle, IdKind, LookupError, MessageRef, RequestInfo, RequestKind, SourceInfo};
use crate::schema::{AccountId, ErrorCode, OpError, ReceiptId, ReplyKey, RequestId, SourceId};

pub(super) fn lookup_error(kind: IdKind, e: LookupError) -> OpError {
    use ErrorCode::*;
    let (code, what) = match (kind, e) {
        (IdKind::Source, LookupError::Unknown) => (UnknownMessage, "message source"),
        (IdKind::Source, LookupError::Expired) => (ExpiredMessage, "message source"),
        (IdKind::ReplyKey, LookupError::Unknown) => (UnknownReplyKey, "reply key"),
        (IdKind::ReplyKey, LookupError::Expired) => (ExpiredReplyKey, "reply key"),
        (IdKind::Receipt, LookupError::Unknown) => (UnknownReceipt, "receipt"),
        (IdKind::Receipt, LookupError::Expired) => (ExpiredReceipt, "receipt"),
        (IdKind::Request, LookupError::Unknown) => (UnknownRequest, "request"),
        (IdKind::Request, LookupError::Expired) => (ExpiredRequest, "request"),
    };
    OpError::new(code, format!("{what}: {e}"))
}

impl Bridge {
    /// Adds an account that sends unpaced (the sim world's default).
    pub fn add_account(&self, backend: Arc<dyn Backend>) {
        self.add_paced_account(backend, PacingConfig::OFF);
    }

    /// Adds an account whose messages go through a pacer with `pacing`.
    pub fn add_paced_account(&self, backend: Arc<dyn Backend>, pacing: PacingConfig) {
        let account = backend.account();
        self.pacers.write().insert(account, Arc::new(Pacer::new(pacing)));
        self.accounts.write().insert(account, backend);
    }

    /// Messages waiting in each paced account's queue (`None`: not paced).
    pub fn pacer_queues(&self) -> Vec<(AccountId, Option<usize>)> {
        self.pacers.read().iter().map(|(a, p)| (*a, p.config().enabled.then(|| p.queued()))).collect()
    }

    /// Upstream frames each account dropped as repeats.
    pub fn upstream_duplicates(&self) -> Vec<(AccountId, u64)> {
        self.accounts.read().iter().map(|(a, b)| (*a, b.duplicates())).collect()
    }

    /// How `account` is paced.
    pub fn pacing(&self, account: AccountId) -> PacingConfig {
        *self.pacer(account).config()
    }

    pub(super) fn pacer(&self, account: AccountId) -> Arc<Pacer> {
        self.pacers.read().get(&account).cloned().unwrap_or_else(|| Arc::new(Pacer::new(PacingConfig::OFF)))
    }

    pub fn accounts(&self) -> Vec<AccountId> {
        self.accounts.read().keys().copied().collect()
    }

    /// Whether `account` is configured and its upstream connected.
    pub fn account_online(&self, account: AccountId) -> bool {
        self.accounts.read().get(&account).is_some_and(|b| b.online())
    }

    pub(super) fn backend(&self, account: Option<AccountId>) -> Result<(AccountId, Arc<dyn Backend>), OpError> {
        let accounts = self.accounts.read();
        let account = match account {
            Some(account) => account,
            None if accounts.len() == 1 => accounts.keys().next().copied().unwrap_or_default(),
            None => {
                return Err(OpError::new(
                    ErrorCode::AmbiguousBot,
                    "`bot` is required: the bridge has several accounts",
                ));
            }
        };
        let backend = accounts
            .get(&account)
            .cloned()
            .ok_or_else(|| OpError::new(ErrorCode::UnknownBot, format!("no account {account}")))?;
        Ok((account, backend))
    }

    fn resolve(&self, id: &str, kind: IdKind) -> Result<Handle, OpError> {
        self.registry.lookup(id, kind).map_err(|e| lookup_error(kind, e))
    }

    pub(super) fn resolve_source(&self, id: &SourceId) -> Result<SourceInfo, OpError> {
        match self.resolve(id.as_str(), IdKind::Source)? {
            Handle::Source(info) => Ok(info),
            _ => Err(lookup_error(IdKind::Source, LookupError::Unknown)),
        }
    }

    pub(super) fn resolve_reply_key(&self, id: &ReplyKey) -> Result<MessageRef, OpError> {
        self.resolve_message(id.as_str(), IdKind::ReplyKey)
    }

    pub(super) fn resolve_receipt(&self, id: &ReceiptId) -> Result<MessageRef, OpError> {
        self.resolve_message(id.as_str(), IdKind::Receipt)
    }

    fn resolve_message(&self, id: &str, kind: IdKind) -> Result<MessageRef, OpError> {
        match self.resolve(id, kind)? {
            Handle::ReplyKey(m) | Handle::Receipt(m) => Ok(m),
            _ => Err(lookup_error(kind, LookupError::Unknown)),
        }
    }

    pub(super) fn resolve_request(&self, id: &RequestId, kind: RequestKind) -> Result<RequestInfo, OpError> {
        match self.resolve(id.as_str(), IdKind::Request)? {
            Handle::Request(info) if info.kind == kind => Ok(info),
            _ => Err(lookup_error(IdKind::Request, LookupError::Unknown)),
        }
    }
}
