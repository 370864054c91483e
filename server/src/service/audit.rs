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
        if let Err(e) = audit::append(self.pool(), &entry, db::now()).await {
            tracing::error!(error = %e, action, target, "cannot append to the audit log");
        }
    }
}
