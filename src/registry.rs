//! The ID registry: opaque string IDs ⇄ backend handles, shared by every consumer.
//!
//! An ID is `KIND` + base64url(MAC(kind, serial) ‖ serial ⊕ mask(MAC)) (SipHash-2-4
//! with keys derived from the registry's secret): the 96-bit
//! keyed MAC makes it unguessable (an ID is a capability), the mask hides the
//! serial so IDs look random throughout, and the MAC lets a lookup tell an ID this
//! bridge issued and has since dropped (*expired*) from one it never issued
//! (*unknown*) without remembering dropped IDs. Serials grow by one, so live
//! entries sit in a ring indexed by `serial - base`: O(1) lookups, and since every
//! entry has the same TTL, the oldest is always at the front, bounded by capacity.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher24 as Sip64;
use siphasher::sip128::{Hasher128 as _, SipHasher24 as Sip128};
use std::hash::Hasher as _;
use subtle::ConstantTimeEq;

use crate::schema::{AccountId, GroupId, ReceiptId, ReplyKey, RequestId, SourceId, Target, UpstreamMsgId, UserId};
use crate::store::{IdLog, Restored, StateError};

/// Milliseconds since the unix epoch; injectable so tests need no sleeps.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        Self(AtomicU64::new(start_ms))
    }
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// What an ID stands for. The kind is part of the ID (its first character).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A message, as in MessageSource: recall it, quote it.
    Source,
    /// A received message's replyKey.
    ReplyKey,
    /// A message the bridge sent: RecallReceipt.
    Receipt,
    /// A friend request, group invite or join request to answer.
    Request,
}

impl IdKind {
    fn prefix(self) -> char {
        match self {
            Self::Source => 'm',
            Self::ReplyKey => 'r',
            Self::Receipt => 'c',
            Self::Request => 'q',
        }
    }
    fn from_prefix(c: char) -> Option<Self> {
        Some(match c {
            'm' => Self::Source,
            'r' => Self::ReplyKey,
            'c' => Self::Receipt,
            'q' => Self::Request,
            _ => return None,
        })
    }
}

/// A message inside one account, as the backend knows it. Upstream message IDs
/// are only unique per scene, so the scene is part of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageRef {
    #[serde(rename = "bot")]
    pub account: AccountId,
    pub target: Target,
    /// The backend's own message ID (OneBot's are 32-bit and may be negative).
    pub backend_id: UpstreamMsgId,
}

/// A message: who sent it, when, and a text preview for quotes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub msg: MessageRef,
    pub sender: UserId,
    pub time: i64,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestKind {
    Friend,
    GroupInvite,
    Join,
}

/// A pending request and the backend's token for answering it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestInfo {
    #[serde(rename = "bot")]
    pub account: AccountId,
    pub kind: RequestKind,
    pub token: String,
    pub who: UserId,
    /// The group of an invite or join request; 0 for a friend request.
    pub group: GroupId,
}

/// What the registry maps an ID to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Handle {
    Source(SourceInfo),
    /// Replies go to the scene of the message the key came with.
    ReplyKey(MessageRef),
    Receipt(MessageRef),
    Request(RequestInfo),
}

impl Handle {
    pub fn kind(&self) -> IdKind {
        match self {
            Self::Source(_) => IdKind::Source,
            Self::ReplyKey(_) => IdKind::ReplyKey,
            Self::Receipt(_) => IdKind::Receipt,
            Self::Request(_) => IdKind::Request,
        }
    }
}

/// Why a lookup failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no such ID")]
    Unknown,
    #[error("the ID has expired")]
    Expired,
}

#[derive(Debug, Clone, Copy)]
pub struct RegistryConfig {
    pub capacity: usize,
    pub ttl: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self { capacity: 1_000_000, ttl: Duration::from_secs(24 * 3600) }
    }
}

#[derive(Serialize, Deserialize)]
struct Slot {
    expires_ms: u64,
    handle: Handle,
}

/// A slot's record in the state file: `SLOT_FORMAT`, then fixed-width
/// little-endian fields and length-prefixed text (see `Slot::encode`). A
/// third of the bytes of its JSON, which the first builds wrote and which
/// is still read (it starts with `{`).
const SLOT_FORMAT: u8 = 1;

