//! The signed-in caller of one request, resolved once. A server-rendered page runs several server
//! functions (the layout's user, the quota cards, the list), and each asks who is calling; they share the
//! first answer, so a page costs one session and user lookup instead of one per function. The cell lives in
//! the request's extensions (leptos hands every server function a clone of the request's parts, and the
//! clones share it), so nothing is remembered past the request.

use std::sync::Arc;

use app::port::Caller;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::request::Parts;
use tokio::sync::OnceCell;

#[derive(Clone, Default)]
pub struct RequestCaller(Arc<OnceCell<Caller>>);

impl RequestCaller {
    /// The request's cell, if the middleware put one there.
    pub fn of(req: &Parts) -> Option<Self> {
        req.extensions.get::<Self>().cloned()
    }

    /// The caller resolved by `resolve`, run at most once per request while it succeeds (a refusal is
    /// not remembered: the next asker resolves again and is refused again).
    pub async fn get_or_resolve<E, F, Fut>(&self, resolve: F) -> Result<Caller, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Caller, E>>,
    {
        self.0.get_or_try_init(resolve).await.cloned()
    }
}

/// Middleware: gives the request an empty cell.
pub async fn provide(mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(RequestCaller::default());
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use app::model::Role;

    use super::*;

    fn caller() -> Caller {
        Caller {
            user_id: "u".into(),
            tenant_id: "t".into(),
            username: "ann".into(),
            role: Role::Member,
            token_id: None,
        }
    }

    #[tokio::test]
    async fn clones_of_one_request_resolve_once_and_a_refusal_is_not_remembered() {
        let cell = RequestCaller::default();
        let clone = cell.clone();
        let runs = AtomicUsize::new(0);
        let refused: Result<Caller, &str> = cell
            .get_or_resolve(|| async {
                runs.fetch_add(1, Ordering::SeqCst);
                Err("no session")
            })
            .await;
        assert!(refused.is_err());
        for c in [&cell, &clone, &cell] {
            let got: Result<Caller, &str> = c
                .get_or_resolve(|| async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok(caller())
                })
                .await;
            assert_eq!(got.expect("caller").username, "ann");
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "one refusal, then one lookup shared by all"
        );
        let other_request = RequestCaller::default();
        let fresh: Result<Caller, &str> = other_request.get_or_resolve(|| async { Err("no session") }).await;
        assert!(fresh.is_err(), "nothing carried to another request");
    }
}
