//! One module per page.

pub mod account;
pub mod admin;
pub mod console;
pub mod dashboard;
pub mod instance;
pub mod key_pairs;
pub mod login;
pub mod networks;
pub mod not_found;
pub mod public_access;
pub mod security_groups;
pub mod tokens;
pub mod usage;