impl Slot {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(SLOT_FORMAT);
        out.extend_from_slice(&self.expires_ms.to_le_bytes());
        let int = |out: &mut Vec<u8>, v: i64| out.extend_from_slice(&v.to_le_bytes());
        let text = |out: &mut Vec<u8>, t: &str| {
            out.extend_from_slice(&(t.len() as u32).to_le_bytes());
            out.extend_from_slice(t.as_bytes());
        };
        let msg = |out: &mut Vec<u8>, m: &MessageRef| {
            int(out, m.account.0);
            match m.target {
                Target::Group { group } => {
                    out.push(0);
                    int(out, group.0);
                }
                Target::Friend { friend } => {
                    out.push(1);
                    int(out, friend.0);
                }
                Target::Temp { group, user } => {
                    out.push(2);
                    int(out, group.0);
                    int(out, user.0);
                }
            }
            int(out, m.backend_id.0);
        };
        match &self.handle {
            Handle::Source(info) => {
                out.push(0);
                msg(&mut out, &info.msg);
                int(&mut out, info.sender.0);
                int(&mut out, info.time);
                text(&mut out, &info.text);
            }
            Handle::ReplyKey(m) => {
                out.push(1);
                msg(&mut out, m);
            }
            Handle::Receipt(m) => {
                out.push(2);
                msg(&mut out, m);
            }
            Handle::Request(r) => {
                out.push(3);
                int(&mut out, r.account.0);
                out.push(match r.kind {
                    RequestKind::Friend => 0,
                    RequestKind::GroupInvite => 1,
                    RequestKind::Join => 2,
                });
                text(&mut out, &r.token);
                int(&mut out, r.who.0);
                int(&mut out, r.group.0);
            }
        }
        out
    }

    /// None for a record that is neither format (read as a lost serial).
    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.first() == Some(&b'{') {
            return serde_json::from_slice(bytes).ok();
        }
        let mut r = Reader(bytes.strip_prefix(&[SLOT_FORMAT])?);
        let expires_ms = r.u64()?;
        let handle = match r.u8()? {
            0 => {
                Handle::Source(SourceInfo { msg: r.msg()?, sender: UserId(r.i64()?), time: r.i64()?, text: r.text()? })
            }
            1 => Handle::ReplyKey(r.msg()?),
            2 => Handle::Receipt(r.msg()?),
            3 => Handle::Request(RequestInfo {
                account: AccountId(r.i64()?),
                kind: match r.u8()? {
                    0 => RequestKind::Friend,
                    1 => RequestKind::GroupInvite,
                    2 => RequestKind::Join,
                    _ => return None,
                },
                token: r.text()?,
                who: UserId(r.i64()?),
                group: GroupId(r.i64()?),
            }),
            _ => return None,
        };
        r.0.is_empty().then_some(Slot { expires_ms, handle })
    }
}

/// Reads `Slot::encode`'s fields in order; None past the end.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_le_bytes)
    }

    fn text(&mut self) -> Option<String> {
        let len = u32::from_le_bytes(self.take()?) as usize;
        let bytes = self.0.get(..len)?;
        self.0 = &self.0[len..];
        String::from_utf8(bytes.to_vec()).ok()
    }

    fn msg(&mut self) -> Option<MessageRef> {
        let account = AccountId(self.i64()?);
        let target = match self.u8()? {
            0 => Target::Group { group: GroupId(self.i64()?) },
            1 => Target::Friend { friend: UserId(self.i64()?) },
            2 => Target::Temp { group: GroupId(self.i64()?), user: UserId(self.i64()?) },
            _ => return None,
        };
        Some(MessageRef { account, target, backend_id: UpstreamMsgId(self.i64()?) })
    }
}

struct Ring {
    /// Serial of `slots[0]`.
    base: u64,
    /// `None`: a serial lost in a crash (reads as expired).
    slots: VecDeque<Option<Slot>>,
    /// Source IDs by message, so a recall event names the ID consumers already
    /// saw. foldhash, not SipHash: one insert per message on the echo path,
    /// still seeded per process.
    by_message: HashMap<MessageRef, u64, foldhash::fast::RandomState>,
}

