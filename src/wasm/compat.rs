//! The older worlds, so bots built for them keep running unchanged.
//!
//! * `botbridge:bot@0.2.0`: its types are 0.3.0's without the extensions
//!   (new events, forwarded messages). Values cross between the two through
//!   serde (the generated types of both derive it and have the same shapes);
//!   an event 0.2.0 has no case for is not delivered to such a bot, and a
//!   forwarded message reaches it as an `other` element of kind `forward`.
//! * `botbridge:bot@0.1.0`: 0.2.0's types under the old function names.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::bindings::botbridge::bot as current;
use super::bindings::v0_1::botbridge::bot as v0_1;
use super::bindings::v0_2::botbridge::bot::{
    config as v2_config, kv as v2_kv, log as v2_log, operations as v2_ops, timers as v2_timers, types as v2,
};
use super::store::BotState;
use current::{operations, types};

/// A value of one world's type as the other world's same-shaped type.
fn carry<A: Serialize, B: DeserializeOwned>(a: &A) -> Option<B> {
    serde_json::to_value(a).ok().and_then(|v| serde_json::from_value(v).ok())
}

fn internal() -> v2::Error {
    v2::Error { code: v2::ErrorCode::Internal, message: "a value did not fit world 0.2.0".into() }
}

/// A 0.2.0 argument in 0.3.0's terms (0.2.0's values are all 0.3.0 values).
fn up<A: Serialize, B: DeserializeOwned>(a: A) -> Result<B, v2::Error> {
    carry(&a).ok_or_else(internal)
}

/// A 0.3.0 answer in 0.2.0's terms.
fn down<A: Serialize, B: DeserializeOwned>(r: Result<A, types::Error>) -> Result<B, v2::Error> {
    match r {
        Ok(a) => carry(&a).ok_or_else(internal),
        Err(e) => Err(carry(&e).unwrap_or_else(internal)),
    }
}

/// Events converted for 0.2.0 bots, shared by them as `convert::shared_event`
/// shares 0.3.0's: a slot per `seq` modulo the size, keyed by the very 0.3.0
/// value it came from (held, so no other value can take its address).
static SHARED: [parking_lot::Mutex<Option<Converted>>; SLOTS] = [const { parking_lot::const_mutex(None) }; SLOTS];
const SLOTS: usize = 256;
type Converted = (Arc<types::Event>, Option<Arc<v2::Event>>);

/// `event_v0_2`, converted once for every 0.2.0 bot that takes it.
pub fn event_v0_2_shared(event: &Arc<types::Event>) -> Option<Arc<v2::Event>> {
    let slot = &SHARED[(event.seq % SLOTS as u64) as usize];
    if let Some((from, to)) = &*slot.lock()
        && Arc::ptr_eq(from, event)
    {
        return to.clone();
    }
    let to = event_v0_2(event).map(Arc::new);
    *slot.lock() = Some((event.clone(), to.clone()));
    to
}

/// An event for a 0.2.0 bot; None for the kinds 0.2.0 does not have.
pub fn event_v0_2(event: &types::Event) -> Option<v2::Event> {
    let mut value = serde_json::to_value(event).ok()?;
    forwards_as_other(&mut value);
    serde_json::from_value(value).ok()
}

/// Replaces each `Forward` element (serde's `{"Forward": …}`) with an
/// `Other` of kind `forward` holding the nodes as JSON.
fn forwards_as_other(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if map.len() == 1
                && let Some(forward) = map.remove("Forward")
            {
                map.insert("Other".into(), serde_json::json!({"kind": "forward", "data": forward.to_string()}));
                return;
            }
            map.values_mut().for_each(forwards_as_other);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(forwards_as_other),
        _ => {}
    }
}

impl v2::Host for BotState {}

