//! Typed identifiers. Numbers: a chat account, a group, a user, and a message
//! as the upstream numbers it. Strings: the registry's IDs, one type per kind,
//! so a receipt cannot be passed where a reply key belongs. All are
//! transparent on the wire: the JSON and the WIT carry the bare number or string.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! number_ids {
    ($( $(#[$doc:meta])* $name:ident; )*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

number_ids! {
    /// A chat account: its QQ number (`bot` on the wire, `self_id` upstream).
    AccountId;
    /// A group's number.
    GroupId;
    /// A user's QQ number.
    UserId;
    /// A message as its account's upstream numbers it (OneBot's are 32-bit and
    /// may be negative; unique only within a chat).
    UpstreamMsgId;
}

impl AccountId {
    /// The account as a user: how it appears among members, senders and notices.
    pub fn as_user(self) -> UserId {
        UserId(self.0)
    }
}

macro_rules! string_ids {
    ($( $(#[$doc:meta])* $name:ident; )*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

string_ids! {
    /// A message, as in `MessageSource`: recall it, quote it.
    SourceId;
    /// A received message's key for replying in its chat.
    ReplyKey;
    /// A message the bridge sent: recall it with `RecallReceipt`.
    ReceiptId;
    /// A friend request, group invite or join request to answer.
    RequestId;
}
