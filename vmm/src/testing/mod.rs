//! Test support shared by the unit tests and the integration tests (`vmm/tests`, feature
//! `test-support`): not part of the VMM a portal runs.

pub mod netns;