impl v2_ops::Host for BotState {
    async fn reply(&mut self, key: String, message: Vec<v2::Element>) -> Result<v2::Sent, v2::Error> {
        down(operations::Host::reply(self, key, up(message)?).await)
    }
    async fn send_to_group(
        &mut self,
        bot: Option<i64>,
        group: i64,
        message: Vec<v2::Element>,
    ) -> Result<v2::Sent, v2::Error> {
        down(operations::Host::send_to_group(self, bot, group, up(message)?).await)
    }
    async fn send_to_friend(
        &mut self,
        bot: Option<i64>,
        friend: i64,
        message: Vec<v2::Element>,
    ) -> Result<v2::Sent, v2::Error> {
        down(operations::Host::send_to_friend(self, bot, friend, up(message)?).await)
    }
    async fn recall_receipt(&mut self, receipt: String) -> Result<(), v2::Error> {
        down(operations::Host::recall_receipt(self, receipt).await)
    }
    async fn recall(&mut self, source: String) -> Result<(), v2::Error> {
        down(operations::Host::recall(self, source).await)
    }
    async fn mute_member(&mut self, bot: Option<i64>, group: i64, member: i64, seconds: i64) -> Result<(), v2::Error> {
        let whom = operations::MuteTarget::Member(operations::GroupMember { group, member });
        down(operations::Host::mute_member(self, bot, whom, seconds).await)
    }
    async fn handle_friend_request(&mut self, id: String, accept: bool, why: Option<String>) -> Result<(), v2::Error> {
        down(operations::Host::handle_friend_request(self, id, accept, why).await)
    }
    async fn handle_group_invite(&mut self, id: String, accept: bool, why: Option<String>) -> Result<(), v2::Error> {
        down(operations::Host::handle_group_invite(self, id, accept, why).await)
    }
    async fn handle_join_request(&mut self, id: String, accept: bool, why: Option<String>) -> Result<(), v2::Error> {
        down(operations::Host::handle_join_request(self, id, accept, why).await)
    }
    async fn list_friends(&mut self, bot: Option<i64>) -> Result<Vec<v2::Friend>, v2::Error> {
        down(operations::Host::list_friends(self, bot).await)
    }
    async fn list_groups(&mut self, bot: Option<i64>) -> Result<Vec<v2::Group>, v2::Error> {
        down(operations::Host::list_groups(self, bot).await)
    }
    async fn list_members(&mut self, bot: Option<i64>, group: i64) -> Result<Vec<v2::Member>, v2::Error> {
        down(operations::Host::list_members(self, bot, group).await)
    }
}

impl v2_log::Host for BotState {
    async fn log(&mut self, level: v2_log::Level, message: String) {
        if let Some(level) = carry(&level) {
            current::log::Host::log(self, level, message).await
        }
    }
}

/// An older world's kv: the same functions, with the same types, as 0.3.0's.
macro_rules! same_kv {
    ($host:path) => {
        impl $host for BotState {
            async fn get(&mut self, key: String) -> Option<Vec<u8>> {
                current::kv::Host::get(self, key).await
            }
            async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
                current::kv::Host::set(self, key, value).await
            }
            async fn delete(&mut self, key: String) {
                current::kv::Host::delete(self, key).await
            }
            async fn list(&mut self, prefix: String) -> Vec<String> {
                current::kv::Host::list(self, prefix).await
            }
        }
    };
}

same_kv!(v2_kv::Host);
same_kv!(v0_1::kv::Host);

impl v2_timers::Host for BotState {
    async fn set(&mut self, tag: String, schedule: v2_timers::Schedule) -> Result<(), v2_timers::TimerError> {
        let Some(schedule) = carry(&schedule) else { return Err(v2_timers::TimerError::Unavailable) };
        let r = current::timers::Host::set(self, tag, schedule).await;
        r.map_err(|e| carry(&e).unwrap_or(v2_timers::TimerError::Unavailable))
    }
    async fn cancel(&mut self, tag: String) -> Result<bool, v2_timers::TimerError> {
        let r = current::timers::Host::cancel(self, tag).await;
        r.map_err(|e| carry(&e).unwrap_or(v2_timers::TimerError::Unavailable))
    }
    async fn list(&mut self) -> Vec<v2_timers::Timer> {
        let timers = current::timers::Host::list(self).await;
        carry(&timers).unwrap_or_default()
    }
}

impl v2_config::Host for BotState {
    async fn get(&mut self, key: String) -> Option<String> {
        current::config::Host::get(self, key).await
    }
}

