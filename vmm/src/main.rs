//! `vmm --config <file.json>` or `vmm --config-json '<json>'`: runs one VM until it stops.
//!
//! Logs go to stderr (`RUST_LOG` filters, default `info`), each line carrying the `vm_id`. The exit code
//! tells how the VM ended (see `vmm::exit_codes`), and is also written to `<run_dir>/exit-status.json` so a
//! supervisor that is not this process's parent (e.g. after a server restart) learns it too.

use std::time::Instant;

use vmm::config::VmConfig;
use vmm::exit_codes;

const USAGE: &str = "usage: vmm --config <file.json> | --config-json <json>";

fn main() {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["--config", path] => VmConfig::from_file(std::path::Path::new(path)),
        ["--config-json", json] => VmConfig::parse(json),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(exit_codes::EXIT_USAGE);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %vmm::runner::error_chain(&e), "invalid configuration");
            std::process::exit(exit_codes::EXIT_VMM_ERROR);
        }
    };
    let span = tracing::info_span!("vm", vm_id = %cfg.vm_id);
    let status_file = cfg.run_dir.join(exit_codes::STATUS_FILE);
    // A stale file from an earlier run would tell the supervisor this run already ended.
    let _ = std::fs::remove_file(&status_file);
    let code = span.in_scope(|| vmm::runner::run(cfg, started));
    tracing::info!(code, name = exit_codes::name(code), "vmm exiting");
    if let Err(e) = exit_codes::write_status(&status_file, code) {
        tracing::warn!(error = %e, path = %status_file.display(), "cannot record the exit status");
    }
    std::process::exit(code);
}
