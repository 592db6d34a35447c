//! Who may use the bridge: the client token (`token`, unrestricted), the
//! scoped clients of `[[client]]` (each with its own token and the same
//! `[permissions]` a wasm bot's `NAME.toml` takes), and the admin token that
//! deploys bots. Below every server module, so none borrows it from another.
//! The set is swapped whole when the config file is reloaded; connections of
//! a client whose entry changed or went away are closed.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use crate::bridge::Permissions;

/// Compares in constant time (over the longer length).
pub fn token_matches(given: &str, expected: &str) -> bool {
    let (a, b) = (blake3::hash(given.as_bytes()), blake3::hash(expected.as_bytes()));
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// A remote client with its own token and scope (`[[client]]`).
#[derive(Clone, PartialEq, Eq)]
pub struct ScopedClient {
    /// Named in logs and in the audit stream's `by`.
    pub name: String,
    pub token: String,
    pub permissions: Permissions,
}

impl std::fmt::Debug for ScopedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedClient").field("name", &self.name).field("permissions", &self.permissions).finish()
    }
}

/// Every token the bridge knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    /// The unrestricted client token (`token`).
    pub client: Option<String>,
    /// The admin API's token (`admin_token`); None: the admin API is off.
    pub admin: Option<String>,
    pub clients: Vec<Arc<ScopedClient>>,
}

/// Who a request's token says it is.
#[derive(Debug, Clone)]
pub enum Who {
    /// No client token is configured and none was given: the bridge is open.
    Anyone,
    /// The unrestricted client token.
    Client,
    Scoped(Arc<ScopedClient>),
    Admin,
}

impl Who {
    /// May open `/ws`: any client, never the admin token (it deploys, it does not chat).
    pub fn may_connect(&self) -> bool {
        !matches!(self, Self::Admin)
    }

    /// May read the console, the bots list and `/metrics`: the operator's
    /// tokens, not a scoped client's.
    pub fn may_watch(&self) -> bool {
        !matches!(self, Self::Scoped(_))
    }
}

impl Tokens {
    fn identify(&self, given: Option<&str>) -> Option<Who> {
        let Some(given) = given else {
            let open = self.client.is_none() && self.clients.is_empty();
            return open.then_some(Who::Anyone);
        };
        // Every comparison is made, so the time taken does not tell which matched.
        let admin = self.admin.as_deref().is_some_and(|t| token_matches(given, t));
        let client = self.client.as_deref().is_some_and(|t| token_matches(given, t));
        let scoped =
            self.clients.iter().fold(None, |found, c| if token_matches(given, &c.token) { Some(c) } else { found });
        let scoped = scoped.cloned();
        if admin {
            Some(Who::Admin)
        } else if client {
            Some(Who::Client)
        } else {
            scoped.map(Who::Scoped)
        }
    }

    /// Whether `client` is still configured exactly as it was.
    pub fn still_has(&self, client: &ScopedClient) -> bool {
        self.clients.iter().any(|c| **c == *client)
    }
}

/// The current tokens, replaceable while the bridge runs.
pub struct Auth {
    tokens: watch::Sender<Arc<Tokens>>,
}

impl Auth {
    pub fn new(tokens: Tokens) -> Arc<Self> {
        Arc::new(Self { tokens: watch::Sender::new(Arc::new(tokens)) })
    }

    /// Puts a new set in force; connections of clients it no longer has are closed.
    pub fn replace(&self, tokens: Tokens) {
        self.tokens.send_replace(Arc::new(tokens));
    }

    pub fn current(&self) -> Arc<Tokens> {
        self.tokens.borrow().clone()
    }

    /// Changes to the set, for connections that must end when their client is revoked.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Tokens>> {
        self.tokens.subscribe()
    }

    /// `Authorization: Bearer` or `?token=`; None: refused.
    pub fn identify(&self, headers: &HeaderMap, query: &HashMap<String, String>) -> Option<Who> {
        let given = bearer(headers).or(query.get("token").map(String::as_str));
        self.current().identify(given)
    }

    /// Whether the admin API is on (an `admin_token` is configured).
    pub fn admin_enabled(&self) -> bool {
        self.tokens.borrow().admin.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scoped(name: &str, token: &str) -> Arc<ScopedClient> {
        Arc::new(ScopedClient { name: name.into(), token: token.into(), permissions: Permissions::default() })
    }

    #[test]
    fn each_token_is_who_it_says() {
        let open = Tokens::default();
        assert!(matches!(open.identify(None), Some(Who::Anyone)));
        let tokens = Tokens {
            client: Some("c".into()),
            admin: Some("a".into()),
            clients: vec![scoped("weather", "w"), scoped("games", "g")],
        };
        assert!(tokens.identify(None).is_none(), "a token is configured: none given is refused");
        assert!(tokens.identify(Some("nope")).is_none());
        assert!(matches!(tokens.identify(Some("a")), Some(Who::Admin)));
        assert!(matches!(tokens.identify(Some("c")), Some(Who::Client)));
        assert!(matches!(tokens.identify(Some("g")), Some(Who::Scoped(c)) if c.name == "games"));
        let only_scoped = Tokens { clients: vec![scoped("weather", "w")], ..Default::default() };
        assert!(only_scoped.identify(None).is_none(), "scoped clients alone close the open door");
        assert!(!Who::Admin.may_connect() && !Who::Scoped(scoped("x", "y")).may_watch());
        assert!(tokens.still_has(&scoped("weather", "w")) && !tokens.still_has(&scoped("weather", "w2")));
    }
}