impl Ring {
    /// Room for `capacity` slots from the start: address space only until
    /// used (slots fill in order, so pages are touched as they fill), and no
    /// copy of the whole ring each time it would have doubled on a busy
    /// account. The index is written all over, so it is resident as soon as
    /// it is used: sized for the first 65 536 messages (about 3 MiB) only.
    fn new(base: u64, capacity: usize) -> Self {
        // Up to the default capacity; a larger one grows past it as it fills.
        let capacity = capacity.min(RegistryConfig::default().capacity);
        let by_message = HashMap::with_capacity_and_hasher(capacity.min(1 << 16), Default::default());
        Self { base, slots: VecDeque::with_capacity(capacity), by_message }
    }
}

/// The shared ID registry. Cheap to share behind an `Arc`.
pub struct Registry {
    /// The secret, kept in the state file: `keys` are derived from it, and
    /// earlier builds made their IDs with it.
    key: [u8; 32],
    /// SipHash keys derived from `key`: a short keyed hash at a fifth of
    /// blake3's cost on a 9-byte input, and a message makes about ten.
    keys: IdKeys,
    config: RegistryConfig,
    clock: Arc<dyn Clock>,
    ring: Mutex<Ring>,
    /// Where entries are kept (None: in memory only).
    log: Option<Arc<dyn IdLog>>,
}

const MAC_LEN: usize = 12;

/// The keys an ID's MAC and mask are made with.
struct IdKeys {
    mac: [u8; 16],
    mask: [u8; 16],
}

impl IdKeys {
    fn derive(secret: &[u8; 32]) -> Self {
        let both = blake3::derive_key("botbridge 2026-12 registry id keys", secret);
        let (mut mac, mut mask) = ([0u8; 16], [0u8; 16]);
        mac.copy_from_slice(&both[..16]);
        mask.copy_from_slice(&both[16..]);
        Self { mac, mask }
    }
}

impl Registry {
    pub fn new(config: RegistryConfig, clock: Arc<dyn Clock>) -> Self {
        let key = rand::random();
        Self {
            key,
            keys: IdKeys::derive(&key),
            config,
            clock,
            ring: Mutex::new(Ring::new(0, config.capacity)),
            log: None,
        }
    }

    /// A registry kept in `log`, continuing from what it restored.
    pub fn restore(config: RegistryConfig, clock: Arc<dyn Clock>, log: Arc<dyn IdLog>, restored: &Restored) -> Self {
        let base = restored.ids.first().map(|(s, _)| *s).unwrap_or(restored.next_serial);
        let mut ring = Ring::new(base, config.capacity);
        for (serial, bytes) in &restored.ids {
            while ring.base + (ring.slots.len() as u64) < *serial {
                ring.slots.push_back(None);
            }
            let slot = Slot::decode(bytes);
            if let Some(Slot { handle: Handle::Source(info), .. }) = &slot {
                ring.by_message.insert(info.msg, *serial);
            }
            ring.slots.push_back(slot);
        }
        while ring.base + (ring.slots.len() as u64) < restored.next_serial {
            ring.slots.push_back(None);
        }
        let keys = IdKeys::derive(&restored.key);
        Self { key: restored.key, keys, config, clock, ring: Mutex::new(ring), log: Some(log) }
    }

    /// Makes every ID issued so far durable.
    pub async fn commit(&self) -> Result<(), StateError> {
        match &self.log {
            Some(log) => log.commit().await,
            None => Ok(()),
        }
    }

    pub fn config(&self) -> RegistryConfig {
        self.config
    }

    /// Issues a new ID for `handle`.
    pub fn issue(&self, handle: Handle) -> String {
        let now = self.clock.now_ms();
        let kind = handle.kind();
        let mut ring = self.ring.lock();
        let pruned = self.prune(&mut ring, now, self.config.capacity.saturating_sub(1));
        let serial = ring.base + ring.slots.len() as u64;
        if let Handle::Source(info) = &handle {
            ring.by_message.insert(info.msg, serial);
        }
        let slot = Slot { expires_ms: now + self.config.ttl.as_millis() as u64, handle };
        let entry = self.log.as_ref().map(|_| slot.encode());
        ring.slots.push_back(Some(slot));
        drop(ring);
        // Recorded outside the ring's lock: a store that commits never holds up a lookup.
        self.record_pruned(pruned);
        if let (Some(log), Some(entry)) = (&self.log, entry) {
            log.record(serial, entry);
        }
        self.encode(kind, serial)
    }

