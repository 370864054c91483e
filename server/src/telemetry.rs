//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), pretty or JSON.

use tracing_subscriber::EnvFilter;

pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests start several apps) is harmless: keep the first subscriber.
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// "outer: inner: innermost", for logs and for reasons shown to people (crash reasons). The contract
/// crate's helper, which the VMM uses too, so both ends of the process boundary word error chains alike.
pub use vmm_api::error_chain as chain;
