//! The port through which server functions reach the server's services (server side only).
//!
//! Server functions are declared in this crate because the browser needs their stubs, but the database and
//! the VM manager live in `server`, which depends on this crate. So this crate defines the trait and the
//! server implements it and provides it as context (`Arc<dyn Portal>`). The REST API calls the same
//! implementation, so tenancy, quota and audit rules are enforced in one place.

mod key_pairs;
mod vm_lists;

use std::sync::Arc;

use async_trait::async_trait;
use http::request::Parts;
use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{
    AttachFloatingIp, AuditCheck, AuditPage, AuditQuery, FlavorView, FloatingIpView, ImageView, Invoice,
    LaunchRequest, Me, NetworkSettingsView, NetworkView, NewFlavor, NewNetwork, NewPortForward, NewRule,
    NewSecurityGroup, NewToken, NewUser, PortForwardView, QuotaSet, QuotaView, SecurityGroupView,
    SetVmGroups, TenantView, TokenView, UserView, VmAction, VmDetail, VmNetworkView, VmView,
};
pub use key_pairs::KeyPairs;
pub use vm_lists::VmLists;

/// Who is making a request, once authenticated (by session cookie or API token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub tenant_id: String,
    pub username: String,
    pub role: crate::model::Role,
    /// The API token the request was authenticated with (`None`: a session).
    pub token_id: Option<String>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == crate::model::Role::Admin
    }

    /// Refuses unless the caller is a cloud admin.
    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }
}

/// Signing in and out, and the signed-in user's own account.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Checks credentials, rotates the session id and stores the user in the session.
    async fn login(&self, req: &Parts, username: String, password: String) -> Result<Me, AppError>;
    /// Ends the session of this request.
    async fn logout(&self, req: &Parts) -> Result<(), AppError>;
    /// The caller of this request by its session, or `Unauthenticated`.
    async fn session_caller(&self, req: &Parts) -> Result<Caller, AppError>;
    async fn me(&self, caller: &Caller) -> Result<Me, AppError>;
    /// Changes the caller's password; the user's other sessions end.
    async fn change_password(
        &self,
        req: &Parts,
        caller: &Caller,
        current: String,
        new: String,
    ) -> Result<(), AppError>;
}

/// The caller's personal API tokens.
#[async_trait]
pub trait ApiTokens: Send + Sync {
    async fn list_tokens(&self, caller: &Caller) -> Result<Vec<TokenView>, AppError>;
    async fn create_token(
        &self,
        caller: &Caller,
        name: String,
        expires_in_days: Option<u32>,
    ) -> Result<NewToken, AppError>;
    async fn revoke_token(&self, caller: &Caller, token_id: String) -> Result<(), AppError>;
}

/// Cloud administration: tenants and users. Every method refuses non-admins.
#[async_trait]
pub trait Admin: Send + Sync {
    async fn list_tenants(&self, caller: &Caller) -> Result<Vec<TenantView>, AppError>;
    async fn create_tenant(
        &self,
        caller: &Caller,
        name: String,
        description: String,
    ) -> Result<TenantView, AppError>;
    async fn set_tenant_disabled(
        &self,
        caller: &Caller,
        tenant_id: String,
        disabled: bool,
    ) -> Result<TenantView, AppError>;
    async fn list_users(&self, caller: &Caller) -> Result<Vec<UserView>, AppError>;
    async fn create_user(&self, caller: &Caller, user: NewUser) -> Result<UserView, AppError>;
    async fn set_user_disabled(
        &self,
        caller: &Caller,
        user_id: String,
        disabled: bool,
    ) -> Result<UserView, AppError>;
    /// Sets a new password; the user's sessions end and their API tokens are revoked.
    async fn reset_password(
        &self,
        caller: &Caller,
        user_id: String,
        password: String,
    ) -> Result<(), AppError>;
    /// A user's live API tokens.
    async fn list_user_tokens(&self, caller: &Caller, user_id: String) -> Result<Vec<TokenView>, AppError>;
    /// Revokes one of a user's API tokens; consoles and streams opened with it close.
    async fn revoke_user_token(
        &self,
        caller: &Caller,
        user_id: String,
        token_id: String,
    ) -> Result<(), AppError>;
}

