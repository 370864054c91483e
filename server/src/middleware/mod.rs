//! What every request passes through before and after its handler: body size limits checked while the
//! body streams (`body_limit`), server function errors answered with their own status (`server_fn_errors`).

pub mod body_limit;
pub mod client_addr;
pub mod security_headers;
pub mod server_fn_errors;
