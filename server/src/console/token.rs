//! Console tokens (like Proxmox's VNC tickets): `cct_` + 256 random bits, valid for `TOKEN_TTL_SECS`,
//! single use, bound to the user who asked and one VM. Only the SHA-256 of a token is stored. Issuing needs
//! the caller's tenant's VM to be running; redeeming checks the token against the VM in the WebSocket path
//! and marks it used in the same statement.

use app::api::console::{ConsoleKind, ConsoleTicket};
use app::error::AppError;
use app::model::VmState;
use app::port::Caller;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::StatusCode;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::{self, console as store, users, vms};
use crate::service::{caller_of, Service};

/// How long a console token may wait before it is redeemed, in seconds (at most 60 by the schema).
pub const TOKEN_TTL_SECS: i64 = 30;
const PREFIX: &str = "cct_";

/// Why a console token was refused. Each answers a status and a message the user can act on.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("The console token is missing or not valid. Open the console again.")]
    Invalid,
    #[error("The console token was already used. Open the console again.")]
    Used,
    #[error("The console token expired. Open the console again.")]
    Expired,
    #[error("The console token is for another VM.")]
    OtherVm,
    #[error("The user who opened the console can no longer use it.")]
    UserInactive,
    #[error("VM not found.")]
    VmGone,
    #[error("The VM is not running.")]
    NotRunning,
    #[error("Failed to check the console token")]
    Db(#[source] sqlx::Error),
}

impl TokenError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Invalid | Self::Used | Self::Expired | Self::UserInactive => StatusCode::UNAUTHORIZED,
            Self::OtherVm => StatusCode::FORBIDDEN,
            Self::VmGone => StatusCode::NOT_FOUND,
            Self::NotRunning => StatusCode::CONFLICT,
            Self::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Invalid | Self::Used | Self::Expired | Self::UserInactive => "unauthenticated",
            Self::OtherVm => "forbidden",
            Self::VmGone => "not_found",
            Self::NotRunning => "conflict",
            Self::Db(_) => "internal",
        }
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let message = match &self {
            Self::Db(e) => {
                tracing::error!(error = %e, "console token check failed");
                AppError::Internal.to_string()
            }
            other => other.to_string(),
        };
        let body = serde_json::json!({ "error": { "kind": self.kind(), "message": message } });
        (self.status(), axum::Json(body)).into_response()
    }
}

/// A fresh token secret and its hash.
fn mint() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&secret);
    (secret, hash)
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Cheap shape check before touching the database.
fn looks_valid(secret: &str) -> bool {
    secret.len() == PREFIX.len() + 43
        && secret.starts_with(PREFIX)
        && secret[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The WebSocket path of a VM's console.
pub fn ws_path(vm_id: &str, token: &str) -> String {
    format!("/console/{vm_id}/ws?token={token}")
}

/// A redeemed token: who opened which console of which VM.
#[derive(Debug)]
pub struct Redeemed {
    pub caller: Caller,
    pub vm_id: String,
    pub kind: ConsoleKind,
}

impl Service {
    /// Issues a console token for the caller's running VM.
    pub(crate) async fn issue_console_token(
        &self,
        caller: &Caller,
        vm_id: &str,
        kind: ConsoleKind,
    ) -> Result<ConsoleTicket, AppError> {
        let vm = self.tenant_vm(caller, vm_id).await?;
        if vm.state() != VmState::Running {
            return Err(AppError::conflict(format!(
                "The console is available while the VM is running; it is {}.",
                vm.state().as_str()
            )));
        }
        let (secret, token_hash) = mint();
        let now = db::now();
        let row = store::NewConsoleToken {
            token_hash: &token_hash,
            user_id: &caller.user_id,
            tenant_id: &caller.tenant_id,
            vm_id: &vm.id,
            kind: kind.as_str(),
            now,
            expires_at: now + TOKEN_TTL_SECS,
        };
        store::insert(self.pool(), row)
            .await
            .map_err(crate::service::internal)?;
        if let Err(e) = store::prune(self.pool(), now).await {
            tracing::warn!(error = %e, "cannot prune old console tokens");
        }
        Ok(ConsoleTicket {
            ws_path: ws_path(&vm.id, &secret),
            token: secret,
            kind,
            expires_in: u32::try_from(TOKEN_TTL_SECS).unwrap_or(30),
        })
    }

    /// Redeems a token for `vm_id`: at most once, before it expires, while its user is active and the VM
    /// (still in the user's tenant) is running.
    pub async fn redeem_console_token(&self, vm_id: &str, secret: &str) -> Result<Redeemed, TokenError> {
        if !looks_valid(secret) {
            return Err(TokenError::Invalid);
        }
        let token_hash = hash(secret);
        let now = db::now();
        let Some(row) = store::redeem(self.pool(), &token_hash, vm_id, now)
            .await
            .map_err(TokenError::Db)?
        else {
            let known = store::get(self.pool(), &token_hash)
                .await
                .map_err(TokenError::Db)?;
            return Err(match known {
                None => TokenError::Invalid,
                Some(t) if t.vm_id != vm_id => TokenError::OtherVm,
                Some(t) if t.used_at.is_some() => TokenError::Used,
                Some(_) => TokenError::Expired,
            });
        };
        let user = users::by_id(self.pool(), &row.user_id)
            .await
            .map_err(TokenError::Db)?
            .filter(|u| u.is_active() && u.tenant_id == row.tenant_id)
            .ok_or(TokenError::UserInactive)?;
        let vm = vms::get(self.pool(), vm_id)
            .await
            .map_err(TokenError::Db)?
            .filter(|v| v.tenant_id == row.tenant_id && v.state() != VmState::Deleted)
            .ok_or(TokenError::VmGone)?;
        if vm.state() != VmState::Running {
            return Err(TokenError::NotRunning);
        }
        let kind = ConsoleKind::parse(&row.kind).ok_or(TokenError::Invalid)?;
        Ok(Redeemed {
            caller: caller_of(&user),
            vm_id: vm.id,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_unique_well_formed_and_stored_only_as_hashes() {
        let (a, ha) = mint();
        let (b, hb) = mint();
        assert_ne!(a, b);
        assert!(looks_valid(&a) && looks_valid(&b));
        assert_eq!(ha, hash(&a));
        assert!(!ha.contains(&a[PREFIX.len()..]));
        assert_ne!(ha, hb);
    }

    #[test]
    fn malformed_tokens_are_rejected_before_the_database() {
        for bad in [
            "",
            "cct_",
            "cct_short",
            "cpt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &"x".repeat(5000),
        ] {
            assert!(!looks_valid(bad), "{bad}");
        }
        let (good, _) = mint();
        let tampered = format!("{}%", &good[..good.len() - 1]);
        assert!(!looks_valid(&tampered));
    }

    #[test]
    fn refusals_map_to_the_documented_statuses() {
        assert_eq!(TokenError::Used.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(TokenError::Expired.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(TokenError::OtherVm.status(), StatusCode::FORBIDDEN);
        assert_eq!(TokenError::VmGone.status(), StatusCode::NOT_FOUND);
        assert_eq!(TokenError::NotRunning.status(), StatusCode::CONFLICT);
    }
}
