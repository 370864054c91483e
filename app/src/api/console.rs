//! A VM's consoles: issuing a console token (graphical `vnc` or `serial`) and reading the last serial
//! output. The browser then opens `ws_path` as a WebSocket; the token is single use and lives ≤ 60 s.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Which console: the framebuffer over RFB (noVNC) or the serial port (xterm.js).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsoleKind {
    Vnc,
    Serial,
}

impl ConsoleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vnc => "vnc",
            Self::Serial => "serial",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "vnc" => Some(Self::Vnc),
            "serial" => Some(Self::Serial),
            _ => None,
        }
    }
}

/// A console token: open `ws_path` (relative to the portal's origin, `ws:`/`wss:`) within `expires_in`
/// seconds, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ConsoleTicket {
    pub token: String,
    pub ws_path: String,
    pub kind: ConsoleKind,
    pub expires_in: u32,
}

/// The last output of a VM's serial port (up to 64 KiB), as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ConsoleLog {
    pub text: String,
}

#[server(prefix = "/api/fn", endpoint = "open_console")]
pub async fn open_console(id: String, kind: String) -> Result<ConsoleTicket, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let kind = ConsoleKind::parse(&kind)
            .ok_or_else(|| AppError::invalid("kind", "The console kind must be vnc or serial."))?;
        portal.open_console(&caller, id, kind).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "console_log")]
pub async fn get_console_log(id: String) -> Result<ConsoleLog, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.console_log(&caller, id).await }).await
}
