//! What the VM lists show and in which order: the query string of the Instances and admin VMs pages and of
//! `GET /api/v1/vms` and `GET /api/v1/admin/vms` (one set of parameters for both), and the admin's rows.

use serde::{Deserialize, Serialize};

use super::VmView;

/// How a VM list is sorted: a key, `-` in front for descending.
pub const VM_SORT_KEYS: [&str; 5] = ["name", "created", "state", "image", "tenant"];

/// Filters, order and page of a VM list. Every field is optional; empty means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "ssr", into_params(parameter_in = Query))]
#[serde(default, deny_unknown_fields)]
pub struct VmListQuery {
    /// Part of the VM's name or id (case-insensitive).
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub q: String,
    /// One state, e.g. `running`.
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub state: String,
    /// An image name.
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub image: String,
    /// Admins: a tenant id or name.
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub tenant: String,
    /// Admins: the host the VM runs on.
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub host: String,
    /// `name`, `created`, `state`, `image` or `tenant` (admins); `-` in front for descending. Default
    /// `-created` (newest first).
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub sort: String,
    /// Page size, 1–500 (default: everything for a tenant's list, 50 for the admin's).
    #[cfg_attr(feature = "ssr", param(required = false, minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
    /// Rows to skip.
    #[cfg_attr(feature = "ssr", param(required = false))]
    pub offset: Option<u32>,
}

/// A VM of any tenant, as the admin's all-VMs view lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AdminVmView {
    #[serde(flatten)]
    pub vm: VmView,
    pub tenant_name: String,
    /// The compute host it is placed on.
    pub host: String,
}

/// One page of the admin's all-VMs view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AdminVmPage {
    pub items: Vec<AdminVmView>,
    /// How many VMs match the filters (all pages).
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
}

/// A VM's new name (`PATCH /api/v1/vms/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RenameVm {
    /// Lowercase letters, digits and '-', as at launch; unique among the tenant's VMs.
    pub name: String,
}