/// Flavors and images: everyone reads what they may launch; admins manage them.
#[async_trait]
pub trait Catalogue: Send + Sync {
    /// Members see enabled flavors; admins see all.
    async fn list_flavors(&self, caller: &Caller) -> Result<Vec<FlavorView>, AppError>;
    async fn create_flavor(&self, caller: &Caller, flavor: NewFlavor) -> Result<FlavorView, AppError>;
    async fn set_flavor_disabled(
        &self,
        caller: &Caller,
        flavor_id: String,
        disabled: bool,
    ) -> Result<FlavorView, AppError>;
    /// Admins: the hourly price of usage intervals opened from now on (past usage keeps its price).
    async fn set_flavor_price(
        &self,
        caller: &Caller,
        flavor_id: String,
        hourly_price_minor: i64,
    ) -> Result<FlavorView, AppError>;
    /// Public images and the caller's tenant's own (admins: all).
    async fn list_images(&self, caller: &Caller) -> Result<Vec<ImageView>, AppError>;
    /// Removes an image no VM uses (admins).
    async fn delete_image(&self, caller: &Caller, image_id: String) -> Result<(), AppError>;
}

/// The caller's tenant's virtual machines.
#[async_trait]
pub trait Vms: Send + Sync {
    async fn list_vms(&self, caller: &Caller) -> Result<Vec<VmView>, AppError>;
    async fn get_vm(&self, caller: &Caller, vm_id: String) -> Result<VmDetail, AppError>;
    /// Creates the VM and starts it; answers at once with the VM in `creating`.
    async fn launch_vm(&self, caller: &Caller, req: LaunchRequest) -> Result<VmView, AppError>;
    /// Asks for an action; answers at once with the VM in its new (often transitional) state.
    async fn vm_action(&self, caller: &Caller, vm_id: String, action: VmAction) -> Result<VmView, AppError>;
}

/// Tenant networks: networks, security groups, port forwards and floating IPs. Every call is scoped to the
/// caller's tenant (admins listing networks see every tenant's).
#[async_trait]
pub trait Networks: Send + Sync {
    /// What tenant networking offers here (on or off, uplink, floating IPs; the pools for admins).
    async fn network_settings(&self, caller: &Caller) -> Result<NetworkSettingsView, AppError>;
    async fn list_networks(&self, caller: &Caller) -> Result<Vec<NetworkView>, AppError>;
    async fn create_network(&self, caller: &Caller, req: NewNetwork) -> Result<NetworkView, AppError>;
    /// Only a network without cards can go.
    async fn delete_network(&self, caller: &Caller, id: String) -> Result<(), AppError>;
    async fn list_security_groups(&self, caller: &Caller) -> Result<Vec<SecurityGroupView>, AppError>;
    async fn create_security_group(
        &self,
        caller: &Caller,
        req: NewSecurityGroup,
    ) -> Result<SecurityGroupView, AppError>;
    /// Not the default group, and not while a VM is in it.
    async fn delete_security_group(&self, caller: &Caller, id: String) -> Result<(), AppError>;
    async fn add_rule(
        &self,
        caller: &Caller,
        group_id: String,
        rule: NewRule,
    ) -> Result<SecurityGroupView, AppError>;
    async fn delete_rule(
        &self,
        caller: &Caller,
        group_id: String,
        rule_id: String,
    ) -> Result<SecurityGroupView, AppError>;
    /// Replaces the VM's groups (applied to the host within a second).
    async fn set_vm_groups(
        &self,
        caller: &Caller,
        vm_id: String,
        req: SetVmGroups,
    ) -> Result<VmNetworkView, AppError>;
    async fn list_port_forwards(&self, caller: &Caller) -> Result<Vec<PortForwardView>, AppError>;
    async fn create_port_forward(
        &self,
        caller: &Caller,
        req: NewPortForward,
    ) -> Result<PortForwardView, AppError>;
    async fn delete_port_forward(&self, caller: &Caller, id: String) -> Result<(), AppError>;
    async fn list_floating_ips(&self, caller: &Caller) -> Result<Vec<FloatingIpView>, AppError>;
    async fn allocate_floating_ip(&self, caller: &Caller) -> Result<FloatingIpView, AppError>;
    async fn attach_floating_ip(
        &self,
        caller: &Caller,
        id: String,
        req: AttachFloatingIp,
    ) -> Result<FloatingIpView, AppError>;
    async fn release_floating_ip(&self, caller: &Caller, id: String) -> Result<(), AppError>;
}

