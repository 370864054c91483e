//! Live VM state changes, as the caller may see them: only their tenant's VMs, and only while the caller's
//! access lasts (a revocation ends the feed with its reason). The event stream (`GET /api/v1/events`)
//! forwards these; it never subscribes to the supervisor itself.

use std::future::Future;

use app::error::AppError;
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
    /// The caller's access was revoked: the last item.
    Revoked(&'static str),
}

impl Service {
    /// State changes of the caller's tenant's VMs from now on, until the caller drops the stream or loses
    /// access.
    pub async fn vm_changes(
        &self,
        caller: &Caller,
    ) -> Result<impl Stream<Item = VmFeed> + Send + 'static, AppError> {
        // Subscribed before the access check (see `revocation.rs`).
        let revoked = self.revoked(caller);
        let changes = self.supervisor().subscribe();
        self.check_access(caller).await?;
        Ok(until_revoked(
            tenant_feed(changes, caller.tenant_id.clone()),
            revoked,
        ))
    }
}

/// `feed` until `revoked` resolves, then one `Revoked` item and the end.
fn until_revoked(
    feed: impl Stream<Item = VmFeed> + Send + 'static,
    revoked: impl Future<Output = &'static str> + Send + 'static,
) -> impl Stream<Item = VmFeed> + Send + 'static {
    let state = Some((Box::pin(feed), Box::pin(revoked)));
    futures_util::stream::unfold(state, |state| async move {
        let (mut feed, mut revoked) = state?;
        tokio::select! {
            reason = &mut revoked => Some((VmFeed::Revoked(reason), None)),
            item = feed.next() => item.map(|item| (item, Some((feed, revoked)))),
        }
    })
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
                VmFeed::Revoked(_) => "revoked".into(),
            });
        }
        // The channel holds two: the first two were dropped, one of them another tenant's.
        assert_eq!(seen, ["missed", "a2", "a3"]);
    }

    #[tokio::test]
    async fn a_revocation_ends_the_feed_with_its_reason() {
        let (tx, rx) = broadcast::channel(8);
        let (revoke, revoked) = tokio::sync::oneshot::channel::<&'static str>();
        let feed = until_revoked(tenant_feed(rx, "acme".into()), async {
            revoked.await.unwrap_or("dropped")
        });
        let mut feed = std::pin::pin!(feed);
        tx.send(change("a1", "acme")).expect("a subscriber");
        assert!(matches!(feed.next().await, Some(VmFeed::Changed(_))));
        revoke.send("disabled").expect("listening");
        assert!(matches!(feed.next().await, Some(VmFeed::Revoked("disabled"))));
        // The feed let go of its subscription.
        assert!(tx.send(change("a2", "acme")).is_err());
        assert!(feed.next().await.is_none(), "nothing after the revocation");
    }
}
