//! The protocol's operations, on the account that received the event (the
//! bridge's only account, or pass `Some(account)` through [`raw`]).
//! Every failure is an [`Error`] with a stable [`ErrorCode`](crate::ErrorCode).

use crate::bindings::botbridge::bot::operations as wit;
use crate::{Chain, Error, FetchedMessage, ForwardNode, Friend, Group, Member, Sent};

/// The generated functions, with every parameter (`bot` included).
pub use crate::bindings::botbridge::bot::operations as raw;

/// Answers the message whose reply key this is, in its scene.
pub fn reply(reply_key: &str, message: impl Into<Chain>) -> Result<Sent, Error> {
    wit::reply(reply_key, &message.into().0)
}

pub fn send_to_group(group: i64, message: impl Into<Chain>) -> Result<Sent, Error> {
    wit::send_to_group(None, group, &message.into().0)
}

pub fn send_to_friend(friend: i64, message: impl Into<Chain>) -> Result<Sent, Error> {
    wit::send_to_friend(None, friend, &message.into().0)
}

/// Recalls a received message by its source ID.
pub fn recall(source_id: &str) -> Result<(), Error> {
    wit::recall(source_id)
}

/// Recalls a message this bot sent, by the receipt its send returned.
pub fn recall_receipt(receipt_id: &str) -> Result<(), Error> {
    wit::recall_receipt(receipt_id)
}

/// Mutes `member` of `group` for `seconds`; 0 lifts the mute.
pub fn mute(group: i64, member: i64, seconds: i64) -> Result<(), Error> {
    wit::mute_member(None, &wit::MuteTarget::Member(wit::GroupMember { group, member }), seconds)
}

/// How to answer a friend request, group invite or join request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Reject { reason: Option<String> },
}

impl Answer {
    fn parts(&self) -> (bool, Option<&str>) {
        match self {
            Answer::Accept => (true, None),
            Answer::Reject { reason } => (false, reason.as_deref()),
        }
    }
}

pub fn answer_friend_request(request_id: &str, answer: &Answer) -> Result<(), Error> {
    let (accept, reason) = answer.parts();
    wit::handle_friend_request(request_id, accept, reason)
}

pub fn answer_group_invite(request_id: &str, answer: &Answer) -> Result<(), Error> {
    let (accept, reason) = answer.parts();
    wit::handle_group_invite(request_id, accept, reason)
}

pub fn answer_join_request(request_id: &str, answer: &Answer) -> Result<(), Error> {
    let (accept, reason) = answer.parts();
    wit::handle_join_request(request_id, accept, reason)
}

pub fn list_friends() -> Result<Vec<Friend>, Error> {
    wit::list_friends(None)
}

pub fn list_groups() -> Result<Vec<Group>, Error> {
    wit::list_groups(None)
}

pub fn list_members(group: i64) -> Result<Vec<Member>, Error> {
    wit::list_members(None, group)
}

// ── world 0.3.0 ──

/// Mutes the sender of a group message by its source ID, also an anonymous one.
pub fn mute_sender(source_id: &str, seconds: i64) -> Result<(), Error> {
    wit::mute_member(None, &wit::MuteTarget::SenderOf(source_id.to_owned()), seconds)
}

/// Removes `member` from `group`; `reject_rejoin` refuses their later join requests.
pub fn kick(group: i64, member: i64, reject_rejoin: bool) -> Result<(), Error> {
    wit::kick_member(None, group, member, reject_rejoin)
}

/// Mutes the whole group (`true`) or lifts it.
pub fn mute_all(group: i64, enable: bool) -> Result<(), Error> {
    wit::mute_all(None, group, enable)
}

/// Sets `member`'s card in `group`; an empty card clears it.
pub fn set_card(group: i64, member: i64, card: &str) -> Result<(), Error> {
    wit::set_member_card(None, group, member, card)
}

/// Makes `member` an admin of `group` (`true`) or a plain member.
pub fn set_admin(group: i64, member: i64, enable: bool) -> Result<(), Error> {
    wit::set_group_admin(None, group, member, enable)
}

/// Pokes `target` in `group`, or privately with `None`.
pub fn poke(group: Option<i64>, target: i64) -> Result<(), Error> {
    wit::send_poke(None, group, target)
}

/// A message by its source ID, as the account still has it.
pub fn get_message(source_id: &str) -> Result<FetchedMessage, Error> {
    wit::get_message(source_id)
}

/// Sends a forwarded message of `nodes` to `group`.
pub fn forward_to_group(group: i64, nodes: &[ForwardNode]) -> Result<Sent, Error> {
    wit::send_forward(None, Some(group), None, nodes)
}

/// Sends a forwarded message of `nodes` to `friend`.
pub fn forward_to_friend(friend: i64, nodes: &[ForwardNode]) -> Result<Sent, Error> {
    wit::send_forward(None, None, Some(friend), nodes)
}