impl v0_1::operations::Host for BotState {
    async fn reply(&mut self, key: String, message: Vec<v2::Element>) -> Result<v2::Sent, v2::Error> {
        v2_ops::Host::reply(self, key, message).await
    }
    async fn send_to_group(
        &mut self,
        bot: Option<i64>,
        group: i64,
        message: Vec<v2::Element>,
    ) -> Result<v2::Sent, v2::Error> {
        v2_ops::Host::send_to_group(self, bot, group, message).await
    }
    async fn send_to_friend(
        &mut self,
        bot: Option<i64>,
        friend: i64,
        message: Vec<v2::Element>,
    ) -> Result<v2::Sent, v2::Error> {
        v2_ops::Host::send_to_friend(self, bot, friend, message).await
    }
    async fn recall_receipt(&mut self, receipt: String) -> Result<(), v2::Error> {
        v2_ops::Host::recall_receipt(self, receipt).await
    }
    async fn recall(&mut self, source: String) -> Result<(), v2::Error> {
        v2_ops::Host::recall(self, source).await
    }
    async fn mute_member(&mut self, bot: Option<i64>, group: i64, member: i64, seconds: i64) -> Result<(), v2::Error> {
        v2_ops::Host::mute_member(self, bot, group, member, seconds).await
    }
    async fn handle_friend_request(&mut self, id: String, accept: bool, why: Option<String>) -> Result<(), v2::Error> {
        v2_ops::Host::handle_friend_request(self, id, accept, why).await
    }
    async fn handle_group_invite(&mut self, id: String, accept: bool, why: Option<String>) -> Result<(), v2::Error> {
        v2_ops::Host::handle_group_invite(self, id, accept, why).await
    }
    async fn handle_join_request(&mut self, id: String, accept: bool, why: Option<String>) -> Result<(), v2::Error> {
        v2_ops::Host::handle_join_request(self, id, accept, why).await
    }
    async fn list_friends(&mut self, bot: Option<i64>) -> Result<Vec<v2::Friend>, v2::Error> {
        v2_ops::Host::list_friends(self, bot).await
    }
    async fn list_groups(&mut self, bot: Option<i64>) -> Result<Vec<v2::Group>, v2::Error> {
        v2_ops::Host::list_groups(self, bot).await
    }
    async fn list_members(&mut self, bot: Option<i64>, group: i64) -> Result<Vec<v2::Member>, v2::Error> {
        v2_ops::Host::list_members(self, bot, group).await
    }
}

impl v0_1::log::Host for BotState {
    async fn log(&mut self, level: v0_1::log::Level, message: String) {
        let level = match level {
            v0_1::log::Level::Trace => current::log::Level::Trace,
            v0_1::log::Level::Debug => current::log::Level::Debug,
            v0_1::log::Level::Info => current::log::Level::Info,
            v0_1::log::Level::Warn => current::log::Level::Warn,
            v0_1::log::Level::Error => current::log::Level::Error,
        };
        current::log::Host::log(self, level, message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: types::EventData) -> types::Event {
        types::Event { seq: 7, time: 1, bot: 10001, data }
    }

    #[test]
    fn a_forward_reaches_0_2_0_as_other_and_new_events_not_at_all() {
        let node = types::ForwardNode {
            sender: 3,
            name: "Mia".into(),
            time: 0,
            message: vec![types::NodeElement::Plain("in".into())],
        };
        let message = vec![
            types::Element::MessageSource("s1".into()),
            types::Element::Forward(types::Forward { id: "f1".into(), nodes: vec![node] }),
        ];
        let friend = types::Friend { id: 3, nick: "Mia".into() };
        let msg = types::FriendMessage { sender: friend, reply_key: "k".into(), message };
        let old = event_v0_2(&event(types::EventData::Msg(types::MessageEvent::Friend(msg)))).expect("fits 0.2.0");
        let v2::EventData::Msg(v2::MessageEvent::Friend(m)) = old.data else { panic!("a friend message") };
        assert!(matches!(&m.message[0], v2::Element::MessageSource(id) if id == "s1"));
        let v2::Element::Other(other) = &m.message[1] else { panic!("{:?}", m.message[1]) };
        assert_eq!(other.kind, "forward");
        let data: serde_json::Value = serde_json::from_str(&other.data).expect("JSON");
        assert_eq!(data["id"], "f1");
        assert_eq!(data["nodes"][0]["name"], "Mia");

        let poke = types::PokeEvent { from: 3, target: 10001, group: 1 };
        assert!(event_v0_2(&event(types::EventData::Group(types::GroupEvent::Poke(poke)))).is_none());
        let online = event_v0_2(&event(types::EventData::User(types::UserEvent::Online))).expect("fits");
        assert!(matches!(online.data, v2::EventData::User(v2::UserEvent::Online)));
    }
}