    pub fn issue_source(&self, info: SourceInfo) -> SourceId {
        SourceId(self.issue(Handle::Source(info)))
    }

    pub fn issue_reply_key(&self, msg: MessageRef) -> ReplyKey {
        ReplyKey(self.issue(Handle::ReplyKey(msg)))
    }

    pub fn issue_receipt(&self, msg: MessageRef) -> ReceiptId {
        ReceiptId(self.issue(Handle::Receipt(msg)))
    }

    pub fn issue_request(&self, info: RequestInfo) -> RequestId {
        RequestId(self.issue(Handle::Request(info)))
    }

    /// The source ID already issued for `msg`, if it is still live.
    pub fn source_of(&self, msg: &MessageRef) -> Option<SourceId> {
        let now = self.clock.now_ms();
        let mut ring = self.ring.lock();
        let pruned = self.prune(&mut ring, now, self.config.capacity);
        let serial = ring.by_message.get(msg).copied();
        drop(ring);
        self.record_pruned(pruned);
        let serial = serial?;
        Some(SourceId(self.encode(IdKind::Source, serial)))
    }

    /// Resolves an ID of the expected kind. An ID of another kind is *unknown*.
    pub fn lookup(&self, id: &str, expected: IdKind) -> Result<Handle, LookupError> {
        let (kind, serial) = self.decode(id).ok_or(LookupError::Unknown)?;
        if kind != expected {
            return Err(LookupError::Unknown);
        }
        let now = self.clock.now_ms();
        let mut ring = self.ring.lock();
        let pruned = self.prune(&mut ring, now, self.config.capacity);
        let found = if serial < ring.base {
            Err(LookupError::Expired)
        } else {
            match ring.slots.get((serial - ring.base) as usize) {
                Some(Some(slot)) => Ok(slot.handle.clone()),
                Some(None) => Err(LookupError::Expired),
                None => Err(LookupError::Unknown),
            }
        };
        drop(ring);
        self.record_pruned(pruned);
        found
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        let mut ring = self.ring.lock();
        let pruned = self.prune(&mut ring, self.clock.now_ms(), self.config.capacity);
        let len = ring.slots.len();
        drop(ring);
        self.record_pruned(pruned);
        len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tells the log that entries below `base` are gone, if any went.
    fn record_pruned(&self, base: Option<u64>) {
        if let (Some(log), Some(base)) = (&self.log, base) {
            log.prune(base);
        }
    }

    /// Drops expired entries, then the oldest until at most `keep` remain.
    /// Returns the new base when entries went.
    fn prune(&self, ring: &mut Ring, now: u64, keep: usize) -> Option<u64> {
        let base = ring.base;
        while let Some(front) = ring.slots.front() {
            let live = front.as_ref().is_some_and(|s| s.expires_ms > now);
            if live && ring.slots.len() <= keep {
                break;
            }
            if let Some(Some(slot)) = ring.slots.pop_front()
                && let Handle::Source(info) = &slot.handle
                && ring.by_message.get(&info.msg) == Some(&ring.base)
            {
                ring.by_message.remove(&info.msg);
            }
            ring.base += 1;
        }
        (ring.base != base).then_some(ring.base)
    }

    fn mac(&self, kind: IdKind, serial: u64) -> [u8; MAC_LEN] {
        let mut h = Sip128::new_with_key(&self.keys.mac);
        h.write_u8(kind.prefix() as u8);
        h.write_u64(serial);
        let hash = h.finish128().as_bytes();
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&hash[..MAC_LEN]);
        mac
    }

    /// The 8-byte mask that hides the serial, derived from the MAC.
    fn mask(&self, mac: &[u8]) -> u64 {
        let mut h = Sip64::new_with_key(&self.keys.mask);
        h.write(mac);
        h.finish()
    }

