//! The port for VM lists that filter and sort, renaming a VM, and the admin's view of every tenant's VMs.

use async_trait::async_trait;

use super::Caller;
use crate::error::AppError;
use crate::model::{AdminVmPage, VmAction, VmListQuery, VmView};

#[async_trait]
pub trait VmLists: Send + Sync {
    /// The caller's tenant's VMs matching `query` (`tenant` and `host` are refused here), in its order.
    async fn search_vms(&self, caller: &Caller, query: VmListQuery) -> Result<Vec<VmView>, AppError>;
    /// Renames one of the caller's tenant's VMs (validated as at launch, unique in the tenant).
    async fn rename_vm(&self, caller: &Caller, vm_id: String, name: String) -> Result<VmView, AppError>;
    /// Every tenant's VMs matching `query`, one page (admins).
    async fn admin_vms(&self, caller: &Caller, query: VmListQuery) -> Result<AdminVmPage, AppError>;
    /// A power action or delete on any tenant's VM (admins), audited.
    async fn admin_vm_action(
        &self,
        caller: &Caller,
        vm_id: String,
        action: VmAction,
    ) -> Result<VmView, AppError>;
}
