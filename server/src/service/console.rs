//! A VM's consoles: issuing console tokens (like Proxmox's VNC tickets), redeeming them when the browser
//! opens the WebSocket, and the serial log. The WebSocket edge (`crate::console`) only upgrades and runs
//! the proxy on the `ConsoleSession` this hands it.
//!
//! A console token is a `CONSOLE_TOKEN` secret (`auth::secret`), valid for `TOKEN_TTL_SECS`, single use,
//! bound to the user who asked and one VM; only its hash is stored. Issuing needs the caller's tenant's VM
//! to be running; redeeming checks the token against the VM in the WebSocket path and marks it used in the
//! same statement, then applies the same tenancy rule as every other VM route (`tenant_vm`) for the
//! token's user.

use std::future::Future;
use std::pin::Pin;

use app::api::console::{ConsoleKind, ConsoleLog, ConsoleTicket};
use app::error::AppError;
use app::model::VmState;
use app::port::{Caller, Consoles};
use async_trait::async_trait;
use tokio::net::UnixStream;
use tokio::sync::broadcast;
use vmm_api::control::client::Client;
use vmm_api::run_dir::RunDir;

use super::{caller_of, internal, Service};
use crate::auth::secret::{self, CONSOLE_TOKEN};
use crate::db::{self, console as store, users};
use crate::vm::VmChange;

/// How long a console token may wait before it is redeemed, in seconds (at most 60 by the schema).
pub const TOKEN_TTL_SECS: i64 = 30;
/// How much of the console log a new serial console starts with.
const SERIAL_REPLAY_BYTES: usize = 16 * 1024;

/// Serial output as plain text: ANSI CSI/OSC sequences (colours, cursor moves, `ESC[6n` queries) and
/// carriage returns removed, line feeds kept.
pub fn plain_text(raw: &str) -> String {
    String::from_utf8_lossy(&strip_ansi_escapes::strip(raw.as_bytes())).into_owned()
}

/// What a new serial console shows first: the log's last `SERIAL_REPLAY_BYTES` from a line start, as plain
/// text with CRLF line ends (a terminal must not see the log's escape sequences again: replayed
/// `ESC[6n` queries would make it type answers into the guest).
pub fn serial_replay(log: &str) -> Vec<u8> {
    let text = plain_text(log);
    let mut start = text.len().saturating_sub(SERIAL_REPLAY_BYTES);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    let tail = match (start > 0, tail.find('\n')) {
        (true, Some(nl)) => &tail[nl + 1..],
        _ => tail,
    };
    tail.replace('\n', "\r\n").into_bytes()
}

/// Why a console could not be opened. Each answers a status and a message the user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
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
    #[error("The VM's console is not available right now.")]
    Unavailable,
    /// Already logged where it happened; the user is told nothing more.
    #[error("{}", AppError::Internal)]
    Internal,
}

impl ConsoleError {
    /// The HTTP status the refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid | Self::Used | Self::Expired | Self::UserInactive => 401,
            Self::OtherVm => 403,
            Self::VmGone => 404,
            Self::NotRunning | Self::Unavailable => 409,
            Self::Internal => 500,
        }
    }

    /// The stable name of the refusal (the same names as `AppError::kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Invalid | Self::Used | Self::Expired | Self::UserInactive => "unauthenticated",
            Self::OtherVm => "forbidden",
            Self::VmGone => "not_found",
            Self::NotRunning | Self::Unavailable => "conflict",
            Self::Internal => "internal",
        }
    }
}

fn check_failed(err: sqlx::Error) -> ConsoleError {
    tracing::error!(error = %err, "console token check failed");
    ConsoleError::Internal
}

/// The WebSocket path of a VM's console.
fn ws_path(vm_id: &str, token: &str) -> String {
    format!("/console/{vm_id}/ws?token={token}")
}

/// A redeemed token: who opened which console of which VM.
struct Redeemed {
    caller: Caller,
    vm_id: String,
    kind: ConsoleKind,
}

