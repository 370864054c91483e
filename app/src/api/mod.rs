//! Server functions: the browser calls these; their bodies run on the server through the `Portal` port.

pub mod admin;
pub mod args;
pub mod auth;
pub mod billing;
pub mod catalogue;
pub mod console;
pub mod host;
pub mod key_pairs;
pub mod metrics;
pub mod networks;
pub mod tokens;
pub mod vm_lists;
pub mod vms;