/// Quotas, usage, invoices and the audit log.
#[async_trait]
pub trait Billing: Send + Sync {
    /// The caller's tenant's limits and usage.
    async fn my_quota(&self, caller: &Caller) -> Result<QuotaView, AppError>;
    /// Every tenant's limits and usage (admins).
    async fn list_quotas(&self, caller: &Caller) -> Result<Vec<QuotaView>, AppError>;
    /// Admins: the limits of tenants without their own.
    async fn quota_defaults(&self, caller: &Caller) -> Result<QuotaSet, AppError>;
    /// Sets a tenant's limits (admins); `tenant_id` `"*"` sets the defaults for tenants without their own.
    /// A network limit given as `None` keeps the value in force.
    async fn set_quota(&self, caller: &Caller, tenant_id: String, limits: QuotaSet) -> Result<(), AppError>;
    /// The caller's tenant's invoice for `month` (`YYYY-MM`, empty: this month).
    async fn my_invoice(&self, caller: &Caller, month: String) -> Result<Invoice, AppError>;
    /// Every tenant's usage for `month` (admins).
    async fn all_usage(&self, caller: &Caller, month: String) -> Result<Invoice, AppError>;
    /// The audit entries matching `query`, one page, newest first unless asked otherwise (admins).
    async fn audit_log(&self, caller: &Caller, query: AuditQuery) -> Result<AuditPage, AppError>;
    /// Every action the audit log holds, for the page's filter (admins).
    async fn audit_actions(&self, caller: &Caller) -> Result<Vec<String>, AppError>;
    /// Recomputes the audit hash chain (admins).
    async fn verify_audit(&self, caller: &Caller) -> Result<AuditCheck, AppError>;
}

/// A VM's consoles (the caller's tenant's VMs only).
#[async_trait]
pub trait Consoles: Send + Sync {
    /// Issues a single-use console token for a running VM (valid at most 60 s).
    async fn open_console(
        &self,
        caller: &Caller,
        vm_id: String,
        kind: crate::api::console::ConsoleKind,
    ) -> Result<crate::api::console::ConsoleTicket, AppError>;
    /// The last serial output of a VM (running, or its last run's log while the VMM lives).
    async fn console_log(
        &self,
        caller: &Caller,
        vm_id: String,
    ) -> Result<crate::api::console::ConsoleLog, AppError>;
}

/// The machine VMs run on (admins only).
#[async_trait]
pub trait HostAdmin: Send + Sync {
    /// CPUs, memory and disk (physical, what VMs may commit, committed, used) and the VMs on the host.
    async fn host_view(&self, caller: &Caller) -> Result<crate::model::HostView, AppError>;
}

/// A VM's metrics (the caller's tenant's VMs only).
#[async_trait]
pub trait Metrics: Send + Sync {
    /// CPU, memory and disk rates of a VM over `range`.
    async fn vm_metrics(
        &self,
        caller: &Caller,
        vm_id: String,
        range: crate::model::MetricsRange,
    ) -> Result<crate::model::VmMetrics, AppError>;
}

/// Everything the UI needs from the server, one trait per area.
pub trait Portal:
    Accounts
    + ApiTokens
    + Admin
    + Catalogue
    + Vms
    + Networks
    + Billing
    + Consoles
    + HostAdmin
    + KeyPairs
    + VmLists
    + Metrics
    + 'static
{
}
impl<T> Portal for T where
    T: Accounts
        + ApiTokens
        + Admin
        + Catalogue
        + Vms
        + Networks
        + Billing
        + Consoles
        + HostAdmin
        + KeyPairs
        + VmLists
        + Metrics
        + 'static
{
}

/// The portal and the request of the server function being run.
pub fn portal() -> Result<(Arc<dyn Portal>, Parts), AppError> {
    let portal = use_context::<Arc<dyn Portal>>().ok_or(AppError::Internal)?;
    let parts = use_context::<Parts>().ok_or(AppError::Internal)?;
    Ok((portal, parts))
}

/// Records the error's HTTP status on the response of the running server function.
pub fn respond_with<T>(result: Result<T, AppError>) -> Result<T, AppError> {
    if let Err(err) = &result {
        if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
            if let Ok(status) = http::StatusCode::from_u16(err.status()) {
                res.set_status(status);
            }
        }
    }
    result
}

/// Runs `f` with the portal and the authenticated caller of this request.
pub async fn with_caller<T, F, Fut>(f: F) -> Result<T, AppError>
where
    F: FnOnce(Arc<dyn Portal>, Caller, Parts) -> Fut,
    Fut: std::future::Future<Output = Result<T, AppError>>,
{
    let run = async {
        let (portal, parts) = portal()?;
        let caller = portal.session_caller(&parts).await?;
        f(portal, caller, parts).await
    };
    respond_with(run.await)
}
