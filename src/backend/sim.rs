//! The simulated chat world: the default backend, so botbridge runs with no
//! account at all. It keeps friends, strangers, groups and members with
//! permissions, and enforces what a real server would (only a higher rank mutes
//! or recalls others, no sending where the account is not, no double recall).
//! Every state change, whoever caused it, is reported as an event.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::Deserialize;

use super::{
    Backend, BackendEvent, EventSink, FetchedMessage, IncomingMessage, OutgoingMessage, QuoteRef, RequestAnswer,
    Sender, Sent, Simulated, unix_now,
};
use crate::registry::RequestKind;
use crate::schema::{
    AccountId, Element, ErrorCode, ForwardNode, FriendModel, GroupEvent, GroupId, GroupModel, MemberModel, OpError,
    Permission, Target, UpstreamMsgId, UserEvent, UserId, chain_text,
};
use crate::store::{Record, SimLog};

/// Messages the world remembers (for recalls and quotes); older ones are forgotten.
const MAX_MESSAGES: i64 = 100_000;

/// Longest mute a group allows: 30 days.
const MAX_MUTE_SECONDS: i64 = 30 * 24 * 3600;

/// A world description, from `[sim]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldConfig {
    #[serde(default)]
    pub friend: Vec<PersonConfig>,
    #[serde(default)]
    pub stranger: Vec<PersonConfig>,
    #[serde(default)]
    pub group: Vec<GroupConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonConfig {
    pub id: UserId,
    pub nick: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub id: GroupId,
    pub name: String,
    pub bot_permission: Permission,
    #[serde(default)]
    pub member: Vec<MemberConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    pub id: UserId,
    pub nick: String,
    pub permission: Permission,
    #[serde(default)]
    pub name_card: String,
    #[serde(default)]
    pub special_title: String,
}

impl Default for WorldConfig {
    /// Two groups (admin in one, plain member in the other) with an owner, an
    /// admin and members; two friends; one stranger who shares a group.
    fn default() -> Self {
        let person = |id, nick: &str| PersonConfig { id: UserId(id), nick: nick.into() };
        let member = |id, nick: &str, permission| MemberConfig {
            id: UserId(id),
            nick: nick.into(),
            permission,
            name_card: String::new(),
            special_title: String::new(),
        };
        Self {
            friend: vec![person(40001, "Alice"), person(40002, "Bob")],
            stranger: vec![person(50001, "Mallory")],
            group: vec![
                GroupConfig {
                    id: GroupId(20001),
                    name: "botbridge dev".into(),
                    bot_permission: Permission::Administrator,
                    member: vec![
                        member(30001, "Olivia", Permission::Owner),
                        member(30002, "Adam", Permission::Administrator),
                        member(30003, "Mia", Permission::Member),
                        member(30004, "Max", Permission::Member),
                        member(50001, "Mallory", Permission::Member),
                    ],
                },
                GroupConfig {
                    id: GroupId(20002),
                    name: "lobby".into(),
                    bot_permission: Permission::Member,
                    member: vec![
                        member(30001, "Olivia", Permission::Administrator),
                        member(30005, "Owen", Permission::Owner),
                        member(30003, "Mia", Permission::Member),
                    ],
                },
            ],
        }
    }
}

struct Member {
    nick: String,
    name_card: String,
    permission: Permission,
    special_title: String,
    muted_until: i64,
}

struct Group {
    name: String,
    bot_permission: Permission,
    bot_muted_until: i64,
    whole_muted: bool,
    members: BTreeMap<UserId, Member>,
    /// Kicked with `rejectRejoin`: their join requests are refused.
    rejected: BTreeSet<UserId>,
}

impl Member {
    /// A plain member who just joined.
    fn joined(nick: String) -> Self {
        Self {
            nick,
            name_card: String::new(),
            permission: Permission::Member,
            special_title: String::new(),
            muted_until: 0,
        }
    }
}

