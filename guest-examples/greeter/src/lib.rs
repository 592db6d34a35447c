//! The greeter bot: welcomes every member who joins a group, and answers
//! friend requests and group invites by a policy kept in kv.
//!
//! Policies are `accept`, `reject` or `ignore` (leave the request for someone
//! else). Defaults: friend requests are accepted, group invites rejected.
//! The owner of any group the account is in may change them there:
//! `/policy` shows them, `/policy friends accept`, `/policy invites reject`.
//! Whoever pokes the account in a group is poked back and greeted.

use botbridge_sdk::ops::{self, Answer};
use botbridge_sdk::{account, bot, kv, log, Bot, Chain, Event, GroupEvent, Message, Permission, Scene, UserEvent};

struct Greeter;

impl Bot for Greeter {
    fn handle(event: Event) {
        match event {
            Event::Group(GroupEvent::MemberJoined(joined)) => welcome(joined.group, joined.who),
            Event::Group(GroupEvent::Poke(poke)) if poke.target == account() && poke.from != account() => {
                let hello = Chain::new().at(poke.from).text(" poked me: hello to you too!");
                if let Err(e) = ops::poke(Some(poke.group), poke.from).and_then(|()| ops::send_to_group(poke.group, hello)) {
                    log::warn(format!("poking {} back failed: {e}", poke.from));
                }
            }
            Event::User(UserEvent::NewFriendRequest(request)) => {
                let answer = policy("friends");
                log::info(format!("friend request from {}: {answer}", request.who));
                if let Some(answer) = to_answer(&answer, "I am not taking new friends.") {
                    if let Err(e) = ops::answer_friend_request(&request.request_id, &answer) {
                        log::warn(format!("answering the friend request of {} failed: {e}", request.who));
                    }
                }
            }
            Event::User(UserEvent::GroupInvite(invite)) => {
                let answer = policy("invites");
                log::info(format!("invite to group {} by {}: {answer}", invite.group, invite.inviter));
                if let Some(answer) = to_answer(&answer, "I do not join groups on invitation.") {
                    if let Err(e) = ops::answer_group_invite(&invite.request_id, &answer) {
                        log::warn(format!("answering the invite to {} failed: {e}", invite.group));
                    }
                }
            }
            Event::Message(message) => {
                if let Some(args) = message.command("policy") {
                    set_policy(&message, &args);
                }
            }
            _ => {}
        }
    }
}

fn welcome(group: i64, who: i64) {
    let name = ops::list_members(group)
        .ok()
        .and_then(|members| members.into_iter().find(|m| m.id == who))
        .map(|m| m.name_card_or_nick)
        .unwrap_or_default();
    let greeting = Chain::new().text("Welcome, ").at(who).text(format!(" {name}! Say hi to everyone."));
    if let Err(e) = ops::send_to_group(group, greeting) {
        log::warn(format!("welcoming {who} to {group} failed: {e}"));
    }
}

const DEFAULTS: [(&str, &str); 2] = [("friends", "accept"), ("invites", "reject")];

fn policy(kind: &str) -> String {
    kv::get_string(&format!("policy/{kind}"))
        .unwrap_or_else(|| DEFAULTS.iter().find(|(k, _)| *k == kind).map(|(_, v)| v.to_string()).unwrap_or_default())
}

fn to_answer(policy: &str, reason: &str) -> Option<Answer> {
    match policy {
        "accept" => Some(Answer::Accept),
        "reject" => Some(Answer::Reject { reason: Some(reason.to_string()) }),
        _ => None,
    }
}

fn set_policy(message: &Message, args: &str) {
    let show = || format!("Policies: friends {}, invites {}", policy("friends"), policy("invites"));
    if args.is_empty() {
        return message.reply_or_log(show());
    }
    let is_owner = matches!(&message.scene, Scene::Group { sender, .. } if sender.permission == Permission::Owner);
    if !is_owner {
        return message.reply_or_log("Only a group owner can change my policies.");
    }
    let mut words = args.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(kind @ ("friends" | "invites")), Some(value @ ("accept" | "reject" | "ignore")), None) => {
            match kv::set_string(&format!("policy/{kind}"), value) {
                Ok(()) => message.reply_or_log(show()),
                Err(e) => message.reply_or_log(format!("I could not save the policy: {e}")),
            }
        }
        _ => message.reply_or_log("Usage: /policy [friends|invites accept|reject|ignore]"),
    }
}

bot!(Greeter);
