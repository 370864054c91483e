//! Applying a rendered ruleset ([`crate::ruleset::render`]) with the `nft` binary: one `nft -f -` batch,
//! which the kernel commits atomically or not at all. Inside a named network namespace (`ip netns add`)
//! it runs through `ip netns exec`, so this crate needs no `setns` of its own.
//!
//! Blocking (it waits for `nft`); call it from `spawn_blocking` in async code.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use crate::ruleset;

/// Failures running `nft`.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("Network namespace name {0:?} is not a plain name")]
    NetnsName(String),
    #[error("Running {0} failed")]
    Spawn(String, #[source] io::Error),
    #[error("Writing the ruleset to nft failed")]
    Write(#[source] io::Error),
    #[error("Waiting for nft failed")]
    Wait(#[source] io::Error),
    #[error("nft rejected the ruleset ({status}): {stderr}")]
    Rejected { status: ExitStatus, stderr: String },
}

/// Replaces the namespace's ruleset with `ruleset` (all or nothing). `netns`: a namespace under
/// `/run/netns` (`None`: the caller's own).
#[tracing::instrument(skip_all, fields(netns = netns.unwrap_or("-"), bytes = ruleset.len()))]
pub fn apply(ruleset: &str, netns: Option<&str>) -> Result<(), NftError> {
    let started = Instant::now();
    run(&["-f", "-"], ruleset, netns)?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "nftables ruleset applied"
    );
    Ok(())
}

/// Parses and checks `ruleset` in the kernel without committing it (`nft -c`). Needs the same rights as
/// [`apply`]; touches nothing.
pub fn check(ruleset: &str, netns: Option<&str>) -> Result<(), NftError> {
    run(&["-c", "-f", "-"], ruleset, netns)
}

/// Deletes both of the portal's tables (teardown); succeeds when they are already gone.
#[tracing::instrument(skip_all, fields(netns = netns.unwrap_or("-")))]
pub fn remove(netns: Option<&str>) -> Result<(), NftError> {
    run(&["-f", "-"], &ruleset::render_removal(), netns)
}

fn run(args: &[&str], input: &str, netns: Option<&str>) -> Result<(), NftError> {
    let nft = program("nft");
    let mut cmd = match netns {
        Some(name) => {
            if name.is_empty() || name == "." || name == ".." || name.contains('/') {
                return Err(NftError::NetnsName(name.to_owned()));
            }
            let mut cmd = Command::new(program("ip"));
            cmd.args(["netns", "exec", name]).arg(&nft);
            cmd
        }
        None => Command::new(&nft),
    };
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| NftError::Spawn(format!("{cmd:?}"), e))?;
    // Written from another thread: nft may report errors while we are still writing a large batch.
    let stdin = child.stdin.take();
    let written = std::thread::scope(|s| {
        let writer = s.spawn(move || match stdin {
            Some(mut pipe) => pipe.write_all(input.as_bytes()),
            None => Ok(()),
        });
        let output = child.wait_with_output().map_err(NftError::Wait);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("writer thread panicked")));
        output.map(|o| (o, written))
    });
    let (output, written) = written?;
    if !output.status.success() {
        return Err(NftError::Rejected {
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    written.map_err(NftError::Write)
}

/// `name` from `PATH`, else from the sbin directories a service's `PATH` may lack.
fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_name_cannot_leave_run_netns() {
        for name in ["", ".", "..", "../x", "a/b"] {
            assert!(
                matches!(apply("", Some(name)), Err(NftError::NetnsName(_))),
                "{name:?}"
            );
        }
    }

    #[test]
    fn removal_succeeds_on_missing_tables() {
        let text = ruleset::render_removal();
        assert!(text.starts_with("table inet cloudportal {}\ndelete table inet cloudportal\n"));
        assert!(text.contains("table bridge cloudportal {}\ndelete table bridge cloudportal\n"));
    }
}