/// An opened console: who opened which console of which VM, the VMM socket serving it, the VMMs' state
/// changes and the revocation of the caller's access (both subscribed before the token was checked, so a
/// stop or revocation right after it is not missed; the proxy watches this VM's and this caller's).
pub struct ConsoleSession {
    pub caller: Caller,
    pub vm_id: String,
    pub kind: ConsoleKind,
    pub vmm: UnixStream,
    pub changes: broadcast::Receiver<VmChange>,
    pub revoked: Pin<Box<dyn Future<Output = &'static str> + Send>>,
    /// Sent to the browser before the proxy starts: a serial console's recent output.
    pub replay: Vec<u8>,
}

impl Service {
    /// Issues a console token for the caller's running VM.
    async fn issue_console_token(
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
        let minted = CONSOLE_TOKEN.mint();
        let now = db::now();
        let row = store::NewConsoleToken {
            token_hash: &minted.hash,
            user_id: &caller.user_id,
            tenant_id: &caller.tenant_id,
            vm_id: &vm.id,
            kind: kind.as_str(),
            now,
            expires_at: now + TOKEN_TTL_SECS,
            api_token_id: caller.token_id.as_deref(),
        };
        store::insert(self.pool(), row).await.map_err(internal)?;
        if let Err(e) = store::prune(self.pool(), now).await {
            tracing::warn!(error = %e, "cannot prune old console tokens");
        }
        Ok(ConsoleTicket {
            ws_path: ws_path(&vm.id, &minted.secret),
            token: minted.secret,
            kind,
            expires_in: u32::try_from(TOKEN_TTL_SECS).unwrap_or(30),
        })
    }

    /// Redeems a token for `vm_id`: at most once, before it expires, while its user is active and the VM
    /// (still in the user's tenant) is running.
    async fn redeem_console_token(&self, vm_id: &str, token: &str) -> Result<Redeemed, ConsoleError> {
        if !CONSOLE_TOKEN.looks_valid(token) {
            return Err(ConsoleError::Invalid);
        }
        let token_hash = secret::hash(token);
        let now = db::now();
        let Some(row) = store::redeem(self.pool(), &token_hash, vm_id, now)
            .await
            .map_err(check_failed)?
        else {
            let known = store::get(self.pool(), &token_hash).await.map_err(check_failed)?;
            return Err(match known {
                None => ConsoleError::Invalid,
                Some(t) if t.vm_id != vm_id => ConsoleError::OtherVm,
                Some(t) if t.used_at.is_some() => ConsoleError::Used,
                Some(_) => ConsoleError::Expired,
            });
        };
        let user = users::by_id(self.pool(), &row.user_id)
            .await
            .map_err(check_failed)?
            .filter(|u| u.is_active() && u.tenant_id == row.tenant_id)
            .ok_or(ConsoleError::UserInactive)?;
        // A ticket issued through an API token lives only as long as that token.
        if let Some(token_id) = &row.api_token_id {
            if !db::tokens::is_live(self.pool(), token_id, now)
                .await
                .map_err(check_failed)?
            {
                return Err(ConsoleError::UserInactive);
            }
        }
        let caller = Caller {
            token_id: row.api_token_id.clone(),
            ..caller_of(&user)
        };
        let vm = self.tenant_vm(&caller, vm_id).await.map_err(|e| match e {
            AppError::NotFound { .. } => ConsoleError::VmGone,
            _ => ConsoleError::Internal,
        })?;
        if vm.state() != VmState::Running {
            return Err(ConsoleError::NotRunning);
        }
        let kind = ConsoleKind::parse(&row.kind).ok_or(ConsoleError::Invalid)?;
        Ok(Redeemed {
            caller,
            vm_id: vm.id,
            kind,
        })
    }

