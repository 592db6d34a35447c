//! The bridge core: the accounts, and the one path every event and operation
//! takes. Backend events get registry IDs and go onto the bus; operations from
//! any consumer (WebSocket client or wasm bot) resolve their IDs here, pass the
//! caller's permissions, act on the account, and are audited on the bus.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use parking_lot::RwLock;
use serde::Deserialize;

use crate::backend::{
    Backend, BackendEvent, EventSink, IncomingMessage, OutgoingMessage, RequestAnswer, Sender, Simulated,
};
use crate::bus::Bus;
use crate::media::MediaPolicy;
use crate::registry::{Clock, Handle, IdKind, LookupError, MessageRef, Registry, RequestInfo, RequestKind, SourceInfo};
use crate::schema::{
    ChatKind, Element, ErrorCode, Event, GroupEvent, GroupModel, HandleRequestContent, MemberModel, MessageChain,
    MessageEvent, OpData, OpError, OpKind, Operation, Outgoing, Permission, RevokeEvent, Target, UserEvent, chain_text,
};

/// What a caller may do. `None` in a field means no restriction, except that
/// listing either `groups` or `friends` restricts chats to what is listed:
/// a bot limited to some groups cannot talk in private chats unless their
/// users are in `friends` (temp chats count as private).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Accounts it may act for.
    pub accounts: Option<Vec<i64>>,
    /// Groups it may act in.
    pub groups: Option<Vec<i64>>,
    /// Users it may talk to in private (friend and temp) chats.
    pub friends: Option<Vec<i64>>,
    /// Operations it may call.
    pub operations: Option<Vec<OpKind>>,
}

/// Where an operation acts, for the permission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Group(i64),
    /// A friend or temp chat with this user (or a request from them).
    Private(i64),
    /// The account as a whole (lists, injected events).
    Account,
}

impl Scope {
    fn of(target: Target) -> Self {
        match target {
            Target::Group { group } => Self::Group(group),
            Target::Friend { friend } => Self::Private(friend),
            Target::Temp { user, .. } => Self::Private(user),
        }
    }
}

impl Permissions {
    fn check(&self, op: OpKind, bot: i64, scope: Scope) -> Result<(), OpError> {
        let denied = |what: String| Err(OpError::new(ErrorCode::Forbidden, what));
        if let Some(ops) = &self.operations
            && !ops.contains(&op)
        {
            return denied(format!("operation {op} is not permitted"));
        }
        if let Some(accounts) = &self.accounts
            && !accounts.contains(&bot)
        {
            return denied(format!("account {bot} is not permitted"));
        }
        let chats_restricted = self.groups.is_some() || self.friends.is_some();
        let listed = |list: &Option<Vec<i64>>, id: i64| list.as_ref().is_some_and(|l| l.contains(&id));
        match scope {
            Scope::Group(group) if chats_restricted && !listed(&self.groups, group) => {
                denied(format!("group {group} is not permitted"))
            }
            Scope::Private(user) if chats_restricted && !listed(&self.friends, user) => {
                denied(format!("a private chat with {user} is not permitted (list the user in `friends`)"))
            }
            _ => Ok(()),
        }
    }
}

/// Whether a caller is a remote client or a sandboxed wasm bot: a bot may not
/// name local files at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    Client,
    WasmBot,
}

/// Who is calling: named in the audit stream (`by`) and in logs.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub kind: CallerKind,
    pub permissions: Option<Arc<Permissions>>,
}

impl Caller {
    /// A WebSocket client: no restrictions but the media policy.
    pub fn unrestricted(name: impl Into<String>) -> Self {
        Self { name: name.into(), kind: CallerKind::Client, permissions: None }
    }

    /// A wasm bot with the permissions of its `NAME.toml`.
    pub fn wasm_bot(name: impl Into<String>, permissions: Option<Arc<Permissions>>) -> Self {
        Self { name: name.into(), kind: CallerKind::WasmBot, permissions }
    }

    fn check(&self, op: OpKind, bot: i64, scope: Scope) -> Result<(), OpError> {
        match &self.permissions {
            Some(p) => p.check(op, bot, scope),
            None => Ok(()),
        }
    }
}

pub struct Bridge {
    registry: Arc<Registry>,
    bus: Arc<Bus>,
    clock: Arc<dyn Clock>,
    media: MediaPolicy,
    accounts: RwLock<BTreeMap<i64, Arc<dyn Backend>>>,
}

