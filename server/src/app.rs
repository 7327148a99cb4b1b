//! The actix application: shared state, routes and the HTTP server with
//! graceful shutdown (on SIGTERM/SIGINT the live pages' streams end, then
//! actix stops after in-flight requests finish).

use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use fhirledger_postgres::{AnchorSession, PgStore};
use fhirledger_service::anchoring::{AnchorSettings, AnchorWorker, ChainRoots, LocalAnchoring};
use fhirledger_service::{AuditLog, Database};

use crate::chain::{ChainAnchor, ChainRootReader};
use crate::config::ServerConfig;
use crate::routes;
use crate::state::AppState;
use fhirledger_auth::AuthServer;

/// Serves until a shutdown signal arrives.
pub async fn serve(
    store: PgStore,
    database_url: &str,
    config: ServerConfig,
    banner: Option<String>,
) -> anyhow::Result<()> {
    // The anchoring worker: on a thread of its own, never on a request's path.
    let Anchoring {
        worker: _anchoring,
        local: anchoring,
        roots: chain_roots,
    } = start_anchoring(database_url, &config)?;
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
    let _maintenance = fhirledger_auth::maintenance::start(auth.clone());
    // How long a read waits for its events' commit, and one append may run.
    let audit_timeout = std::time::Duration::from_secs(config.audit_timeout_seconds.max(1));
    let audit_log = AuditLog::start(
        config.audit_writers.clamp(1, 16),
        AUDIT_MAX_BATCH,
        std::time::Duration::from_micros(config.audit_gather_micros),
        audit_timeout,
        || db.store().audit_appender(audit_timeout),
    )
    .context("starting the audit writers")?;
    let sequencer = fhirledger_service::ledger::start_sequencer(
        db.clone(),
        fhirledger_service::ledger::SEQUENCE_EVERY,
    )
    .context("starting the Merkle log's sequencer")?;
    // News of the log for the portal's live pages (idle while nobody listens).
    let live = Arc::new(
        fhirledger_service::live::LiveFeed::start(
            db.clone(),
            fhirledger_service::live::FOLLOW_EVERY,
        )
        .context("starting the live feed")?,
    );
    let audit_writers = audit_log.writers();
    let state = web::Data::new(AppState {
        auth,
        audit_log,
        sequencer: sequencer.health(),
        observer: config.observer(),
        trusted_proxies: config.trusted_proxies.clone(),
        anchoring,
        db,
        fhir_base: config.fhir_base(),
        max_body_bytes: config.max_body_bytes,
        policy: config.policy(),
        capability: routes::build_capabilities(&config.fhir_base(), &config.auth_settings().issuer),
    });
    let auth_server = state.auth.clone();
    let https = config.fhir_base().starts_with("https://");
    let portal = web::Data::new(fhirledger_portal::PortalContext {
        anchoring: state.anchoring,
        max_upload_bytes: config.max_upload_bytes,
        live: Some(live.clone()),
        chain: chain_roots,
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::Data::from(auth_server.clone()))
            .app_data(portal.clone())
            .wrap(actix_web::middleware::from_fn(
                crate::http::authenticate::authenticate,
            ))
            .wrap(crate::http::security_headers::defaults(https))
            .configure(crate::http::landing::configure)
            .configure(crate::http::health::configure)
            .configure(fhirledger_auth::routes::configure)
            .configure(fhirledger_portal::configure)
            .configure(routes::configure)
    })
    .shutdown_timeout(config.shutdown_seconds)
    // Signals are ours (below): live pages' streams end first.
    .disable_signals()
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
    let running = server.run();
    let handle = running.handle();
    let stopping = Arc::new(std::sync::OnceLock::<std::time::Instant>::new());
    let stop_started = stopping.clone();
    tokio::spawn(async move {
        match stop_signal().await {
            Ok(signal) => tracing::info!(signal, "stopping: finishing the requests in flight"),
            Err(e) => {
                // The signals keep their default action (the process ends
                // at once); it serves on.
                tracing::error!(error = %e, "cannot listen for stop signals: a signal will end the server without a graceful stop");
                return;
            }
        }
        let _ = stop_started.set(std::time::Instant::now());
        // Open live pages' streams would otherwise hold the graceful stop
        // until its timeout: they end now (a page reconnects elsewhere).
        live.close();
        handle.stop(true).await;
    });
    running.await.context("running the HTTP server")?;
    // The requests are done (or were cut at the deadline) and the workers
    // dropped their state, so the audit queue is closed: what it still
    // holds is committed within what is left of the stop's time.
    let budget = std::time::Duration::from_secs(config.shutdown_seconds);
    let left = stopping
        .get()
        .map(|started| budget.saturating_sub(started.elapsed()))
        .unwrap_or(budget);
    if audit_writers.finish(left) {
        tracing::info!("the audit writers committed what was queued");
    } else {
        tracing::warn!("the audit writers did not finish in time; requests still waiting for them got no answer");
    }
    drop(sequencer);
    tracing::info!("fhirledger stopped");
    Ok(())
}

/// The first of SIGTERM (an orchestrator, `kill`) and SIGINT (Ctrl-C).
async fn stop_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}

/// What a process anchoring its log runs and tells the rest of the server.
#[derive(Default)]
struct Anchoring {
    /// The worker (stops when dropped).
    worker: Option<AnchorWorker>,
    /// The chain and contract, for `$ledger-status` and proofs.
    local: Option<LocalAnchoring>,
    /// The contract read without a key, for the portal's proof pages.
    roots: Option<Arc<dyn ChainRoots>>,
}

/// Starts the anchoring worker when the chain is configured: every setting
/// or none (a partial configuration is an error, not a silent standby).
fn start_anchoring(database_url: &str, config: &ServerConfig) -> anyhow::Result<Anchoring> {
    let chain = &config.chain;
    if !chain.any_set() {
        tracing::info!("anchoring is not configured (FHIRLEDGER_CHAIN_RPC_URL, FHIRLEDGER_CHAIN_ID, FHIRLEDGER_ANCHOR_CONTRACT, FHIRLEDGER_CHAIN_KEY_FILE): the Merkle log is not anchored");
        return Ok(Anchoring::default());
    }
    let client_config = chain
        .client_config()
        .context("configuring the anchoring worker")?;
    let local = LocalAnchoring {
        chain_id: client_config.chain_id,
        contract: client_config.contract.0,
    };
    let roots: Arc<dyn ChainRoots> = Arc::new(ChainRootReader::new(&client_config));
    let worker = AnchorWorker::start(
        ChainAnchor::new(client_config),
        AnchorSession::new(database_url),
        AnchorSettings {
            interval: chain.anchor_interval,
            max_leaves: chain.anchor_max_leaves.max(1),
        },
    )
    .context("starting the anchoring worker")?;
    Ok(Anchoring {
        worker: Some(worker),
        local: Some(local),
        roots: Some(roots),
    })
}

/// The most events one commit of reads' AuditEvents carries.
const AUDIT_MAX_BATCH: usize = 512;
