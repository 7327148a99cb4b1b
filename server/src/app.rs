//! The actix application: shared state, routes and the HTTP server with
//! graceful shutdown (actix stops on SIGTERM/SIGINT after in-flight
//! requests finish).

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use fhirledger_postgres::PgStore;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::auth::AuthServer;
use crate::config::ServerConfig;
use crate::http::error::ApiError;
use crate::routes;

/// What every handler can reach.
pub struct AppState {
    pub store: PgStore,
    /// `{public base}/fhir`, used for every absolute URL we emit.
    pub fhir_base: String,
    pub max_body_bytes: u64,
    /// The CapabilityStatement, built once from what the server implements.
    pub capability: serde_json::Value,
    /// One permit per pooled connection. Requests queue here in FIFO order
    /// instead of piling blocking threads onto the pool, whose wake-ups are
    /// not fair: that kept throughput but gave some reads second-long tails.
    pub db_slots: Semaphore,
    /// Reads additionally queue here. Writes mostly wait for their commit to
    /// reach the disk and gain from many connections (group commit); reads
    /// only need CPU, and on two cores sixteen of them at once made some wait
    /// for hundreds of milliseconds.
    pub read_slots: Semaphore,
    /// The SMART authorization server, whose tokens guard every FHIR request.
    pub auth: std::sync::Arc<AuthServer>,
}

impl AppState {
    /// Runs blocking database work once a connection slot is free.
    pub async fn db<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let _slot = self.db_slot().await?;
        web::block(work).await?
    }

    /// Runs a blocking read once a read slot and a connection slot are free.
    pub async fn db_read<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let _read = permit(&self.read_slots).await?;
        self.db(work).await
    }

    /// Waits for a connection slot, for work that is started by other means.
    pub async fn db_slot(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        permit(&self.db_slots).await
    }
}

/// A permit of `slots`; the semaphore only closes when the server stops.
async fn permit(slots: &Semaphore) -> Result<SemaphorePermit<'_>, ApiError> {
    slots
        .acquire()
        .await
        .map_err(|_| ApiError::internal("the server is shutting down"))
}

/// Serves until a shutdown signal arrives.
pub async fn serve(
    store: PgStore,
    config: ServerConfig,
    banner: Option<String>,
) -> anyhow::Result<()> {
    let auth = std::sync::Arc::new(
        AuthServer::open(
            store.clone(),
            config.auth_settings(),
            config.auth.oidc_providers.as_deref(),
        )
        .context("starting the authorization server")?,
    );
    let _maintenance = crate::auth::maintenance::start(auth.clone());
    let state = web::Data::new(AppState {
        auth,
        store,
        fhir_base: config.fhir_base(),
        max_body_bytes: config.max_body_bytes,
        capability: routes::build_capabilities(&config.fhir_base(), &config.auth_settings().issuer),
        db_slots: Semaphore::new(config.db_pool_size as usize),
        read_slots: Semaphore::new(config.read_concurrency()),
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(actix_web::middleware::from_fn(
                crate::http::authenticate::authenticate,
            ))
            .configure(crate::http::landing::configure)
            .configure(crate::auth::routes::configure)
            .configure(routes::configure)
    })
    .shutdown_timeout(30)
    .bind(&config.bind)
    .with_context(|| format!("binding {}", config.bind))?;
    if let Some(workers) = config.workers {
        server = server.workers(workers);
    }
    let addrs = server.addrs();
    tracing::info!(?addrs, fhir_base = %config.fhir_base(), "fhirledger is listening");
    if let Some(banner) = banner {
        println!("{banner}");
        println!("Try: curl {}/metadata", config.fhir_base());
    }
    server.run().await.context("running the HTTP server")?;
    tracing::info!("fhirledger stopped");
    Ok(())
}
