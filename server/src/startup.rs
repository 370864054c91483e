//! Building the application: database, services, sessions, routes and middleware, bound to a listener.
//! `Application::build` does everything that can fail before serving; `run_until_stopped` serves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use app::port::Portal;
use app::{shell, App};
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{middleware, Router};
use leptos::config::LeptosOptions;
use leptos::nonce::Nonce;
use leptos::prelude::{provide_context, use_context};
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::SqliteStore;

use crate::auth::csrf::{self, OriginPolicy};
use crate::auth::password;
use crate::auth::request_caller;
use crate::config::Settings;
use crate::middleware::body_limit::{self, BodyLimits, MAX_BODY_BYTES};
use crate::middleware::client_addr::{self, ProxyPolicy};
use crate::middleware::security_headers::{self, CspNonce, HeaderPolicy};
use crate::middleware::server_fn_errors;
use crate::net::Networking;
use crate::service::Service;
use crate::state::AppState;
use crate::vm::{Supervisor, VmSettings};
use crate::{api, bootstrap, db, health, seed};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("Failed to create the data directory {0}")]
    DataDir(String, #[source] std::io::Error),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("Failed to prepare the session store")]
    Sessions(#[source] sqlx::Error),
    #[error("Failed to prepare password hashing")]
    Password(#[from] password::PasswordError),
    #[error("Failed to create the first admin: {0}")]
    Bootstrap(String),
    #[error(transparent)]
    Seed(#[from] seed::SeedError),
    #[error("Another portal is running on the data directory {0}: one portal supervises its VMs")]
    AlreadyRunning(String),
    #[error("Failed to set up tenant networks")]
    Network(#[source] crate::net::NetError),
    #[error("Failed to measure the host")]
    Capacity(#[source] crate::capacity::CapacityError),
    #[error("Failed to reconcile VMs with running VMM processes")]
    Reconcile(#[source] crate::vm::SupervisorError),
    #[error("Cannot jail the VMMs")]
    Sandbox(#[from] crate::vm::SandboxError),
    #[error("Failed to listen on {0}")]
    Bind(SocketAddr, #[source] std::io::Error),
    #[error("Server failed")]
    Serve(#[source] std::io::Error),
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    addr: SocketAddr,
    service: Service,
    stop_vms_on_shutdown: bool,
    /// `flock` on `<data_dir>/portal.lock`, held while this portal runs: two portals supervising the same
    /// VMs would each believe the other's VMMs are strays.
    _instance: std::fs::File,
}

/// Takes the data directory's instance lock, or says another portal holds it.
fn claim_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, StartupError> {
    let path = data_dir.join("portal.lock");
    let err = |e| StartupError::DataDir(path.display().to_string(), e);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(err)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(StartupError::AlreadyRunning(data_dir.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(err(e)),
    }
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        std::fs::create_dir_all(settings.data_dir.join("vms"))
            .map_err(|e| StartupError::DataDir(settings.data_dir.display().to_string(), e))?;
        let data_dir = std::fs::canonicalize(&settings.data_dir)
            .map_err(|e| StartupError::DataDir(settings.data_dir.display().to_string(), e))?;
        let instance = claim_data_dir(&data_dir)?;
        let pool = db::connect(&data_dir).await?;
        seed::seed(&pool, &settings.guest_dir).await?;
        crate::capacity::record(&pool, &data_dir, &settings.admission)
            .await
            .map_err(StartupError::Capacity)?;
        // Before reconciling VMs: re-adopted VMMs keep TAPs that must find their bridges.
        let network = Networking::start(&settings.network, &data_dir, pool.clone())
            .await
            .map_err(StartupError::Network)?;
        let sandbox = crate::vm::Sandbox::start(&settings.sandbox)?;
        let vm_settings = VmSettings {
            vmm_binary: settings.vmm_binary(),
            vms_dir: data_dir.join("vms"),
            stop_timeout: Duration::from_secs(settings.stop_timeout_secs),
            start_timeout: Duration::from_secs(settings.start_timeout_secs),
            boot_ready_timeout: Duration::from_secs(settings.boot.ready_timeout_secs),
            kvm_emulated: settings.kvm_emulated(),
            network: network.clone(),
            sandbox,
            seccomp: settings.vmm_seccomp,
        };
        tracing::info!(vmm = %vm_settings.vmm_binary.display(), emulated = vm_settings.kvm_emulated, "VM supervisor");
        let supervisor = Supervisor::new(pool.clone(), vm_settings);
        supervisor.reconcile().await.map_err(StartupError::Reconcile)?;
        // After reconciling: VMMs still running keep their (busy) cgroups.
        match db::sandbox::vm_ids(&pool).await {
            Ok(ids) => supervisor.settings().sandbox.sweep(&ids),
            Err(e) => tracing::warn!(error = %e, "cannot list VMs to sweep their cgroups"),
        }
        let service = Service::new(
            pool.clone(),
            &settings,
            supervisor,
            network,
            password::dummy_hash().await?,
        );
        crate::metrics::spawn(pool.clone(), data_dir.join("vms"), settings.metrics.clone());
        bootstrap::ensure_admin(&service, &settings)
            .await
            .map_err(|e| StartupError::Bootstrap(e.to_string()))?;

        let store = SqliteStore::new(pool);
        store.migrate().await.map_err(StartupError::Sessions)?;
        tokio::spawn(
            store
                .clone()
                .continuously_delete_expired(Duration::from_secs(300)),
        );
        let sessions = SessionManagerLayer::new(store)
            .with_name("portal_session")
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(settings.secure_cookies)
            .with_expiry(Expiry::OnInactivity(time::Duration::minutes(
                settings.session_idle_minutes,
            )));
        let throttle_owner = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                throttle_owner.throttle().prune();
            }
        });

        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| StartupError::Bind(settings.listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartupError::Bind(settings.listen, e))?;
        let leptos_options = LeptosOptions::builder()
            .output_name("portal")
            .site_root(settings.site_root.display().to_string())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();
        let state = AppState {
            service: service.clone(),
            leptos_options: leptos_options.clone(),
        };
        let router = routes(state, &settings, sessions);
        Ok(Self {
            listener,
            router,
            addr,
            service,
            stop_vms_on_shutdown: settings.stop_vms_on_shutdown,
            _instance: instance,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The services.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Serves until SIGINT/SIGTERM. Running VMs keep running unless `stop_vms_on_shutdown` is set.
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        let app = self.router.into_make_service_with_connect_info::<SocketAddr>();
        // Pages stream in several writes (the shell, then each resolved part): with Nagle's algorithm a
        // write waits for the peer's delayed ACK of the previous one, about 40 ms per page.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::warn!(error = %err, "cannot set TCP_NODELAY on a connection");
            }
        });
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(StartupError::Serve);
        if self.stop_vms_on_shutdown {
            tracing::info!("stopping every VM (stop_vms_on_shutdown)");
            self.service.stop_all_vms().await;
        }
        served
    }
}

fn routes(state: AppState, settings: &Settings, sessions: SessionManagerLayer<SqliteStore>) -> Router {
    let portal: Arc<dyn Portal> = Arc::new(state.service.clone());
    let context = move || {
        provide_context(portal.clone());
        // The nonce the security headers name, for Leptos' inline scripts (after leptos_axum's own).
        if let Some(CspNonce(nonce)) =
            use_context::<http::request::Parts>().and_then(|p| p.extensions.get::<CspNonce>().cloned())
        {
            provide_context(Nonce::from_value(nonce));
        }
    };
    let options = state.leptos_options.clone();
    let body_limits = BodyLimits {
        default: MAX_BODY_BYTES,
        // The files' total is checked exactly by the upload handler; this also covers the form's framing.
        upload: state.service.max_upload_bytes().saturating_add(1024 * 1024),
    };
    let proxy_policy = ProxyPolicy {
        header: settings
            .client_ip_header
            .as_deref()
            .and_then(|h| http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok()),
        trusted: settings.trusted_proxies.clone().into(),
    };
    let origin_policy = OriginPolicy {
        public_origin: settings.public_origin.clone(),
    };
    Router::new()
        .route("/healthz", get(health::healthz))
        .nest("/api/v1", api::router())
        .merge(crate::console::router(origin_policy.clone()))
        .leptos_routes_with_context(&state, generate_route_list(App), context.clone(), move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(context, shell))
        .layer(middleware::from_fn_with_state(origin_policy, csrf::verify_origin))
        // One session and user lookup per request, however many server functions a page renders.
        .layer(middleware::from_fn(request_caller::provide))
        .layer(sessions)
        .layer(middleware::from_fn(server_fn_errors::status_from_error))
        // Limits are `body_limit`'s, per path and while streaming; axum's own would cap uploads too.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(body_limits, body_limit::limit_body))
        .layer(middleware::from_fn_with_state(proxy_policy, client_addr::client_addr))
        .layer(middleware::from_fn_with_state(
            HeaderPolicy {
                https: settings.secure_cookies,
            },
            security_headers::security_headers,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
    tracing::info!("shutting down");
}
