//! The VM lifecycle rules, in one pure, unit-tested place: where each user action moves a VM, which states
//! hold host resources, what a VMM's unexpected end means for each state, and how reconciliation resumes or
//! settles each state once it knows whether the VM's VMM still runs.
//!
//! Billing and quota do not follow state names alone: a VM is billed exactly while it has a VMM run
//! (`vms.vmm_run_id`, from before the spawn until the exit is seen) and holds its vCPUs and memory while
//! it is in a `HOLDS_RESOURCES` state *or* has a VMM run.

use app::model::{VmAction, VmState};

use super::process::Outcome;

/// The state a user action moves a VM to at once (the slow half follows in the supervisor). Which actions
/// each state allows is `VmState::allowed_actions` (in `app`, so the UI shows exactly the buttons the server
/// accepts); `allowed_from` is its inverse.
pub fn first_step(action: VmAction) -> VmState {
    match action {
        VmAction::Start => VmState::Starting,
        VmAction::Stop | VmAction::ForceOff => VmState::Stopping,
        VmAction::Reboot => VmState::Rebooting,
        VmAction::Delete => VmState::Deleting,
    }
}

/// States from which `action` is allowed (the inverse of `VmState::allowed_actions`).
pub fn allowed_from(action: VmAction) -> Vec<VmState> {
    VmState::ALL
        .into_iter()
        .filter(|s| s.allowed_actions().contains(&action))
        .collect()
}

/// States in which a VM holds its vCPUs and memory even without a VMM run: it is about to have one
/// (`creating`, `starting`, `rebooting`) or still has one until it exits (`running`, `stopping`).
pub const HOLDS_RESOURCES: [VmState; 5] = [
    VmState::Creating,
    VmState::Starting,
    VmState::Running,
    VmState::Rebooting,
    VmState::Stopping,
];

/// The state a VM takes when its VMM ends without anyone ending it, with the reason to show; `None` where
/// the action in progress makes the next step itself (stopping, rebooting, deleting) or nothing changes.
pub fn after_unexpected_exit(state: VmState, outcome: &Outcome) -> Option<(VmState, String)> {
    match (state, outcome) {
        (VmState::Running, Outcome::PoweredOff) => Some((VmState::Stopped, String::new())),
        (VmState::Running | VmState::Starting, Outcome::Failed(reason)) => {
            Some((VmState::Crashed, reason.clone()))
        }
        (VmState::Starting, Outcome::PoweredOff) => {
            Some((VmState::Crashed, "VMM exited while starting".to_string()))
        }
        _ => None,
    }
}

/// What reconciliation does with a VM whose VMM still runs (it adopts the VMM first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Nothing in progress.
    Keep,
    /// Wait for the VMM to report running, as the interrupted start would have.
    AwaitRunning,
    /// Finish the interrupted stop (graceful, escalating to forced).
    FinishStop,
    FinishReboot,
    FinishDelete,
    /// The VM should not have a VMM: end it.
    EndStray,
}

pub fn with_vmm(state: VmState) -> Resume {
    match state {
        VmState::Running => Resume::Keep,
        VmState::Starting => Resume::AwaitRunning,
        VmState::Stopping => Resume::FinishStop,
        VmState::Rebooting => Resume::FinishReboot,
        VmState::Deleting => Resume::FinishDelete,
        VmState::Stopped | VmState::Crashed | VmState::Creating | VmState::Deleted => Resume::EndStray,
    }
}

/// What reconciliation does with a VM that has no VMM (the run lock was free).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    Keep,
    /// Make the VM's files again and boot it: the launch was interrupted.
    Provision,
    /// Stopped if the VMM recorded a power-off, else crashed with its reason.
    FromOutcome,
    /// The stop finished while the portal was away.
    Stopped,
    /// Boot again: the interrupted action wanted the VM running.
    Boot,
    /// Like `FromOutcome` if a VMM of the VM's run had started (it ran and ended), else `Boot` (the portal
    /// stopped before the VMM was spawned).
    BootUnlessRan,
    FinishDelete,
}

pub fn without_vmm(state: VmState) -> Settle {
    match state {
        VmState::Creating => Settle::Provision,
        VmState::Running => Settle::FromOutcome,
        VmState::Starting => Settle::BootUnlessRan,
        VmState::Stopping => Settle::Stopped,
        VmState::Rebooting => Settle::Boot,
        VmState::Deleting => Settle::FinishDelete,
        VmState::Stopped | VmState::Crashed | VmState::Deleted => Settle::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_a_rule_with_and_without_a_vmm() {
        for state in VmState::ALL {
            let resume = with_vmm(state);
            let settle = without_vmm(state);
            // A state that holds no resources never keeps a VMM.
            if !HOLDS_RESOURCES.contains(&state) && state != VmState::Deleting {
                assert_eq!(resume, Resume::EndStray, "{state}");
            }
            if matches!(state, VmState::Stopped | VmState::Crashed | VmState::Deleted) {
                assert_eq!(settle, Settle::Keep, "{state}");
            }
        }
    }

    #[test]
    fn unexpected_ends_only_change_running_and_starting_vms() {
        let failed = Outcome::Failed("VMM killed by signal 9".into());
        assert_eq!(
            after_unexpected_exit(VmState::Running, &Outcome::PoweredOff),
            Some((VmState::Stopped, String::new()))
        );
        assert_eq!(
            after_unexpected_exit(VmState::Running, &failed),
            Some((VmState::Crashed, "VMM killed by signal 9".into()))
        );
        assert!(matches!(
            after_unexpected_exit(VmState::Starting, &Outcome::PoweredOff),
            Some((VmState::Crashed, _))
        ));
        for state in [
            VmState::Stopping,
            VmState::Rebooting,
            VmState::Deleting,
            VmState::Stopped,
        ] {
            assert_eq!(after_unexpected_exit(state, &failed), None, "{state}");
        }
    }

    #[test]
    fn the_quota_sql_counts_exactly_the_resource_holding_states() {
        let sql = crate::db::quotas::HOLDS_RESOURCES;
        for state in VmState::ALL {
            let listed = sql.contains(&format!("'{}'", state.as_str()));
            assert_eq!(listed, HOLDS_RESOURCES.contains(&state), "{state} in {sql}");
        }
        assert!(sql.contains("vmm_run_id IS NOT NULL"));
    }

    #[test]
    fn every_action_has_a_legal_source_state_and_moves_somewhere_else() {
        for action in [
            VmAction::Start,
            VmAction::Stop,
            VmAction::Reboot,
            VmAction::ForceOff,
            VmAction::Delete,
        ] {
            let from = allowed_from(action);
            assert!(!from.is_empty(), "{action:?} is never allowed");
            // Force off while stopping escalates a graceful stop; every other action changes the state.
            if action != VmAction::ForceOff {
                assert!(!from.contains(&first_step(action)), "{action:?} would loop");
            }
        }
        assert_eq!(
            allowed_from(VmAction::Start),
            vec![VmState::Stopped, VmState::Crashed]
        );
        assert!(!allowed_from(VmAction::Delete).contains(&VmState::Deleted));
        assert!(!allowed_from(VmAction::Stop).contains(&VmState::Stopped));
    }
}
