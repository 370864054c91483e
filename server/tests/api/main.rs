//! Integration tests of the portal over HTTP: a real server on port 0 with a real SQLite file per test.
#![allow(clippy::unwrap_used)]

mod accounts;
mod audit_trail;
mod bad_input;
mod billing;
mod catalogue;
mod console;
mod flavor_prices;
mod headers;
mod helpers;
mod isolation;
mod networks;
mod networks_ssh;
mod quota_defaults;
mod rest;
mod revocation;
mod serial_replay;
mod supervision;
mod vm_helpers;
mod vms;
