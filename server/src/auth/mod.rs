//! Authentication: password hashing, sessions, API tokens, sign-in throttling and the CSRF origin check.

pub mod csrf;
pub mod password;
pub mod secret;
pub mod session;
pub mod throttle;
