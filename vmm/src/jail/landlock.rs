//! Landlock for the jailed VMM: a second wall behind the mount namespace. Files only beneath `/vm`
//! (read, write, make sockets and regular files, remove — never execute) and `/proc` (read); no TCP bind
//! or connect; no signals to or abstract sockets of processes outside the domain. Best effort by ABI: the
//! kernel here has ABI 7; on a kernel without Landlock the VMM logs it loudly and goes on, the mount
//! namespace still holding.

use landlock::{
    make_bitflags, path_beneath_rules, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, ABI,
};

use super::JailError;

/// The newest ABI these rules know about.
const ABI_USED: ABI = ABI::V7;

/// Restricts this thread (and the threads it spawns later); returns whether Landlock is enforced.
pub(super) fn restrict() -> Result<bool, JailError> {
    let run_dir = make_bitflags!(AccessFs::{
        ReadFile | ReadDir | WriteFile | RemoveFile | MakeReg | MakeSock | Truncate
    });
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI_USED))
        .and_then(|r| r.handle_access(AccessNet::from_all(ABI_USED)))
        .and_then(|r| r.scope(Scope::from_all(ABI_USED)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules([vmm_api::jail::JAIL_RUN_DIR], run_dir)))
        .and_then(|r| {
            r.add_rules(path_beneath_rules(
                ["/proc"],
                make_bitflags!(AccessFs::{ReadFile | ReadDir}),
            ))
        })
        .and_then(|r| r.restrict_self())
        .map_err(JailError::Landlock)?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(true),
        RulesetStatus::PartiallyEnforced => {
            tracing::warn!("Landlock only partly enforced: this kernel lacks some of its features");
            Ok(true)
        }
        RulesetStatus::NotEnforced => {
            tracing::error!("Landlock is NOT enforced: this kernel lacks it; the jail relies on its mount namespace and uid alone");
            Ok(false)
        }
    }
}