impl Group {
    /// A group the account just joined, as a plain member.
    fn joined(name: String) -> Self {
        Self {
            name,
            bot_permission: Permission::Member,
            bot_muted_until: 0,
            whole_muted: false,
            members: BTreeMap::new(),
            rejected: BTreeSet::new(),
        }
    }
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct StoredMessage {
    target: Target,
    sender: UserId,
    time: i64,
    text: String,
    recalled: bool,
    /// The content, for `GetMessage` (absent in messages stored before it).
    #[serde(default)]
    elements: Vec<Element>,
    #[serde(default)]
    quote: Option<UpstreamMsgId>,
}

impl Record for StoredMessage {
    fn encode(&self) -> Vec<u8> {
        // Plain data: serializing it cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

struct PendingRequest {
    kind: RequestKind,
    who: UserId,
    nick: String,
    /// The group of an invite or join request; 0 for a friend request.
    group: GroupId,
    group_name: String,
    handled: bool,
}

struct World {
    friends: BTreeMap<UserId, String>,
    strangers: BTreeMap<UserId, String>,
    groups: BTreeMap<GroupId, Group>,
    /// By number; foldhash, as one insert and one removal per message sent.
    /// Shared with the store until it has written them: it encodes them on
    /// its own thread.
    messages: HashMap<i64, Arc<StoredMessage>, foldhash::fast::RandomState>,
    next_message: i64,
    requests: HashMap<String, PendingRequest>,
    next_request: u64,
    /// Where messages are kept across restarts (None: in memory only).
    store: Option<(AccountId, Arc<dyn SimLog>)>,
}

/// One simulated account.
pub struct SimBackend {
    account: AccountId,
    world: Mutex<World>,
    sink: EventSink,
}

fn err(code: ErrorCode, message: impl Into<String>) -> OpError {
    OpError::new(code, message)
}

impl SimBackend {
    pub fn new(account: AccountId, config: &WorldConfig, sink: EventSink) -> Self {
        let groups = config
            .group
            .iter()
            .map(|g| {
                let members = g
                    .member
                    .iter()
                    .map(|m| {
                        (
                            m.id,
                            Member {
                                nick: m.nick.clone(),
                                name_card: m.name_card.clone(),
                                permission: m.permission,
                                special_title: m.special_title.clone(),
                                muted_until: 0,
                            },
                        )
                    })
                    .collect();
                (
                    g.id,
                    Group {
                        name: g.name.clone(),
                        bot_permission: g.bot_permission,
                        bot_muted_until: 0,
                        whole_muted: false,
                        members,
                        rejected: BTreeSet::new(),
                    },
                )
            })
            .collect();
        let world = World {
            friends: config.friend.iter().map(|p| (p.id, p.nick.clone())).collect(),
            strangers: config.stranger.iter().map(|p| (p.id, p.nick.clone())).collect(),
            groups,
            // Sized for the most it keeps: growing it meant a rehash into
            // fresh pages, each time on the echo path, for the first 100 000.
            messages: HashMap::with_capacity_and_hasher(MAX_MESSAGES as usize, Default::default()),
            // Distinct from every earlier run's, so restored IDs never meet a new message.
            next_message: (rand::random::<u32>() as i64) << 30,
            requests: HashMap::new(),
            next_request: 1,
            store: None,
        };
        Self { account, world: Mutex::new(world), sink }
    }

    /// Keeps this account's messages in `log`, starting from those it had
    /// (`restored`), so a Recall after a restart finds its message.
    pub fn persisted(self, log: Arc<dyn SimLog>, restored: &[((i64, i64), Vec<u8>)]) -> Self {
        {
            let mut w = self.world.lock();
            for ((account, number), record) in restored {
                if *account != self.account.0 {
                    continue;
                }
                match serde_json::from_slice::<StoredMessage>(record) {
                    Ok(m) => {
                        w.messages.insert(*number, Arc::new(m));
                    }
                    Err(e) => tracing::warn!(account, number, "skipping an unreadable stored sim message: {e}"),
                }
            }
            w.store = Some((self.account, log));
        }
        self
    }

    fn emit(&self, event: BackendEvent) -> u64 {
        (self.sink)(self.account, event)
    }
}

impl World {
    /// Records message `number` as it now is (or that it is gone) for the next commit.
    fn persist(&self, number: i64) {
        let Some((account, log)) = &self.store else { return };
        let record = self.messages.get(&number).map(|m| m.clone() as Arc<dyn Record>);
        log.record(account.0, number, record);
    }

    fn group(&self, id: GroupId) -> Result<&Group, OpError> {
        self.groups.get(&id).ok_or_else(|| err(ErrorCode::NotInGroup, format!("the account is not in group {id}")))
    }

    fn group_mut(&mut self, id: GroupId) -> Result<&mut Group, OpError> {
        self.groups.get_mut(&id).ok_or_else(|| err(ErrorCode::NotInGroup, format!("the account is not in group {id}")))
    }

    fn group_model(&self, id: GroupId) -> Result<GroupModel, OpError> {
        let g = self.group(id)?;
        Ok(GroupModel { id, name: g.name.clone(), bot_permission: g.bot_permission })
    }

    fn store(&mut self, target: Target, sender: UserId, quote: Option<UpstreamMsgId>, elements: &[Element]) -> Sent {
        let backend_id = self.next_message;
        self.next_message += 1;
        let time = unix_now();
        // A preview is all a quote shows.
        let text = chain_text(elements).chars().take(80).collect();
        let stored = StoredMessage { target, sender, time, text, recalled: false, elements: elements.to_vec(), quote };
        self.messages.insert(backend_id, Arc::new(stored));
        self.persist(backend_id);
        if self.messages.remove(&(backend_id - MAX_MESSAGES)).is_some() {
            self.persist(backend_id - MAX_MESSAGES);
        }
        Sent { backend_id: UpstreamMsgId(backend_id), time }
    }

    fn quote(&self, backend_id: Option<UpstreamMsgId>) -> Option<QuoteRef> {
        let id = backend_id?;
        let m = self.messages.get(&id.0);
        Some(QuoteRef {
            backend_id: id,
            to: m.map(|m| m.sender),
            time: m.map(|m| m.time),
            text: m.map(|m| m.text.clone()),
        })
    }

    /// Refuses to speak where the account is muted, not a friend or not a member.
    fn may_send(&self, target: Target) -> Result<(), OpError> {
        match target {
            Target::Group { group } => {
                let g = self.group(group)?;
                if muted(g.bot_muted_until) || (g.whole_muted && g.bot_permission == Permission::Member) {
                    return Err(err(ErrorCode::Muted, format!("the account is muted in group {group}")));
                }
            }
            Target::Friend { friend } => {
                if !self.friends.contains_key(&friend) {
                    return Err(err(ErrorCode::NotFriend, format!("{friend} is not a friend")));
                }
            }
            Target::Temp { group, user } => {
                if !self.group(group)?.members.contains_key(&user) {
                    return Err(err(ErrorCode::UnknownMember, format!("{user} is not a member of group {group}")));
                }
            }
        }
        Ok(())
    }

    /// A member of `group` other than the account, or `unknown_member`.
    fn member_mut(&mut self, group: GroupId, who: UserId) -> Result<&mut Member, OpError> {
        self.group_mut(group)?
            .members
            .get_mut(&who)
            .ok_or_else(|| err(ErrorCode::UnknownMember, format!("{who} is not a member of group {group}")))
    }

    /// A message still there (not recalled) in group `group`.
    fn group_message(&self, group: GroupId, backend_id: Option<UpstreamMsgId>) -> Result<&StoredMessage, OpError> {
        backend_id
            .and_then(|id| self.messages.get(&id.0).map(|m| &**m))
            .filter(|m| m.target == Target::Group { group } && !m.recalled)
            .ok_or_else(|| err(ErrorCode::UnknownMessage, format!("no such message in group {group}")))
    }

    fn nick_of(&self, who: UserId) -> String {
        self.friends
            .get(&who)
            .or_else(|| self.strangers.get(&who))
            .cloned()
            .or_else(|| self.groups.values().find_map(|g| g.members.get(&who).map(|m| m.nick.clone())))
            .unwrap_or_else(|| format!("user {who}"))
    }

    /// `who`'s rank in `group`; `me` is the account itself.
    fn rank(&self, group: GroupId, who: UserId, me: UserId) -> Result<Permission, OpError> {
        let g = self.group(group)?;
        if who == me {
            return Ok(g.bot_permission);
        }
        g.members
            .get(&who)
            .map(|m| m.permission)
            .ok_or_else(|| err(ErrorCode::UnknownMember, format!("{who} is not a member of group {group}")))
    }

    /// Checks that `actor` may recall message `backend_id` in `target`, then marks it recalled.
    fn recall(
        &mut self,
        target: Target,
        backend_id: UpstreamMsgId,
        actor: UserId,
        me: UserId,
    ) -> Result<UserId, OpError> {
        let number = backend_id.0;
        let m = self
            .messages
            .get(&number)
            .filter(|m| m.target == target)
            .ok_or_else(|| err(ErrorCode::UnknownMessage, "no such message here"))?;
        if m.recalled {
            return Err(err(ErrorCode::AlreadyRecalled, "the message was already recalled"));
        }
        let sender = m.sender;
        if sender != actor {
            let Target::Group { group } = target else {
                return Err(err(ErrorCode::PermissionDenied, "only the sender recalls a private message"));
            };
            if self.rank(group, actor, me)? <= self.rank(group, sender, me)? {
                return Err(err(ErrorCode::PermissionDenied, "only a higher rank recalls another's message"));
            }
        }
        if let Some(m) = self.messages.get_mut(&number) {
            // A copy if the store still holds the old one to write.
            Arc::make_mut(m).recalled = true;
        }
        self.persist(number);
        Ok(sender)
    }

    fn new_request(&mut self, request: PendingRequest) -> String {
        let token = format!("sim-{}", self.next_request);
        self.next_request += 1;
        self.requests.insert(token.clone(), request);
        token
    }

    fn take_request(&mut self, token: &str, kind: RequestKind) -> Result<&mut PendingRequest, OpError> {
        let req = self
            .requests
            .get_mut(token)
            .filter(|r| r.kind == kind)
            .ok_or_else(|| err(ErrorCode::UnknownRequest, "no such request"))?;
        if req.handled {
            return Err(err(ErrorCode::AlreadyHandled, "the request was already answered"));
        }
        Ok(req)
    }
}

fn muted(until: i64) -> bool {
    until > unix_now()
}

#[async_trait]
impl Backend for SimBackend {
    fn account(&self) -> AccountId {
        self.account
    }

    async fn send(&self, target: Target, message: OutgoingMessage) -> Result<Sent, OpError> {
        let mut w = self.world.lock();
        w.may_send(target)?;
        Ok(w.store(target, self.account.as_user(), message.quote, &message.elements))
    }

    async fn send_forward(&self, target: Target, nodes: Vec<ForwardNode>) -> Result<Sent, OpError> {
        let mut w = self.world.lock();
        w.may_send(target)?;
        let id = format!("sim-forward-{}", w.next_message);
        Ok(w.store(target, self.account.as_user(), None, &[Element::Forward { id, nodes }]))
    }

    async fn get_message(&self, target: Target, backend_id: UpstreamMsgId) -> Result<FetchedMessage, OpError> {
        let w = self.world.lock();
        let m = w
            .messages
            .get(&backend_id.0)
            .filter(|m| m.target == target && !m.recalled)
            .ok_or_else(|| err(ErrorCode::UnknownMessage, "no such message here (recalled, or too old)"))?;
        Ok(FetchedMessage {
            sender: m.sender,
            sender_name: if m.sender == self.account.as_user() { String::new() } else { w.nick_of(m.sender) },
            time: m.time,
            quote: w.quote(m.quote),
            elements: m.elements.clone(),
        })
    }

    async fn kick(&self, group: GroupId, member: UserId, reject_rejoin: bool) -> Result<(), OpError> {
        let mut w = self.world.lock();
        let me = self.account.as_user();
        if member == me || w.rank(group, me, me)? <= w.rank(group, member, me)? {
            return Err(err(ErrorCode::PermissionDenied, "only a higher rank removes a member"));
        }
        let g = w.group_mut(group)?;
        g.members.remove(&member);
        if reject_rejoin {
            g.rejected.insert(member);
        }
        self.emit(BackendEvent::group(GroupEvent::MemberLeft { who: member, group, operator: me }));
        Ok(())
    }

    async fn mute_all(&self, group: GroupId, enable: bool) -> Result<(), OpError> {
        let mut w = self.world.lock();
        let me = self.account.as_user();
        if w.rank(group, me, me)? < Permission::Administrator {
            return Err(err(ErrorCode::PermissionDenied, "only an admin mutes the whole group"));
        }
        w.group_mut(group)?.whole_muted = enable;
        let duration = if enable { -1 } else { 0 };
        self.emit(BackendEvent::group(GroupEvent::Mute { who: UserId(0), group, operator: me, duration }));
        Ok(())
    }

    async fn set_card(&self, group: GroupId, member: UserId, card: String) -> Result<(), OpError> {
        let mut w = self.world.lock();
        let me = self.account.as_user();
        if member == me {
            return Err(err(ErrorCode::Unsupported, "the sim world keeps no card for the account"));
        }
        let (mine, theirs) = (w.rank(group, me, me)?, w.rank(group, member, me)?);
        if mine < Permission::Administrator || mine <= theirs {
            return Err(err(ErrorCode::PermissionDenied, "only an admin of higher rank sets another's card"));
        }
        let m = w.member_mut(group, member)?;
        let old = std::mem::replace(&mut m.name_card, card.clone());
        self.emit(BackendEvent::group(GroupEvent::MemberCard { who: member, group, card, old }));
        Ok(())
    }

    async fn set_admin(&self, group: GroupId, member: UserId, enable: bool) -> Result<(), OpError> {
        let mut w = self.world.lock();
        let me = self.account.as_user();
        if w.rank(group, me, me)? != Permission::Owner {
            return Err(err(ErrorCode::PermissionDenied, "only the owner appoints admins"));
        }
        let m = w.member_mut(group, member)?;
        m.permission = if enable { Permission::Administrator } else { Permission::Member };
        self.emit(BackendEvent::group(GroupEvent::Admin { who: member, group, status: enable }));
        Ok(())
    }

    async fn poke(&self, group: Option<GroupId>, target: UserId) -> Result<(), OpError> {
        let w = self.world.lock();
        let from = self.account.as_user();
        let event = match group {
            Some(group) => {
                w.rank(group, target, from)?;
                BackendEvent::group(GroupEvent::Poke { from, target, group })
            }
            None => {
                if !w.friends.contains_key(&target) {
                    return Err(err(ErrorCode::NotFriend, format!("{target} is not a friend")));
                }
                BackendEvent::User { event: UserEvent::Poke { from, target }, request_token: None }
            }
        };
        self.emit(event);
        Ok(())
    }

    async fn recall(&self, target: Target, backend_id: UpstreamMsgId) -> Result<(), OpError> {
        let mut w = self.world.lock();
        let me = self.account.as_user();
        let revokee = w.recall(target, backend_id, me, me)?;
        self.emit(BackendEvent::Recall { target, backend_id, revoker: me, revokee });
        Ok(())
    }

    async fn mute(&self, group: GroupId, member: UserId, seconds: i64) -> Result<(), OpError> {
        if !(0..=MAX_MUTE_SECONDS).contains(&seconds) {
            return Err(err(ErrorCode::BadRequest, format!("time must be 0..={MAX_MUTE_SECONDS} seconds")));
        }
        let mut w = self.world.lock();
        let me = self.account.as_user();
        if w.rank(group, me, me)? <= w.rank(group, member, me)? || member == me {
            return Err(err(ErrorCode::PermissionDenied, "only a higher rank mutes a member"));
        }
        if let Some(m) = w.group_mut(group)?.members.get_mut(&member) {
            m.muted_until = if seconds == 0 { 0 } else { unix_now() + seconds };
        }
        self.emit(BackendEvent::group(GroupEvent::Mute { who: member, group, operator: me, duration: seconds }));
        Ok(())
    }

    async fn answer_friend_request(&self, answer: RequestAnswer) -> Result<(), OpError> {
        let mut w = self.world.lock();
        let req = w.take_request(&answer.token, RequestKind::Friend)?;
        req.handled = true;
        let (who, nick) = (req.who, req.nick.clone());
        if answer.accept {
            w.strangers.remove(&who);
            w.friends.insert(who, nick.clone());
            self.emit(BackendEvent::User { event: UserEvent::FriendAdded { who, nick }, request_token: None });
        }
        Ok(())
    }

    async fn answer_group_invite(&self, answer: RequestAnswer) -> Result<(), OpError> {
        let mut w = self.world.lock();
        let req = w.take_request(&answer.token, RequestKind::GroupInvite)?;
        req.handled = true;
        let (group, name) = (req.group, req.group_name.clone());
        if answer.accept {
            w.groups.entry(group).or_insert_with(|| Group::joined(name));
            self.emit(BackendEvent::User { event: UserEvent::GroupJoined { which: group }, request_token: None });
        }
        Ok(())
    }

    async fn answer_join_request(&self, answer: RequestAnswer) -> Result<(), OpError> {
        let mut w = self.world.lock();
        let req = w.take_request(&answer.token, RequestKind::Join)?;
        let (who, group, nick) = (req.who, req.group, req.nick.clone());
        if w.group(group)?.bot_permission < Permission::Administrator {
            return Err(err(ErrorCode::PermissionDenied, "only an admin answers join requests"));
        }
        if let Ok(req) = w.take_request(&answer.token, RequestKind::Join) {
            req.handled = true;
        }
        if answer.accept {
            w.group_mut(group)?.members.insert(who, Member::joined(nick));
            self.emit(BackendEvent::group(GroupEvent::MemberJoined { who, group }));
        }
        Ok(())
    }

    async fn friends(&self) -> Result<Vec<FriendModel>, OpError> {
        let w = self.world.lock();
        Ok(w.friends.iter().map(|(&id, nick)| FriendModel { id, nick: nick.clone() }).collect())
    }

    async fn groups(&self) -> Result<Vec<GroupModel>, OpError> {
        let w = self.world.lock();
        w.groups.keys().map(|&id| w.group_model(id)).collect()
    }

    async fn members(&self, group: GroupId) -> Result<Vec<MemberModel>, OpError> {
        let w = self.world.lock();
        Ok(w.group(group)?.members.iter().map(|(&id, m)| member_model(id, m)).collect())
    }

    async fn simulate(&self, action: Simulated) -> Result<u64, OpError> {
        let mut w = self.world.lock();
        let event = match action {
            Simulated::Message { target, sender, anonymous, quote, elements } => {
                let (group, sender_model) = match target {
                    Target::Group { group } => {
                        let g = w.group(group)?;
                        let m = g.members.get(&sender).ok_or_else(|| {
                            err(ErrorCode::UnknownMember, format!("{sender} is not a member of group {group}"))
                        })?;
                        if muted(m.muted_until) || (g.whole_muted && m.permission == Permission::Member) {
                            return Err(err(ErrorCode::Muted, format!("{sender} is muted in group {group}")));
                        }
                        (Some(w.group_model(group)?), Sender::Member(member_model(sender, m)))
                    }
                    Target::Friend { friend } => {
                        let nick = w
                            .friends
                            .get(&friend)
                            .ok_or_else(|| err(ErrorCode::NotFriend, format!("{friend} is not a friend")))?;
                        (None, Sender::Friend(FriendModel { id: friend, nick: nick.clone() }))
                    }
                    Target::Temp { group, user } => {
                        let m = w.group(group)?.members.get(&user).ok_or_else(|| {
                            err(ErrorCode::UnknownMember, format!("{user} is not a member of group {group}"))
                        })?;
                        let nick = m.nick.clone();
                        (Some(w.group_model(group)?), Sender::Friend(FriendModel { id: user, nick }))
                    }
                };
                let sent = w.store(target, sender, quote, &elements);
                let quote = w.quote(quote);
                BackendEvent::Message(IncomingMessage {
                    target,
                    group,
                    sender: sender_model,
                    backend_id: sent.backend_id,
                    time: sent.time,
                    quote,
                    elements,
                    anonymous,
                })
            }
            Simulated::Recall { target, backend_id, revoker } => {
                let revokee = w.recall(target, backend_id, revoker, self.account.as_user())?;
                BackendEvent::Recall { target, backend_id, revoker, revokee }
            }
            Simulated::User(event) => self.apply_user(&mut w, event)?,
            Simulated::Group { event, about } => self.apply_group(&mut w, event, about)?,
        };
        Ok(self.emit(event))
    }
}

fn member_model(id: UserId, m: &Member) -> MemberModel {
    let name_card_or_nick = if m.name_card.is_empty() { m.nick.clone() } else { m.name_card.clone() };
    MemberModel {
        id,
        nick: m.nick.clone(),
        name_card: m.name_card.clone(),
        name_card_or_nick,
        permission: m.permission,
        special_title: m.special_title.clone(),
    }
}

impl SimBackend {
    /// Applies an injected user event to the world; returns the event to report.
    fn apply_user(&self, w: &mut World, event: UserEvent) -> Result<BackendEvent, OpError> {
        let mut request_token = None;
        let event = match event {
            UserEvent::NewFriendRequest { who, nick, source, comment, .. } => {
                let nick = if nick.is_empty() { w.nick_of(who) } else { nick };
                request_token = Some(w.new_request(PendingRequest {
                    kind: RequestKind::Friend,
                    who,
                    nick: nick.clone(),
                    group: GroupId(0),
                    group_name: String::new(),
                    handled: false,
                }));
                UserEvent::NewFriendRequest { who, nick, source, comment, request_id: None }
            }
            UserEvent::GroupInvite { group, group_name, inviter, .. } => {
                let group_name = if group_name.is_empty() { format!("group {group}") } else { group_name };
                request_token = Some(w.new_request(PendingRequest {
                    kind: RequestKind::GroupInvite,
                    who: inviter,
                    nick: w.nick_of(inviter),
                    group,
                    group_name: group_name.clone(),
                    handled: false,
                }));
                UserEvent::GroupInvite { group, group_name, inviter, request_id: None }
            }
            UserEvent::FriendAdded { who, nick } => {
                let nick = if nick.is_empty() { w.nick_of(who) } else { nick };
                w.strangers.remove(&who);
                w.friends.insert(who, nick.clone());
                UserEvent::FriendAdded { who, nick }
            }
            UserEvent::FriendRemoved { who, .. } => {
                let nick = w
                    .friends
                    .remove(&who)
                    .ok_or_else(|| err(ErrorCode::NotFriend, format!("{who} is not a friend")))?;
                UserEvent::FriendRemoved { who, nick }
            }
            UserEvent::GroupJoined { which } => {
                w.groups.entry(which).or_insert_with(|| Group::joined(format!("group {which}")));
                UserEvent::GroupJoined { which }
            }
            UserEvent::GroupLeft { which, operator } => {
                w.groups.remove(&which).ok_or_else(|| err(ErrorCode::NotInGroup, format!("not in group {which}")))?;
                UserEvent::GroupLeft { which, operator }
            }
            UserEvent::Poke { from, target } => {
                let me = self.account.as_user();
                let other = if from == me { target } else { from };
                if (from != me && target != me) || !w.friends.contains_key(&other) {
                    return Err(err(ErrorCode::NotFriend, "a private poke is between the account and a friend"));
                }
                UserEvent::Poke { from, target }
            }
            e @ (UserEvent::Online | UserEvent::Offline) => e,
        };
        Ok(BackendEvent::User { event, request_token })
    }

    /// Applies an injected group event to the world; returns the event to report.
    fn apply_group(
        &self,
        w: &mut World,
        event: GroupEvent,
        about: Option<UpstreamMsgId>,
    ) -> Result<BackendEvent, OpError> {
        let me = self.account.as_user();
        let mut request_token = None;
        let mut named = None;
        let event = match event {
            GroupEvent::JoinRequest { who, group, comment, inviter, .. } => {
                if w.group(group)?.rejected.contains(&who) {
                    return Err(err(ErrorCode::Forbidden, format!("{who} was kicked from {group} with rejectRejoin")));
                }
                let nick = w.nick_of(who);
                request_token = Some(w.new_request(PendingRequest {
                    kind: RequestKind::Join,
                    who,
                    nick,
                    group,
                    group_name: String::new(),
                    handled: false,
                }));
                GroupEvent::JoinRequest { who, group, comment, inviter, request_id: None }
            }
            GroupEvent::Mute { who, group, operator, duration } => {
                let whole_group = who == UserId(0);
                // -1: the whole group, until lifted.
                let until_lifted = whole_group && duration == -1;
                if !((0..=MAX_MUTE_SECONDS).contains(&duration) || until_lifted) {
                    return Err(err(ErrorCode::BadRequest, format!("duration must be 0..={MAX_MUTE_SECONDS}")));
                }
                let op_rank = w.rank(group, operator, me)?;
                let allowed = if whole_group {
                    op_rank >= Permission::Administrator
                } else {
                    op_rank > w.rank(group, who, me)?
                };
                if !allowed {
                    return Err(err(ErrorCode::PermissionDenied, "only a higher rank mutes"));
                }
                let until = if duration == 0 { 0 } else { unix_now() + duration };
                let g = w.group_mut(group)?;
                if whole_group {
                    g.whole_muted = duration != 0;
                } else if who == me {
                    g.bot_muted_until = until;
                } else if let Some(m) = g.members.get_mut(&who) {
                    m.muted_until = until;
                }
                GroupEvent::Mute { who, group, operator, duration }
            }
            GroupEvent::Admin { who, group, status } => {
                let rank = if status { Permission::Administrator } else { Permission::Member };
                if w.rank(group, who, me)? == Permission::Owner {
                    return Err(err(ErrorCode::PermissionDenied, "the owner's rank cannot change"));
                }
                let g = w.group_mut(group)?;
                if who == me {
                    g.bot_permission = rank;
                } else if let Some(m) = g.members.get_mut(&who) {
                    m.permission = rank;
                }
                GroupEvent::Admin { who, group, status }
            }
            GroupEvent::MemberJoined { who, group } => {
                let nick = w.nick_of(who);
                w.group_mut(group)?.members.entry(who).or_insert(Member::joined(nick));
                GroupEvent::MemberJoined { who, group }
            }
            GroupEvent::MemberLeft { who, group, operator } => {
                if operator != who && w.rank(group, operator, me)? <= w.rank(group, who, me)? {
                    return Err(err(ErrorCode::PermissionDenied, "only a higher rank removes a member"));
                }
                w.group_mut(group)?
                    .members
                    .remove(&who)
                    .ok_or_else(|| err(ErrorCode::UnknownMember, format!("{who} is not a member of group {group}")))?;
                GroupEvent::MemberLeft { who, group, operator }
            }
            GroupEvent::Poke { from, target, group } => {
                w.rank(group, from, me)?;
                w.rank(group, target, me)?;
                GroupEvent::Poke { from, target, group }
            }
            GroupEvent::Reaction { who, group, message_source, emoji, add } => {
                w.rank(group, who, me)?;
                w.group_message(group, about)?;
                if emoji.is_empty() || emoji.len() > 32 {
                    return Err(err(ErrorCode::BadRequest, "an emoji is 1 to 32 bytes"));
                }
                named = about.map(|id| (Target::Group { group }, id));
                GroupEvent::Reaction { who, group, message_source, emoji, add }
            }
            GroupEvent::Essence { group, message_source, operator, set, .. } => {
                if w.rank(group, operator, me)? < Permission::Administrator {
                    return Err(err(ErrorCode::PermissionDenied, "only an admin sets essence messages"));
                }
                let sender = w.group_message(group, about)?.sender;
                named = about.map(|id| (Target::Group { group }, id));
                GroupEvent::Essence { group, message_source, sender, operator, set }
            }
            GroupEvent::MemberCard { who, group, card, .. } => {
                let old = std::mem::replace(&mut w.member_mut(group, who)?.name_card, card.clone());
                GroupEvent::MemberCard { who, group, card, old }
            }
            GroupEvent::FileUpload { who, group, file } => {
                w.rank(group, who, me)?;
                if file.name.is_empty() || file.size < 0 {
                    return Err(err(ErrorCode::BadRequest, "a file has a name and a size of 0 or more"));
                }
                GroupEvent::FileUpload { who, group, file }
            }
            GroupEvent::Honor { who, group, honor } => {
                w.rank(group, who, me)?;
                GroupEvent::Honor { who, group, honor }
            }
            GroupEvent::Title { who, group, title } => {
                w.member_mut(group, who)?.special_title = title.clone();
                GroupEvent::Title { who, group, title }
            }
        };
        Ok(BackendEvent::Group { event, request_token, about: named })
    }
}