    /// The MAC of IDs that builds before December 2026 issued (blake3 keyed
    /// with the secret itself): a state file keeps them live across an
    /// upgrade, so they are still accepted.
    fn legacy_mac(&self, kind: IdKind, serial: u64) -> [u8; MAC_LEN] {
        let mut input = [0u8; 9];
        input[0] = kind.prefix() as u8;
        input[1..].copy_from_slice(&serial.to_be_bytes());
        let hash = blake3::keyed_hash(&self.key, &input);
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&hash.as_bytes()[..MAC_LEN]);
        mac
    }

    /// The mask of IDs that builds before December 2026 issued.
    fn legacy_mask(&self, mac: &[u8]) -> u64 {
        let hash = blake3::keyed_hash(&self.key, &[b"mask".as_slice(), mac].concat());
        let mut m = [0u8; 8];
        m.copy_from_slice(&hash.as_bytes()[..8]);
        u64::from_be_bytes(m)
    }

    fn encode(&self, kind: IdKind, serial: u64) -> String {
        let mut raw = [0u8; MAC_LEN + 8];
        let mac = self.mac(kind, serial);
        raw[..MAC_LEN].copy_from_slice(&mac);
        raw[MAC_LEN..].copy_from_slice(&(serial ^ self.mask(&mac)).to_be_bytes());
        let mut id = String::with_capacity(28);
        id.push(kind.prefix());
        URL_SAFE_NO_PAD.encode_string(raw, &mut id);
        id
    }

    /// The kind and serial of an ID this registry issued, or `None`.
    fn decode(&self, id: &str) -> Option<(IdKind, u64)> {
        let kind = IdKind::from_prefix(id.chars().next()?)?;
        let raw = URL_SAFE_NO_PAD.decode(id.get(1..)?).ok()?;
        if raw.len() != 8 + MAC_LEN {
            return None;
        }
        let (mac, masked) = raw.split_at(MAC_LEN);
        let masked = u64::from_be_bytes(masked.try_into().ok()?);
        let serial = masked ^ self.mask(mac);
        if bool::from(self.mac(kind, serial).ct_eq(mac)) {
            return Some((kind, serial));
        }
        let serial = masked ^ self.legacy_mask(mac);
        bool::from(self.legacy_mac(kind, serial).ct_eq(mac)).then_some((kind, serial))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: i64) -> MessageRef {
        MessageRef { account: AccountId(1), target: Target::Group { group: GroupId(2) }, backend_id: UpstreamMsgId(id) }
    }

    fn source(id: i64) -> Handle {
        Handle::Source(SourceInfo { msg: msg(id), sender: UserId(3), time: 0, text: String::new() })
    }

    fn registry(capacity: usize, ttl_s: u64) -> (Registry, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let reg = Registry::new(RegistryConfig { capacity, ttl: Duration::from_secs(ttl_s) }, clock.clone());
        (reg, clock)
    }

    #[test]
    fn ids_are_opaque_url_safe_and_resolve() {
        let (reg, _) = registry(10, 60);
        let a = reg.issue(source(1));
        let b = reg.issue(source(2));
        assert_ne!(a, b);
        assert_eq!(a.len(), 28);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(reg.lookup(&a, IdKind::Source), Ok(source(1)));
        assert_eq!(reg.lookup(&b, IdKind::Source), Ok(source(2)));
        assert_eq!(reg.source_of(&msg(2)).map(|s| s.0), Some(b));
    }

    #[test]
    fn ids_that_earlier_builds_issued_still_resolve() {
        let (reg, _) = registry(10, 60);
        let handle = source(7);
        let id = reg.issue(handle.clone());
        let serial = reg.decode(&id).map(|(_, s)| s).expect("a new ID decodes");
        // The same entry as a build that made IDs with blake3 named it.
        let mac = reg.legacy_mac(IdKind::Source, serial);
        let mut raw = [0u8; MAC_LEN + 8];
        raw[..MAC_LEN].copy_from_slice(&mac);
        raw[MAC_LEN..].copy_from_slice(&(serial ^ reg.legacy_mask(&mac)).to_be_bytes());
        let legacy = format!("{}{}", IdKind::Source.prefix(), URL_SAFE_NO_PAD.encode(raw));
        assert_ne!(legacy, id);
        assert_eq!(reg.lookup(&legacy, IdKind::Source), Ok(handle));
        // One bit off is still unknown, in either format.
        raw[0] ^= 1;
        let forged = format!("{}{}", IdKind::Source.prefix(), URL_SAFE_NO_PAD.encode(raw));
        assert_eq!(reg.lookup(&forged, IdKind::Source), Err(LookupError::Unknown));
    }

    #[test]
    fn unknown_is_told_from_expired() {
        let (reg, clock) = registry(10, 60);
        let id = reg.issue(source(1));
        assert_eq!(reg.lookup("garbage", IdKind::Source), Err(LookupError::Unknown));
        assert_eq!(reg.lookup("", IdKind::Source), Err(LookupError::Unknown));
        // A forged ID: right shape, wrong MAC.
        let mut forged = id.clone().into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(reg.lookup(&forged, IdKind::Source), Err(LookupError::Unknown));
        // Another registry's ID is unknown here.
        let (other, _) = registry(10, 60);
        assert_eq!(other.lookup(&id, IdKind::Source), Err(LookupError::Unknown));
        // The right ID used as another kind is unknown.
        assert_eq!(reg.lookup(&id, IdKind::Receipt), Err(LookupError::Unknown));

        clock.advance(Duration::from_secs(59));
        assert!(reg.lookup(&id, IdKind::Source).is_ok());
        clock.advance(Duration::from_secs(1));
        assert_eq!(reg.lookup(&id, IdKind::Source), Err(LookupError::Expired));
        assert_eq!(reg.source_of(&msg(1)), None);
        assert!(reg.is_empty());
    }

    #[test]
    fn capacity_evicts_the_oldest() {
        let (reg, _) = registry(3, 60);
        let ids: Vec<_> = (0..5).map(|i| reg.issue(source(i))).collect();
        assert_eq!(reg.len(), 3);
        assert_eq!(reg.lookup(&ids[0], IdKind::Source), Err(LookupError::Expired));
        assert_eq!(reg.lookup(&ids[1], IdKind::Source), Err(LookupError::Expired));
        for (i, id) in ids.iter().enumerate().skip(2) {
            assert_eq!(reg.lookup(id, IdKind::Source), Ok(source(i as i64)));
        }
    }

    /// Every kind of handle comes back from its record, and so does a
    /// record the first builds wrote as JSON; a cut or unknown one does not.
    #[test]
    fn slots_round_trip_through_their_records() {
        let msg = |target| MessageRef { account: AccountId(10), target, backend_id: UpstreamMsgId(-7) };
        let handles = [
            Handle::Source(SourceInfo {
                msg: msg(Target::Group { group: GroupId(20) }),
                sender: UserId(30),
                time: 1_700_000_000,
                text: "预览 preview".into(),
            }),
            Handle::ReplyKey(msg(Target::Friend { friend: UserId(31) })),
            Handle::Receipt(msg(Target::Temp { group: GroupId(21), user: UserId(32) })),
            Handle::Request(RequestInfo {
                account: AccountId(10),
                kind: RequestKind::GroupInvite,
                token: "flag-1".into(),
                who: UserId(33),
                group: GroupId(22),
            }),
        ];
        for handle in handles {
            let slot = Slot { expires_ms: 123_456, handle };
            let record = slot.encode();
            let back = Slot::decode(&record).expect("decodes");
            assert_eq!((back.expires_ms, &back.handle), (slot.expires_ms, &slot.handle));
            let json = serde_json::to_vec(&slot).unwrap();
            assert!(record.len() < json.len(), "{} bytes against {} of JSON", record.len(), json.len());
            let old = Slot::decode(&json).expect("the first format still reads");
            assert_eq!(old.handle, slot.handle);
            assert!(Slot::decode(&record[..record.len() - 1]).is_none(), "a cut record is lost, not misread");
        }
        assert!(Slot::decode(&[9, 0, 0]).is_none(), "an unknown format");
    }

    #[test]
    fn shared_across_threads() {
        let (reg, _) = registry(100_000, 60);
        let reg = Arc::new(reg);
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let reg = reg.clone();
                std::thread::spawn(move || {
                    (0..1000).map(|i| (reg.issue(source(t * 1000 + i)), t * 1000 + i)).collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (id, n) in h.join().unwrap() {
                assert_eq!(reg.lookup(&id, IdKind::Source), Ok(source(n)));
            }
        }
    }
}
