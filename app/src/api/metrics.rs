//! A VM's metrics for its page's graphs (the service checks the VM is the caller's tenant's).

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::VmMetrics;

/// `range`: `1h`, `1d` or `7d`.
#[server(prefix = "/api/fn", endpoint = "vm_metrics")]
pub async fn get_vm_metrics(id: String, range: String) -> Result<VmMetrics, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let range = crate::model::MetricsRange::parse(range.trim())
            .ok_or_else(|| AppError::invalid("range", "The range must be 1h, 1d or 7d."))?;
        portal.vm_metrics(&caller, id, range).await
    })
    .await
}
