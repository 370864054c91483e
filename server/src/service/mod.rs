//! The portal's services: the one implementation of the `app::port` traits. Server functions (through
//! context) and the REST API (through `AppState`) both call these, so tenancy, validation and audit rules
//! live here and nowhere else. Edges (REST handlers, the console WebSocket, the event stream) call methods
//! of `Service` only: they never hold the pool or the supervisor.
//!
//! Free of axum/http types except where the `Accounts` port hands over the request (`accounts.rs`): a
//! session lives in the request's extensions.

mod accounts;
mod admin;
mod audit;
mod audit_log;
mod billing;
mod catalogue;
mod console;
mod events;
mod host;
pub mod images;
mod key_pairs;
mod metrics;
mod networks;
mod revocation;
mod tokens;
mod vm_lists;
mod vms;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use app::error::AppError;
use app::model::Me;
use app::port::Caller;
use sqlx::SqlitePool;

use crate::auth::throttle::LoginThrottle;
use crate::config::Settings;
use crate::db::users::UserRow;
use crate::net::Networking;
use crate::vm::Supervisor;

pub use console::{ConsoleError, ConsoleSession, TOKEN_TTL_SECS};
pub use events::VmFeed;
pub use revocation::{Revocation, Revoked};

#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    pool: SqlitePool,
    supervisor: Supervisor,
    /// Where uploaded images are stored, one directory each.
    images_dir: PathBuf,
    /// Largest accepted image upload, in bytes (all files together).
    max_upload_bytes: u64,
    throttle: LoginThrottle,
    /// Access taken away, for open consoles and event streams (`revocation.rs`).
    revocations: tokio::sync::broadcast::Sender<Revocation>,
    /// Verified against when a sign-in names an unknown user, so timing does not reveal which users exist.
    dummy_hash: String,
    /// Tenant networks; `None` when off.
    network: Option<Networking>,
    /// Sampling step and retention of VM metrics (`metrics.rs`).
    metrics: crate::metrics::MetricsSettings,
    /// How often an active session's idle expiry is pushed forward (`auth::session::keep_alive`).
    session_refresh_secs: i64,
}

impl Service {
    pub fn new(
        pool: SqlitePool,
        settings: &Settings,
        supervisor: Supervisor,
        network: Option<Networking>,
        dummy_hash: String,
    ) -> Self {
        let throttle = LoginThrottle::new(&settings.login);
        Self {
            inner: Arc::new(Inner {
                pool,
                supervisor,
                images_dir: settings.data_dir.join("images"),
                max_upload_bytes: settings.max_image_upload_mib.saturating_mul(1024 * 1024),
                throttle,
                revocations: revocation::channel(),
                dummy_hash,
                network,
                metrics: settings.metrics.clone(),
                session_refresh_secs: settings.session_refresh_secs,
            }),
        }
    }

    fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }

    fn supervisor(&self) -> &Supervisor {
        &self.inner.supervisor
    }

    fn network(&self) -> Option<&Networking> {
        self.inner.network.as_ref()
    }

    pub fn images_dir(&self) -> &Path {
        &self.inner.images_dir
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.inner.max_upload_bytes
    }

    pub fn throttle(&self) -> &LoginThrottle {
        &self.inner.throttle
    }

    /// Whether the database answers (the health check).
    pub async fn database_ok(&self) -> bool {
        match sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(self.pool())
            .await
        {
            Ok(_) => true,
            Err(err) => {
                tracing::error!(error = %err, "health check: database unavailable");
                false
            }
        }
    }

    /// `on` or `off`: whether VMMs run jailed (README, "Jail and threat model"), for the health check.
    pub fn sandbox_mode(&self) -> &'static str {
        self.supervisor().settings().sandbox.mode()
    }

    /// Stops every running VM (portal shutdown with `stop_vms_on_shutdown`).
    pub async fn stop_all_vms(&self) {
        self.supervisor().stop_all().await;
    }
}

/// Logs an internal failure and answers the user with a message that reveals nothing.
pub(crate) fn internal(err: impl std::fmt::Display) -> AppError {
    tracing::error!(error = %err, "internal error");
    AppError::Internal
}

pub(crate) fn caller_of(user: &UserRow) -> Caller {
    Caller {
        user_id: user.id.clone(),
        tenant_id: user.tenant_id.clone(),
        username: user.username.clone(),
        role: user.role(),
        token_id: None,
    }
}

pub(crate) fn me_of(user: &UserRow) -> Me {
    Me {
        user_id: user.id.clone(),
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        role: user.role(),
        tenant_id: user.tenant_id.clone(),
        tenant_name: user.tenant_name.clone(),
    }
}
