//! Recording who did what. Audit failures are logged but never undo or block the action they describe:
//! the action already happened, and refusing service because the log is unwritable would be worse.

use app::port::Caller;

use super::Service;
use crate::db::{self, audit};

impl Service {
    /// Appends an audit entry for an action by `caller` (`None`: the system) on `target`.
    pub async fn audit(&self, caller: Option<&Caller>, action: &str, target: &str, detail: &str) {
        let entry = audit::Entry {
            actor_id: caller.map(|c| c.user_id.as_str()),
            actor_name: caller.map_or("system", |c| c.username.as_str()),
            tenant_id: caller.map(|c| c.tenant_id.as_str()),
            action,
            target,
            detail,
        };
        self.append_audit(&entry).await;
    }

    /// Records a refused sign-in: nobody is signed in, so the actor is the username tried (the target is
    /// that user when it exists), and the detail the client's address. Never the password.
    pub async fn audit_failed_sign_in(&self, username: &str, user: Option<(&str, &str)>, client: &str) {
        let target = user.map_or_else(|| format!("username:{username}"), |(id, _)| format!("user:{id}"));
        let entry = audit::Entry {
            actor_id: None,
            actor_name: username,
            tenant_id: user.map(|(_, tenant)| tenant),
            action: "sign_in_failed",
            target: &target,
            detail: &format!("from {client}"),
        };
        self.append_audit(&entry).await;
    }

    async fn append_audit(&self, entry: &audit::Entry<'_>) {
        if let Err(e) = audit::append(self.pool(), entry, db::now()).await {
            tracing::error!(error = %e, action = entry.action, target = entry.target, "cannot append to the audit log");
        }
    }
}
