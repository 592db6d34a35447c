//! Backend events → schema events: each message, recall and request gets its
//! registry IDs here, then goes onto the bus.

use super::Bridge;
use super::outgoing::preview;
use crate::backend::{BackendEvent, IncomingMessage, QuoteRef, Sender};
use crate::registry::{MessageRef, RequestInfo, RequestKind, SourceInfo};
use crate::schema::{
    AccountId, ChatKind, Element, Event, FriendModel, GroupEvent, GroupId, GroupModel, MemberModel, MessageEvent,
    Permission, RevokeEvent, Target, UpstreamMsgId, UserEvent, UserId,
};

impl Bridge {
    /// Gives a backend event its registry IDs and publishes it. Returns its `seq`.
    pub fn ingest(&self, account: AccountId, event: BackendEvent) -> u64 {
        self.metrics.event_in();
        let now = self.now_s();
        let (time, event) = match event {
            BackendEvent::Message(m) => (m.time, Event::Msg(self.message_event(account, m))),
            BackendEvent::Recall { target, backend_id, revoker, revokee } => {
                (now, Event::Revoke(self.revoke_event(account, now, target, backend_id, revoker, revokee)))
            }
            BackendEvent::User { mut event, request_token } => {
                if let Some(token) = request_token {
                    self.issue_user_request(account, &mut event, token);
                }
                (now, Event::User(event))
            }
            BackendEvent::Group { mut event, request_token, about } => {
                if let (Some((target, backend_id)), Some(slot)) = (about, event.message_source_mut()) {
                    let msg = MessageRef { account, target, backend_id };
                    *slot = self.registry.source_of(&msg).unwrap_or_else(|| {
                        self.registry.issue_source(SourceInfo {
                            msg,
                            sender: UserId(0),
                            time: now,
                            text: String::new(),
                        })
                    });
                }
                if let (Some(token), GroupEvent::JoinRequest { who, group, request_id, .. }) =
                    (request_token, &mut event)
                {
                    let info = RequestInfo { account, kind: RequestKind::Join, token, who: *who, group: *group };
                    *request_id = Some(self.registry.issue_request(info));
                }
                (now, Event::Group(event))
            }
        };
        self.bus.publish_event(account, time, event)
    }

    /// A recall names the source ID consumers already saw, or a new one.
    fn revoke_event(
        &self,
        account: AccountId,
        now: i64,
        target: Target,
        backend_id: UpstreamMsgId,
        revoker: UserId,
        revokee: UserId,
    ) -> RevokeEvent {
        let msg = MessageRef { account, target, backend_id };
        let msg_id = self.registry.source_of(&msg).unwrap_or_else(|| {
            self.registry.issue_source(SourceInfo { msg, sender: revokee, time: now, text: String::new() })
        });
        let (kind, channel) = match target {
            Target::Group { group } => (ChatKind::Group, group.0),
            Target::Friend { friend } => (ChatKind::Private, friend.0),
            Target::Temp { user, .. } => (ChatKind::Private, user.0),
        };
        RevokeEvent { kind, revoker, revokee, channel, msg_id }
    }

    /// Swaps a friend request's or group invite's backend token for a request ID.
    fn issue_user_request(&self, account: AccountId, event: &mut UserEvent, token: String) {
        let (kind, who, group) = match &*event {
            UserEvent::NewFriendRequest { who, .. } => (RequestKind::Friend, *who, GroupId(0)),
            UserEvent::GroupInvite { group, inviter, .. } => (RequestKind::GroupInvite, *inviter, *group),
            _ => return,
        };
        let id = self.registry.issue_request(RequestInfo { account, kind, token, who, group });
        if let UserEvent::NewFriendRequest { request_id, .. } | UserEvent::GroupInvite { request_id, .. } = event {
            *request_id = Some(id);
        }
    }

    /// The Quote of a message in `target`: the source ID consumers saw, or a new one.
    pub(super) fn quote_element(&self, account: AccountId, target: Target, q: QuoteRef) -> Element {
        let quoted = MessageRef { account, target, backend_id: q.backend_id };
        let id = self.registry.source_of(&quoted).unwrap_or_else(|| {
            self.registry.issue_source(SourceInfo {
                msg: quoted,
                sender: q.to.unwrap_or_default(),
                time: q.time.unwrap_or(0),
                text: q.text.clone().unwrap_or_default(),
            })
        });
        Element::Quote { id, to: q.to, time: q.time, text: q.text }
    }

    fn message_event(&self, account: AccountId, m: IncomingMessage) -> MessageEvent {
        let msg = MessageRef { account, target: m.target, backend_id: m.backend_id };
        let text = preview(&m.elements);
        let source_id = self.registry.issue_source(SourceInfo { msg, sender: m.sender.id(), time: m.time, text });
        let reply_key = self.registry.issue_reply_key(msg);
        let mut message = Vec::with_capacity(m.elements.len() + 2);
        message.push(Element::MessageSource { id: source_id });
        if let Some(q) = m.quote {
            message.push(self.quote_element(account, m.target, q));
        }
        message.extend(m.elements);
        let group_model = |id: GroupId| {
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
                    account,
                    anonymous: m.anonymous,
                }
            }
            (Target::Friend { .. }, sender) => {
                MessageEvent::FriendMessage { sender: friend_model(sender), message, reply_key, account }
            }
            (Target::Temp { group, .. }, sender) => MessageEvent::TempMessage {
                group: group_model(group),
                sender: friend_model(sender),
                message,
                reply_key,
                account,
            },
        }
    }
}

fn friend_model(sender: Sender) -> FriendModel {
    match sender {
        Sender::Friend(f) => f,
        Sender::Member(m) => FriendModel { id: m.id, nick: m.nick },
    }
}
