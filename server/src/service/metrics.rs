//! A VM's metrics for its page and `GET /api/v1/vms/{id}/metrics`: the caller's tenant's VMs only; the
//! last hour from raw samples, a day or a week from 5-minute roll-ups followed by the raw samples of the
//! bucket still running.

use app::error::AppError;
use app::model::{MetricsRange, VmMetrics};
use app::port::{Caller, Metrics};
use async_trait::async_trait;

use super::{internal, Service};
use crate::db::metrics::{self as store, SampleRow, RAW, ROLLUP};
use crate::metrics::series;

#[async_trait]
impl Metrics for Service {
    #[tracing::instrument(skip_all, fields(vm_id = %vm_id, tenant_id = %caller.tenant_id))]
    async fn vm_metrics(
        &self,
        caller: &Caller,
        vm_id: String,
        range: MetricsRange,
    ) -> Result<VmMetrics, AppError> {
        let vm = self.tenant_vm(caller, &vm_id).await?;
        let to = time::OffsetDateTime::now_utc().unix_timestamp();
        let from = to - range.secs();
        let raw_step = self.inner.metrics.interval_secs.max(1) as i64;
        let (rows, step) = match range {
            // One sample before the range, for the first point's rates.
            MetricsRange::Hour => (
                store::series(self.pool(), &vm.id, RAW, from - raw_step)
                    .await
                    .map_err(internal)?,
                raw_step,
            ),
            MetricsRange::Day | MetricsRange::Week => {
                let mut rows: Vec<SampleRow> = store::series(self.pool(), &vm.id, ROLLUP, from - ROLLUP)
                    .await
                    .map_err(internal)?
                    .into_iter()
                    // A roll-up holds the bucket's last counters: place it at the bucket's end.
                    .map(|r| SampleRow {
                        at: r.at + ROLLUP,
                        ..r
                    })
                    .collect();
                let rolled_until = rows.last().map_or(from, |r| r.at);
                let recent = store::series(self.pool(), &vm.id, RAW, rolled_until)
                    .await
                    .map_err(internal)?;
                rows.extend(recent.into_iter().filter(|r| r.at > rolled_until));
                (rows, ROLLUP)
            }
        };
        let mut points = series::points(&rows, vm.vcpus, step);
        points.retain(|p| p.at >= from);
        Ok(VmMetrics {
            vm_id: vm.id,
            range,
            step_secs: step as u32,
            from,
            to,
            points,
        })
    }
}