fn lookup_error(kind: IdKind, e: LookupError) -> OpError {
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

/// A quote's text preview: the first characters of the message.
fn preview(chain: &[Element]) -> String {
    const MAX_CHARS: usize = 80;
    chain_text(chain).chars().take(MAX_CHARS).collect()
}

impl Bridge {
    pub fn new(registry: Arc<Registry>, bus: Arc<Bus>, clock: Arc<dyn Clock>, media: MediaPolicy) -> Arc<Self> {
        Arc::new(Self { registry, bus, clock, media, accounts: RwLock::new(BTreeMap::new()) })
    }

    pub fn bus(&self) -> &Arc<Bus> {
        &self.bus
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn add_account(&self, backend: Arc<dyn Backend>) {
        self.accounts.write().insert(backend.account(), backend);
    }

    pub fn accounts(&self) -> Vec<i64> {
        self.accounts.read().keys().copied().collect()
    }

    /// Where backends report events; holds the bridge weakly.
    pub fn sink(self: &Arc<Self>) -> EventSink {
        let bridge: Weak<Self> = Arc::downgrade(self);
        Arc::new(move |bot, event| bridge.upgrade().map(|b| b.ingest(bot, event)).unwrap_or(0))
    }

    fn now_s(&self) -> i64 {
        (self.clock.now_ms() / 1000) as i64
    }

    fn backend(&self, bot: Option<i64>) -> Result<(i64, Arc<dyn Backend>), OpError> {
        let accounts = self.accounts.read();
        let bot = match bot {
            Some(bot) => bot,
            None if accounts.len() == 1 => *accounts.keys().next().unwrap_or(&0),
            None => {
                return Err(OpError::new(
                    ErrorCode::AmbiguousBot,
                    "`bot` is required: the bridge has several accounts",
                ));
            }
        };
        let backend = accounts
            .get(&bot)
            .cloned()
            .ok_or_else(|| OpError::new(ErrorCode::UnknownBot, format!("no account {bot}")))?;
        Ok((bot, backend))
    }

    fn resolve(&self, id: &str, kind: IdKind) -> Result<Handle, OpError> {
        self.registry.lookup(id, kind).map_err(|e| lookup_error(kind, e))
    }

    fn resolve_source(&self, id: &str) -> Result<SourceInfo, OpError> {
        match self.resolve(id, IdKind::Source)? {
            Handle::Source(info) => Ok(info),
            _ => Err(lookup_error(IdKind::Source, LookupError::Unknown)),
        }
    }

    fn resolve_message(&self, id: &str, kind: IdKind) -> Result<MessageRef, OpError> {
        match self.resolve(id, kind)? {
            Handle::ReplyKey(m) | Handle::Receipt(m) => Ok(m),
            _ => Err(lookup_error(kind, LookupError::Unknown)),
        }
    }

    fn resolve_request(&self, id: &str, kind: RequestKind) -> Result<RequestInfo, OpError> {
        match self.resolve(id, IdKind::Request)? {
            Handle::Request(info) if info.kind == kind => Ok(info),
            _ => Err(lookup_error(IdKind::Request, LookupError::Unknown)),
        }
    }

    /// Turns a chain to send into backend terms: drops MessageSource, resolves a
    /// Quote (of a message of the same account), refuses what cannot be sent.
    fn outgoing(&self, bot: i64, chain: &[Element]) -> Result<OutgoingMessage, OpError> {
        let bad = |m: &str| Err(OpError::new(ErrorCode::BadMessage, m.to_owned()));
        let mut quote = None;
        let mut elements = Vec::with_capacity(chain.len());
        for e in chain {
            match e {
                Element::MessageSource { .. } => {}
                Element::Quote { id, .. } => {
                    if quote.is_some() {
                        return bad("a message quotes at most one message");
                    }
                    let info = self.resolve_source(id)?;
                    if info.msg.bot != bot {
                        return bad("a quoted message must belong to the same account");
                    }
                    quote = Some(info.msg.backend_id);
                }
                Element::Voice { .. } => return bad("Voice is receive-only"),
                other => elements.push(other.clone()),
            }
        }
        if elements.is_empty() {
            return bad("the message has no content");
        }
        Ok(OutgoingMessage { quote, elements })
    }

    /// Commits everything recorded so far (IDs, and what the sim world did)
    /// before an operation is acknowledged, so the answer survives a crash.
    async fn commit_before_ack(&self, caller: &Caller, done: &str) -> Result<(), OpError> {
        if !self.registry.is_durable() {
            return Ok(());
        }
        let registry = self.registry.clone();
        let committed = tokio::task::spawn_blocking(move || registry.commit()).await;
        if let Err(e) = committed.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
            tracing::error!(by = %caller.name, "{done}, but it could not be stored: {e}");
            return Err(OpError::new(ErrorCode::Internal, format!("{done}, but it could not be stored: {e}")));
        }
        Ok(())
    }

    async fn send(
        &self,
        caller: &Caller,
        backend: &dyn Backend,
        bot: i64,
        target: Target,
        chain: &MessageChain,
    ) -> Result<OpData, OpError> {
        let mut message = self.outgoing(bot, chain)?;
        self.media.vet(caller.kind, &mut message.elements).await?;
        let text = preview(&message.elements);
        let sent = backend.send(target, message).await?;
        let msg = MessageRef { bot, target, backend_id: sent.backend_id };
        let source_id = self.registry.issue(Handle::Source(SourceInfo { msg, sender: bot, time: sent.time, text }));
        let receipt_id = self.registry.issue(Handle::Receipt(msg));
        // Acknowledged IDs must survive a crash: commit before answering.
        self.commit_before_ack(caller, "sent").await?;
        let mut audited = Vec::with_capacity(chain.len() + 1);
        audited.push(Element::MessageSource { id: source_id.clone() });
        audited.extend(chain.iter().filter(|e| !matches!(e, Element::MessageSource { .. })).cloned());
        self.bus.publish_outgoing(
            bot,
            sent.time,
            Outgoing { target, message: audited, source_id: source_id.clone(), by: caller.name.clone() },
        );
        Ok(OpData::Sent { receipt_id, source_id })
    }

    async fn answer(
        &self,
        caller: &Caller,
        op: OpKind,
        kind: RequestKind,
        c: HandleRequestContent,
    ) -> Result<OpData, OpError> {
        let req = self.resolve_request(&c.request_id, kind)?;
        let scope = if kind == RequestKind::Friend { Scope::Private(req.who) } else { Scope::Group(req.group) };
        caller.check(op, req.bot, scope)?;
        let (_, backend) = self.backend(Some(req.bot))?;
        let answer = RequestAnswer { token: req.token, accept: c.accept, reason: c.reason };
        match kind {
            RequestKind::Friend => backend.answer_friend_request(answer).await?,
            RequestKind::GroupInvite => backend.answer_group_invite(answer).await?,
            RequestKind::Join => backend.answer_join_request(answer).await?,
        }
        Ok(OpData::Done {})
    }

    /// Runs one operation for `caller`. The single entry point for every consumer.
    pub async fn execute(&self, caller: &Caller, op: Operation) -> Result<OpData, OpError> {
        let name = op.kind();
        match op {
            Operation::Reply(c) => {
                let m = self.resolve_message(&c.id, IdKind::ReplyKey)?;
                caller.check(name, m.bot, Scope::of(m.target))?;
                let (bot, backend) = self.backend(Some(m.bot))?;
                self.send(caller, &*backend, bot, m.target, &c.message).await
            }
            Operation::SendToGroup(c) => {
                let (bot, backend) = self.backend(c.bot)?;
                caller.check(name, bot, Scope::Group(c.group))?;
                self.send(caller, &*backend, bot, Target::Group { group: c.group }, &c.message).await
            }
            Operation::SendToFriend(c) => {
                let (bot, backend) = self.backend(c.bot)?;
                caller.check(name, bot, Scope::Private(c.friend))?;
                self.send(caller, &*backend, bot, Target::Friend { friend: c.friend }, &c.message).await
            }
            Operation::RecallReceipt(c) => {
                let m = self.resolve_message(&c.receipt, IdKind::Receipt)?;
                caller.check(name, m.bot, Scope::of(m.target))?;
                let (_, backend) = self.backend(Some(m.bot))?;
                backend.recall(m.target, m.backend_id).await.map_err(|e| match e.code {
                    // The receipt resolved, but its message is gone upstream: say so in receipt terms.
                    ErrorCode::UnknownMessage => OpError::new(ErrorCode::UnknownReceipt, e.message),
                    _ => e,
                })?;
                self.commit_before_ack(caller, "recalled").await?;
                Ok(OpData::Done {})
            }
            Operation::Recall(c) => {
                let m = self.resolve_source(&c.message_source)?.msg;
                caller.check(name, m.bot, Scope::of(m.target))?;
                let (_, backend) = self.backend(Some(m.bot))?;
                backend.recall(m.target, m.backend_id).await?;
                self.commit_before_ack(caller, "recalled").await?;
                Ok(OpData::Done {})
            }
            Operation::MuteMember(c) => {
                let (bot, backend) = self.backend(c.bot)?;
                caller.check(name, bot, Scope::Group(c.group))?;
                backend.mute(c.group, c.member, c.time).await?;
                Ok(OpData::Done {})
            }
            Operation::HandleFriendRequest(c) => self.answer(caller, name, RequestKind::Friend, c).await,
            Operation::HandleGroupInvite(c) => self.answer(caller, name, RequestKind::GroupInvite, c).await,
            Operation::HandleJoinRequest(c) => self.answer(caller, name, RequestKind::Join, c).await,
            Operation::ListFriends(c) => {
                let (bot, backend) = self.backend(c.bot)?;
                caller.check(name, bot, Scope::Account)?;
                Ok(OpData::Friends { friends: backend.friends().await? })
            }
            Operation::ListGroups(c) => {
                let (bot, backend) = self.backend(c.bot)?;
                caller.check(name, bot, Scope::Account)?;
                Ok(OpData::Groups { groups: backend.groups().await? })
            }
            Operation::ListMembers(c) => {
                let (bot, backend) = self.backend(c.bot)?;
                caller.check(name, bot, Scope::Group(c.group))?;
                Ok(OpData::Members { members: backend.members(c.group).await? })
            }
            Operation::SimMessage(c) => {
                let (bot, backend) = self.backend(c.bot)?;
                let target = match (c.group, c.friend, c.temp) {
                    (Some(group), None, false) => Target::Group { group },
                    (None, Some(friend), false) => Target::Friend { friend },
                    (Some(group), None, true) => Target::Temp {
                        group,
                        user: c
                            .sender
                            .ok_or_else(|| OpError::new(ErrorCode::BadRequest, "a temp message needs `sender`"))?,
                    },
                    _ => {
                        return Err(OpError::new(
                            ErrorCode::BadRequest,
                            "give exactly one of `group` or `friend` (`temp` goes with `group`)",
                        ));
                    }
                };
                caller.check(name, bot, Scope::of(target))?;
                let sender = match target {
                    Target::Group { .. } => {
                        c.sender.ok_or_else(|| OpError::new(ErrorCode::BadRequest, "a group message needs `sender`"))?
                    }
                    Target::Friend { friend } => friend,
                    Target::Temp { user, .. } => user,
                };
                let mut message = self.outgoing(bot, &c.message)?;
                self.media.vet(caller.kind, &mut message.elements).await?;
                let action = Simulated::Message {
                    target,
                    sender,
                    anonymous: c.anonymous,
                    quote: message.quote,
                    elements: message.elements,
                };
                Ok(OpData::Caused { seq: backend.simulate(action).await? })
            }
            Operation::SimEvent(c) => {
                let (bot, backend) = self.backend(c.bot)?;
                let action = match c.event {
                    Event::Msg(_) => {
                        return Err(OpError::new(ErrorCode::BadRequest, "inject messages with SimMessage"));
                    }
                    Event::Revoke(r) => {
                        let info = self.resolve_source(&r.msg_id)?;
                        if info.msg.bot != bot {
                            return Err(lookup_error(IdKind::Source, LookupError::Unknown));
                        }
                        Simulated::Recall {
                            target: info.msg.target,
                            backend_id: info.msg.backend_id,
                            revoker: r.revoker,
                        }
                    }
                    Event::User(e) => Simulated::User(e),
                    Event::Group(e) => Simulated::Group(e),
                };
                caller.check(name, bot, Scope::Account)?;
                Ok(OpData::Caused { seq: backend.simulate(action).await? })
            }
        }
    }

    /// Gives a backend event its registry IDs and publishes it. Returns its `seq`.
    pub fn ingest(&self, bot: i64, event: BackendEvent) -> u64 {
        let now = self.now_s();
        let (time, event) = match event {
            BackendEvent::Message(m) => (m.time, Event::Msg(self.message_event(bot, m))),
            BackendEvent::Recall { target, backend_id, revoker, revokee } => {
                let msg = MessageRef { bot, target, backend_id };
                let msg_id = self.registry.source_of(&msg).unwrap_or_else(|| {
                    self.registry.issue(Handle::Source(SourceInfo {
                        msg,
                        sender: revokee,
                        time: now,
                        text: String::new(),
                    }))
                });
                let (kind, channel) = match target {
                    Target::Group { group } => (ChatKind::Group, group),
                    Target::Friend { friend } => (ChatKind::Private, friend),
                    Target::Temp { user, .. } => (ChatKind::Private, user),
                };
                (now, Event::Revoke(RevokeEvent { kind, revoker, revokee, channel, msg_id }))
            }
            BackendEvent::User { mut event, request_token } => {
                if let Some(token) = request_token {
                    let request = match &event {
                        UserEvent::NewFriendRequest { who, .. } => Some((RequestKind::Friend, *who, 0)),
                        UserEvent::GroupInvite { group, inviter, .. } => {
                            Some((RequestKind::GroupInvite, *inviter, *group))
                        }
                        _ => None,
                    };
                    if let Some((kind, who, group)) = request {
                        let id = self.registry.issue(Handle::Request(RequestInfo { bot, kind, token, who, group }));
                        if let UserEvent::NewFriendRequest { request_id, .. }
                        | UserEvent::GroupInvite { request_id, .. } = &mut event
                        {
                            *request_id = Some(id);
                        }
                    }
                }
                (now, Event::User(event))
            }
            BackendEvent::Group { mut event, request_token } => {
                if let (Some(token), GroupEvent::JoinRequest { who, group, request_id, .. }) =
                    (request_token, &mut event)
                {
                    let info = RequestInfo { bot, kind: RequestKind::Join, token, who: *who, group: *group };
                    *request_id = Some(self.registry.issue(Handle::Request(info)));
                }
                (now, Event::Group(event))
            }
        };
        self.bus.publish_event(bot, time, event)
    }

    fn message_event(&self, bot: i64, m: IncomingMessage) -> MessageEvent {
        let msg = MessageRef { bot, target: m.target, backend_id: m.backend_id };
        let text = preview(&m.elements);
        let source_id =
            self.registry.issue(Handle::Source(SourceInfo { msg, sender: m.sender.id(), time: m.time, text }));
        let reply_key = self.registry.issue(Handle::ReplyKey(msg));
        let mut message = Vec::with_capacity(m.elements.len() + 2);
        message.push(Element::MessageSource { id: source_id });
        if let Some(q) = m.quote {
            let quoted = MessageRef { bot, target: m.target, backend_id: q.backend_id };
            let id = self.registry.source_of(&quoted).unwrap_or_else(|| {
                self.registry.issue(Handle::Source(SourceInfo {
                    msg: quoted,
                    sender: q.to.unwrap_or(0),
                    time: q.time.unwrap_or(0),
                    text: q.text.clone().unwrap_or_default(),
                }))
            });
            message.push(Element::Quote { id, to: q.to, time: q.time, text: q.text });
        }
        message.extend(m.elements);
        let group_model = |id: i64| {
            m.group.clone().unwrap_or(GroupModel { id, name: String::new(), bot_permission: Permission::Member })
        };
        match (m.target, m.sender) {
            (Target::Group { group }, sender) => {
                let sender = match sender {
                    Sender::Member(member) => member,
                    Sender::Friend(f) => MemberModel {
                        id: f.id,
                        name_card_or_nick: f.nick.clone(),
                        nick: f.nick,
                        name_card: String::new(),
                        permission: Permission::Member,
                        special_title: String::new(),
                    },
                };
                MessageEvent::GroupMessage {
                    group: group_model(group),
                    sender,
                    reply_key,
                    message,
                    bot,
                    anonymous: m.anonymous,
                }
            }
            (Target::Friend { .. }, sender) => {
                MessageEvent::FriendMessage { sender: friend_model(sender), message, reply_key, bot }
            }
            (Target::Temp { group, .. }, sender) => MessageEvent::TempMessage {
                group: group_model(group),
                sender: friend_model(sender),
                message,
                reply_key,
                bot,
            },
        }
    }
}

fn friend_model(sender: Sender) -> crate::schema::FriendModel {
    match sender {
        Sender::Friend(f) => f,
        Sender::Member(m) => crate::schema::FriendModel { id: m.id, nick: m.nick },
    }
}
