//! The actix application: shared state, routes and the HTTP server with
//! graceful shutdown (actix stops on SIGTERM/SIGINT after in-flight
//! requests finish).

use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use fhirledger_postgres::PgStore;
use fhirledger_service::Database;

use crate::auth::AuthServer;
use crate::config::ServerConfig;
use crate::routes;

/// What every handler can reach.
pub struct AppState {
    /// The store behind its fair queues: every blocking call goes through it.
    pub db: Arc<Database>,
    /// `{public base}/fhir`, used for every absolute URL we emit.
    pub fhir_base: String,
    pub max_body_bytes: u64,
    /// The CapabilityStatement, built once from what the server implements.
    pub capability: serde_json::Value,
    /// The SMART authorization server, whose tokens guard every FHIR request.
    pub auth: Arc<AuthServer>,
}

/// Serves until a shutdown signal arrives.
pub async fn serve(
    store: PgStore,
    config: ServerConfig,
    banner: Option<String>,
) -> anyhow::Result<()> {
    let db = Arc::new(Database::new(
        store,
        config.db_pool_size as usize,
        config.read_concurrency(),
    ));
    let auth = Arc::new(
        AuthServer::open(
            db.clone(),
            config.auth_settings(),
            config.auth.oidc_providers.as_deref(),
        )
        .context("starting the authorization server")?,
    );
    let _maintenance = crate::auth::maintenance::start(auth.clone());
    let state = web::Data::new(AppState {
        auth,
        db,
        fhir_base: config.fhir_base(),
        max_body_bytes: config.max_body_bytes,
        capability: routes::build_capabilities(&config.fhir_base(), &config.auth_settings().issuer),
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(actix_web::middleware::from_fn(
                crate::http::authenticate::authenticate,
            ))
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
