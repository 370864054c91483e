//! Authentication: password hashing, sessions (and the caller of one request, resolved once), API tokens,
//! sign-in throttling and the CSRF origin check.

pub mod csrf;
pub mod password;
pub mod request_caller;
pub mod secret;
pub mod session;
pub mod throttle;
