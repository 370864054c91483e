//! Revocation that reaches what is already open. Sessions and API tokens are checked on every request,
//! but a console WebSocket or an event stream was authenticated once, when it opened; so every change that
//! takes a user's access away — disabling the user or the tenant, resetting or changing the password,
//! revoking a token — is also broadcast here, after it is committed, and each open console and stream
//! watches for one that reaches its caller and closes at once with the reason.
//!
//! Order makes it race-free: an edge subscribes *before* it checks the caller's access (`Service::revoked`
//! then the check), and a change commits *before* it is broadcast, so a change is either seen by the check
//! or delivered to the subscription.

use std::future::Future;

use app::port::Caller;
use tokio::sync::broadcast::{self, error::RecvError};

use super::Service;

/// What lost its access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// Everything a user opened (disabled, password reset or changed).
    User(String),
    /// Everything the users of a tenant opened (tenant disabled).
    Tenant(String),
    /// What was opened with one API token (revoked).
    Token(String),
}

/// A revocation and the sentence the closed console shows.
#[derive(Debug, Clone)]
pub struct Revocation {
    pub what: Revoked,
    pub reason: &'static str,
}

impl Revocation {
    /// Whether this revocation takes away what `caller` opened.
    pub fn reaches(&self, caller: &Caller) -> bool {
        match &self.what {
            Revoked::User(id) => caller.user_id == *id,
            Revoked::Tenant(id) => caller.tenant_id == *id,
            Revoked::Token(id) => caller.token_id.as_deref() == Some(id.as_str()),
        }
    }
}

/// The broadcast of revocations (one per portal).
pub(crate) fn channel() -> broadcast::Sender<Revocation> {
    broadcast::channel(256).0
}

/// Said when revocations were missed (the receiver fell behind): fail closed.
const MISSED: &str = "Your access is being re-checked. Open the console again.";

impl Service {
    /// Tells every open console and stream of `what` to close (after the change is committed).
    pub(crate) fn broadcast_revocation(&self, what: Revoked, reason: &'static str) {
        tracing::info!(?what, reason, "access revoked: closing what is open");
        // No receiver: nothing is open.
        let _ = self.inner.revocations.send(Revocation { what, reason });
    }

    /// Revocations from now on (subscribe before checking a caller's access, see the module header).
    pub fn subscribe_revocations(&self) -> Subscription {
        Subscription(self.inner.revocations.subscribe())
    }

    /// Resolves with the reason once `caller`'s access is revoked. Subscribes at once.
    pub fn revoked(&self, caller: &Caller) -> impl Future<Output = &'static str> + Send + 'static {
        self.subscribe_revocations().watch(caller.clone())
    }
}

/// Revocations since the moment of subscribing.
pub struct Subscription(broadcast::Receiver<Revocation>);

impl Subscription {
    /// Resolves with the reason once a revocation reaches `caller`.
    pub fn watch(self, caller: Caller) -> impl Future<Output = &'static str> + Send + 'static {
        let mut rx = self.0;
        async move {
            loop {
                match rx.recv().await {
                    Ok(r) if r.reaches(&caller) => return r.reason,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => return MISSED,
                    Err(RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(token: Option<&str>) -> Caller {
        Caller {
            user_id: "u1".into(),
            tenant_id: "t1".into(),
            username: "ann".into(),
            role: app::model::Role::Member,
            token_id: token.map(str::to_string),
        }
    }

    #[test]
    fn a_revocation_reaches_the_user_their_tenant_or_the_one_token() {
        let r = |what| Revocation { what, reason: "x" };
        let by_session = caller(None);
        let by_token = caller(Some("k1"));
        assert!(r(Revoked::User("u1".into())).reaches(&by_session));
        assert!(r(Revoked::Tenant("t1".into())).reaches(&by_token));
        assert!(r(Revoked::Token("k1".into())).reaches(&by_token));
        assert!(!r(Revoked::Token("k1".into())).reaches(&by_session));
        assert!(!r(Revoked::Token("k2".into())).reaches(&by_token));
        assert!(!r(Revoked::User("u2".into())).reaches(&by_token));
    }
}
