//! Live VM state changes, as the caller may see them: only their tenant's VMs. The event stream
//! (`GET /api/v1/events`) forwards these; it never subscribes to the supervisor itself.

use app::port::Caller;
use futures_util::stream::Stream;
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use super::Service;
use crate::vm::VmChange;

/// One item of a caller's change feed.
#[derive(Debug, Clone)]
pub enum VmFeed {
    /// A VM of the caller's tenant changed state.
    Changed(VmChange),
    /// The subscriber fell behind and changes were dropped: reload what was listed.
    Missed,
}

impl Service {
    /// State changes of the caller's tenant's VMs from now on, until the caller drops the stream.
    pub fn vm_changes(&self, caller: &Caller) -> impl Stream<Item = VmFeed> + Send + 'static {
        tenant_feed(self.supervisor().subscribe(), caller.tenant_id.clone())
    }
}

/// Every VM's changes narrowed to one tenant's.
fn tenant_feed(
    changes: broadcast::Receiver<VmChange>,
    tenant_id: String,
) -> impl Stream<Item = VmFeed> + Send + 'static {
    BroadcastStream::new(changes).filter_map(move |msg| match msg {
        Ok(change) if change.tenant_id == tenant_id => Some(VmFeed::Changed(change)),
        Ok(_) => None,
        Err(BroadcastStreamRecvError::Lagged(_)) => Some(VmFeed::Missed),
    })
}

#[cfg(test)]
mod tests {
    use app::model::VmState;

    use super::*;

    fn change(vm: &str, tenant: &str) -> VmChange {
        VmChange {
            vm_id: vm.into(),
            tenant_id: tenant.into(),
            state: VmState::Running,
        }
    }

    #[tokio::test]
    async fn a_tenant_sees_only_its_own_vms_and_is_told_when_it_missed_changes() {
        let (tx, rx) = broadcast::channel(2);
        let mut feed = std::pin::pin!(tenant_feed(rx, "acme".into()));
        for (vm, tenant) in [("a1", "acme"), ("g1", "globex"), ("a2", "acme"), ("a3", "acme")] {
            tx.send(change(vm, tenant)).expect("a subscriber");
        }
        drop(tx);
        let mut seen = vec![];
        while let Some(item) = feed.next().await {
            seen.push(match item {
                VmFeed::Changed(c) => c.vm_id,
                VmFeed::Missed => "missed".into(),
            });
        }
        // The channel holds two: the first two were dropped, one of them another tenant's.
        assert_eq!(seen, ["missed", "a2", "a3"]);
    }
}
