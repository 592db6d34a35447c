//! Who is calling and what they may do: checked before an operation acts.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::schema::{AccountId, ErrorCode, GroupId, OpError, OpKind, Target, UserId};

/// What a caller may do. `None` in a field means no restriction, except that
/// listing either `groups` or `friends` restricts chats to what is listed:
/// a bot limited to some groups cannot talk in private chats unless their
/// users are in `friends` (temp chats count as private).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Accounts it may act for.
    pub accounts: Option<Vec<AccountId>>,
    /// Groups it may act in.
    pub groups: Option<Vec<GroupId>>,
    /// Users it may talk to in private (friend and temp) chats.
    pub friends: Option<Vec<UserId>>,
    /// Operations it may call.
    pub operations: Option<Vec<OpKind>>,
}

/// Where an operation acts, for the permission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Group(GroupId),
    /// A friend or temp chat with this user (or a request from them).
    Private(UserId),
    /// The account as a whole (lists, injected events).
    Account,
}

impl Scope {
    pub(super) fn of(target: Target) -> Self {
        match target {
            Target::Group { group } => Self::Group(group),
            Target::Friend { friend } => Self::Private(friend),
            Target::Temp { user, .. } => Self::Private(user),
        }
    }
}

impl Permissions {
    pub(super) fn check(&self, op: OpKind, account: AccountId, scope: Scope) -> Result<(), OpError> {
        let denied = |what: String| Err(OpError::new(ErrorCode::Forbidden, what));
        if let Some(ops) = &self.operations
            && !ops.contains(&op)
        {
            return denied(format!("operation {op} is not permitted"));
        }
        if let Some(accounts) = &self.accounts
            && !accounts.contains(&account)
        {
            return denied(format!("account {account} is not permitted"));
        }
        let chats_restricted = self.groups.is_some() || self.friends.is_some();
        let listed = |list: Option<&Vec<GroupId>>, id: GroupId| list.is_some_and(|l| l.contains(&id));
        let listed_user = |list: Option<&Vec<UserId>>, id: UserId| list.is_some_and(|l| l.contains(&id));
        match scope {
            Scope::Group(group) if chats_restricted && !listed(self.groups.as_ref(), group) => {
                denied(format!("group {group} is not permitted"))
            }
            Scope::Private(user) if chats_restricted && !listed_user(self.friends.as_ref(), user) => {
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

    /// A client of `[[client]]`, with its scope.
    pub fn scoped(name: impl Into<String>, permissions: Arc<Permissions>) -> Self {
        Self { name: name.into(), kind: CallerKind::Client, permissions: Some(permissions) }
    }

    /// A wasm bot with the permissions of its `NAME.toml`.
    pub fn wasm_bot(name: impl Into<String>, permissions: Option<Arc<Permissions>>) -> Self {
        Self { name: name.into(), kind: CallerKind::WasmBot, permissions }
    }

    pub(super) fn check(&self, op: OpKind, account: AccountId, scope: Scope) -> Result<(), OpError> {
        match &self.permissions {
            Some(p) => p.check(op, account, scope),
            None => Ok(()),
        }
    }
}
