//! One module per page.

pub mod account;
pub mod admin;
pub mod console;
pub mod dashboard;
pub mod instance;
pub mod login;
pub mod not_found;
pub mod tokens;
pub mod usage;
