//! The actix application: shared state, routes and the HTTP server with
//! graceful shutdown (actix stops on SIGTERM/SIGINT after in-flight
//! requests finish).

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use fhirledger_postgres::PgStore;

use crate::config::ServerConfig;
use crate::routes;

/// What every handler can reach.
pub struct AppState {
    pub store: PgStore,
    /// `{public base}/fhir`, used for every absolute URL we emit.
    pub fhir_base: String,
    pub max_body_bytes: u64,
    /// The CapabilityStatement, built once from what the server implements.
    pub capability: serde_json::Value,
}

/// Serves until a shutdown signal arrives.
pub async fn serve(
    store: PgStore,
    config: ServerConfig,
    banner: Option<String>,
) -> anyhow::Result<()> {
    let state = web::Data::new(AppState {
        store,
        fhir_base: config.fhir_base(),
        max_body_bytes: config.max_body_bytes,
        capability: routes::build_capabilities(&config.fhir_base()),
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
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