    /// Opens the console a token was issued for: redeems the token, connects to the VMM's console socket
    /// and records who opened it.
    pub async fn open_console_session(
        &self,
        vm_id: &str,
        token: &str,
    ) -> Result<ConsoleSession, ConsoleError> {
        let changes = self.supervisor().subscribe();
        // Everything is subscribed to before the token is redeemed, then the revocation narrowed to the
        // caller it names.
        let revocations = self.subscribe_revocations();
        let Redeemed { caller, vm_id, kind } = self.redeem_console_token(vm_id, token).await?;
        let revoked = Box::pin(revocations.watch(caller.clone()));
        let files = RunDir::new(self.supervisor().run_dir(&vm_id));
        let socket = match kind {
            ConsoleKind::Vnc => files.vnc(),
            ConsoleKind::Serial => files.serial(),
        };
        let vmm = match UnixStream::connect(&socket).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(vm_id, error = %e, socket = %socket.display(), "console socket unreachable");
                return Err(ConsoleError::Unavailable);
            }
        };
        // Connected first, then the log read: output in between arrives twice rather than never.
        let replay = match kind {
            ConsoleKind::Serial => match Client::of(&files).console_log().await {
                Ok(log) => serial_replay(&log),
                Err(e) => {
                    tracing::warn!(vm_id, error = %crate::telemetry::chain(&e), "no console log to replay");
                    Vec::new()
                }
            },
            ConsoleKind::Vnc => Vec::new(),
        };
        self.audit(
            Some(&caller),
            "console_open",
            &format!("vm:{vm_id}"),
            kind.as_str(),
        )
        .await;
        Ok(ConsoleSession {
            caller,
            vm_id,
            kind,
            vmm,
            changes,
            revoked,
            replay,
        })
    }
}

#[async_trait]
impl Consoles for Service {
    async fn open_console(
        &self,
        caller: &Caller,
        vm_id: String,
        kind: ConsoleKind,
    ) -> Result<ConsoleTicket, AppError> {
        self.issue_console_token(caller, &vm_id, kind).await
    }

    async fn console_log(&self, caller: &Caller, vm_id: String) -> Result<ConsoleLog, AppError> {
        let vm = self.tenant_vm(caller, &vm_id).await?;
        if vm.state() != VmState::Running {
            return Err(AppError::conflict(format!(
                "The console log is available while the VM is running; it is {}.",
                vm.state().as_str()
            )));
        }
        // The last 64 KiB of serial output, from the VMM (the client's default timeout bounds the wait).
        let text = Client::of(&RunDir::new(self.supervisor().run_dir(&vm.id)))
            .console_log()
            .await
            .map_err(|e| internal(crate::telemetry::chain(&e)))?;
        Ok(ConsoleLog {
            text: plain_text(&text),
        })
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    #[test]
    fn refusals_map_to_the_documented_statuses() {
        assert_eq!(ConsoleError::Used.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ConsoleError::Expired.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ConsoleError::OtherVm.status(), StatusCode::FORBIDDEN);
        assert_eq!(ConsoleError::VmGone.status(), StatusCode::NOT_FOUND);
        assert_eq!(ConsoleError::NotRunning.status(), StatusCode::CONFLICT);
    }

    #[test]
    fn the_log_is_plain_text_and_the_replay_starts_at_a_line() {
        let raw = "\x1b[6n\x1b[1;32mroot@probe\x1b[0m:~# ls\r\n\x1b]0;title\x07bin  etc\r\n";
        assert_eq!(plain_text(raw), "root@probe:~# ls\nbin  etc\n");
        assert_eq!(serial_replay(raw), b"root@probe:~# ls\r\nbin  etc\r\n");
        let long = format!("{}partial line\nlast line\n", "x".repeat(SERIAL_REPLAY_BYTES));
        assert_eq!(serial_replay(&long), b"last line\r\n");
    }

    #[test]
    fn internal_failures_reveal_nothing() {
        assert_eq!(ConsoleError::Internal.to_string(), AppError::Internal.to_string());
    }
}
