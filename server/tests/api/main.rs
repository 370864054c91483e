//! Integration tests of the portal over HTTP: a real server on port 0 with a real SQLite file per test.
#![allow(clippy::unwrap_used)]

mod accounts;
mod admission;
mod audit_filters;
mod audit_trail;
mod bad_input;
mod billing;
mod boot_progress;
mod catalogue;
mod console;
mod flavor_prices;
mod headers;
mod helpers;
mod isolation;
mod jail;
mod key_pairs;
mod metrics;
mod network_quotas;
mod networks;
mod networks_ssh;
mod networks_table;
mod quota_defaults;
mod rest;
mod revocation;
mod seccomp;
mod serial_replay;
mod supervision;
mod vm_helpers;
mod vm_lists;
mod vms;
