//! Integration tests of the portal over HTTP: a real server on port 0 with a real SQLite file per test.
#![allow(clippy::unwrap_used)]

mod accounts;
mod bad_input;
mod billing;
mod catalogue;
mod console;
mod headers;
mod helpers;
mod isolation;
mod metrics;
mod networks;
mod networks_ssh;
mod rest;
mod revocation;
mod supervision;
mod vm_helpers;
mod vms;
