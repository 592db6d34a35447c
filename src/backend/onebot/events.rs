//! Upstream events → backend events, in arrival order, by one task: messages
//! get their group's model (asked for once, then cached), the link's state
//! becomes online/offline events, heartbeats are noted.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::wire::{self, Scene, Upstream};
use super::{Inbound, Inner};
use crate::backend::{BackendEvent, IncomingMessage, Sender};
use crate::schema::{
    Element, FriendModel, GroupEvent, GroupId, GroupModel, Permission, Target, UpstreamMsgId, UserEvent, UserId,
};

impl Inner {
    /// A group's model: cached, else asked for (name, and the account's rank).
    pub(super) async fn group(&self, group: GroupId) -> GroupModel {
        if let Some(model) = self.groups.lock().get(&group) {
            return model.clone();
        }
        let info = self.call("get_group_info", json!({"group_id": group})).await;
        let me = self.call("get_group_member_info", json!({"group_id": group, "user_id": self.config.id})).await;
        let name = info.as_ref().ok().and_then(|d| d.get("group_name")).and_then(Value::as_str).unwrap_or_default();
        let rank = me.as_ref().ok().and_then(|d| d.get("role")).and_then(Value::as_str).map(wire::permission);
        let model = GroupModel { id: group, name: name.to_owned(), bot_permission: rank.unwrap_or(Permission::Member) };
        if info.is_ok() && me.is_ok() {
            self.groups.lock().insert(group, model.clone());
        }
        model
    }
    /// Maps events in arrival order and hands them to the bridge.
    pub(super) async fn map_events(self: Arc<Self>, mut inbound: mpsc::UnboundedReceiver<Inbound>) {
        let id = self.config.id;
        while let Some(next) = inbound.recv().await {
            let frame = match next {
                Inbound::Frame(frame) => frame,
                Inbound::Link { online } => {
                    self.set_online_now(online);
                    continue;
                }
            };
            // A window of 0 keeps every repeat: nothing to remember.
            let window = self.config.dedup_window;
            if !window.is_zero()
                && let Some(key) = wire::identity(&frame)
                && self.seen.lock().repeated(key, window)
            {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("dropping a repeated upstream frame: {frame}");
                continue;
            }
            let Some(upstream) = wire::event(&frame, id) else {
                tracing::warn!("ignoring an event with missing or malformed fields: {frame}");
                continue;
            };
            let event = match upstream {
                Upstream::Message { scene, mut sender, message_id, time, segments, anonymous } => {
                    let (mut elements, quote) = wire::elements(&segments);
                    self.expand_forwards(&mut elements).await;
                    if let Some(anon) = &anonymous {
                        self.remember_anonymous(message_id, anon);
                        // The name it posts under is all anyone sees of it.
                        if let (Some(obj), Some(name)) = (sender.as_object_mut(), anon.get("name").cloned()) {
                            obj.insert("nickname".into(), name.clone());
                            obj.insert("card".into(), name);
                        }
                    }
                    let user = UserId(sender.get("user_id").and_then(wire::int).unwrap_or(0));
                    let friend = || FriendModel {
                        id: user,
                        nick: sender.get("nickname").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    };
                    let (target, group, from) = match scene {
                        Scene::Group { group } => (
                            Target::Group { group },
                            Some(self.group(group).await),
                            Sender::Member(wire::member(&sender)),
                        ),
                        Scene::Friend => (Target::Friend { friend: user }, None, Sender::Friend(friend())),
                        Scene::Temp { group } => {
                            (Target::Temp { group, user }, Some(self.group(group).await), Sender::Friend(friend()))
                        }
                    };
                    BackendEvent::Message(IncomingMessage {
                        target,
                        group,
                        sender: from,
                        backend_id: message_id,
                        time,
                        quote,
                        elements,
                        anonymous: anonymous.is_some(),
                    })
                }
                Upstream::Event(event) => {
                    self.update_cache(&event);
                    event
                }
                Upstream::Lifecycle { online } => {
                    self.set_online_now(online);
                    continue;
                }
                Upstream::Heartbeat { interval_ms, online } => {
                    if let Some(ms) = interval_ms.filter(|ms| *ms > 0) {
                        *self.heartbeat.lock() = Some((Instant::now(), Duration::from_millis(ms)));
                    }
                    self.set_online_now(online.unwrap_or(true));
                    continue;
                }
                Upstream::Ignored => continue,
            };
            (self.sink)(id, event);
        }
    }

    /// Fills in the nodes of forwarded messages that came by ID only (the
    /// first few: each is a call upstream, and events wait for it).
    pub(super) async fn expand_forwards(&self, elements: &mut [Element]) {
        const MAX_EXPANDED: usize = 4;
        let by_id = |e: &Element| matches!(e, Element::Forward { id, nodes } if nodes.is_empty() && !id.is_empty());
        for e in elements.iter_mut().filter(|e| by_id(e)).take(MAX_EXPANDED) {
            let Element::Forward { id, nodes } = e else { continue };
            match self.call("get_forward_msg", json!({"message_id": id, "id": id})).await {
                Ok(data) => *nodes = wire::forward_nodes(data.get("messages").unwrap_or(&data)),
                Err(e) => tracing::warn!(forward = %id, "could not expand a forwarded message: {e}"),
            }
        }
    }

    /// Keeps an anonymous message's flag, which muting its sender needs.
    fn remember_anonymous(&self, message_id: UpstreamMsgId, anonymous: &Value) {
        let flag = anonymous.get("flag").and_then(Value::as_str).unwrap_or_default();
        if flag.is_empty() {
            return;
        }
        let mut flags = self.anonymous.lock();
        if flags.len() >= super::ANONYMOUS_KEPT {
            flags.pop_front();
        }
        flags.push_back((message_id, flag.to_owned()));
    }

    /// Emits online/offline when the state changes (event task only).
    pub(super) fn set_online_now(&self, online: bool) {
        if self.online.swap(online, Ordering::SeqCst) != online {
            let event = if online { UserEvent::Online } else { UserEvent::Offline };
            tracing::info!(online, "account state");
            (self.sink)(self.config.id, BackendEvent::User { event, request_token: None });
        }
    }

    fn update_cache(&self, event: &BackendEvent) {
        let me = self.config.id.as_user();
        match event {
            BackendEvent::Group { event: GroupEvent::Admin { who, group, status }, .. } if *who == me => {
                if let Some(g) = self.groups.lock().get_mut(group) {
                    g.bot_permission = if *status { Permission::Administrator } else { Permission::Member };
                }
            }
            BackendEvent::User {
                event: UserEvent::GroupLeft { which, .. } | UserEvent::GroupJoined { which }, ..
            } => {
                self.groups.lock().remove(which);
            }
            _ => {}
        }
    }
}
