//! What each CLI command does: wiring configuration, storage and the server.

use anyhow::Context;
use fhir_profiles::search::registry::index_generation;
use fhir_profiles::search::{extract, IndexRows};
use fhirledger_postgres::cluster::{ClusterConfig, PrivateCluster};
use fhirledger_postgres::{PgStore, PoolConfig};
use tracing_subscriber::EnvFilter;

use crate::app;
use crate::config::{DevConfig, ServerConfig};

/// Logs go to stderr, filtered by `FHIRLEDGER_LOG` (default `info`).
pub fn init_tracing() {
    let filter =
        EnvFilter::try_from_env("FHIRLEDGER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn open_store(database_url: &str, server: &ServerConfig) -> anyhow::Result<PgStore> {
    let store = PgStore::connect(
        database_url,
        &PoolConfig {
            max_size: server.db_pool_size,
            ..PoolConfig::default()
        },
    )
    .context("connecting to the database")?;
    // Replicas starting together take turns: the first migrates (and
    // rebuilds, rewrites) while the others wait, then find nothing to do.
    let startup = store
        .startup_lock()
        .context("taking the database's start-up lock")?;
    let applied = store.migrate().context("applying migrations")?;
    for name in applied {
        tracing::info!(migration = %name, "applied migration");
    }
    crate::index_check::ensure_current(&store, &server.fhir_base(), rebuild_index)?;
    // After the index: the rules find a Consent's documents through it.
    let rewritten = fhirledger_service::ensure_consent_rules_current(&store, &server.fhir_base())
        .map_err(|e| anyhow::anyhow!("rewriting the Consent rules: {e}"))?;
    if rewritten > 0 {
        tracing::info!(
            rewritten,
            "the Consent rules were written by another version; rewritten"
        );
    }
    drop(startup);
    Ok(store)
}

/// Re-extracts the index rows of every live resource and records the generation.
fn rebuild_index(store: &PgStore, fhir_base: &str) -> anyhow::Result<u64> {
    let started = std::time::Instant::now();
    let rebuilt = store
        .reindex(
            &index_generation(),
            |_, content| match serde_json::from_str(content) {
                Ok(resource) => extract(&resource, fhir_base),
                Err(e) => {
                    tracing::error!(error = %e, "a stored resource is not JSON; it is not indexed");
                    IndexRows::default()
                }
            },
            |done| {
                if done % 10_000 == 0 {
                    tracing::info!(done, "rebuilding the search index");
                }
            },
        )
        .context("rebuilding the search index")?;
    tracing::info!(
        rebuilt,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "search index rebuilt"
    );
    Ok(rebuilt)
}

/// `fhirledger reindex`: rebuild the search index now.
pub fn reindex(database_url: &str, server: ServerConfig) -> anyhow::Result<()> {
    let store = open_store(database_url, &server)?;
    let rebuilt = rebuild_index(&store, &server.fhir_base())?;
    println!("rebuilt the search index of {rebuilt} resources");
    Ok(())
}

/// `fhirledger explain`: the PostgreSQL plan of a search, run for real.
pub fn explain(database_url: &str, server: ServerConfig, search: &str) -> anyhow::Result<()> {
    let store = open_store(database_url, &server)?;
    let (resource_type, query) = search.split_once('?').unwrap_or((search, ""));
    let resource_type = resource_type.trim_start_matches('/');
    let params = crate::http::negotiate::form_pairs(query);
    let request =
        fhirledger_service::search::parse(&server.fhir_base(), resource_type, &params, false)
            .map_err(|e| {
                anyhow::anyhow!("{}", fhir_profiles::outcome::operation_outcome(&e.issues))
            })?;
    println!("{}", store.explain_search(&request)?);
    Ok(())
}

/// `fhirledger serve`: production, against an existing database.
pub fn serve(database_url: &str, server: ServerConfig) -> anyhow::Result<()> {
    let store = open_store(database_url, &server)?;
    actix_web::rt::System::new().block_on(app::serve(store, database_url, server, None))
}

/// `fhirledger dev`: a private cluster (unless a database URL is given), the
/// server on loopback, and the cluster stopped again on Ctrl-C or SIGTERM.
pub fn dev(dev: DevConfig, mut server: ServerConfig) -> anyhow::Result<()> {
    server.auth.local_login = true;
    let (cluster, url) = match dev.database_url.clone() {
        Some(url) => (None, url),
        None => {
            let cluster =
                PrivateCluster::start(&ClusterConfig::new(&dev.data_dir)).with_context(|| {
                    format!(
                        "starting the private PostgreSQL cluster in {}",
                        dev.data_dir.display()
                    )
                })?;
            let url = cluster.database_url();
            (Some(cluster), url)
        }
    };
    let banner = format!(
        "fhirledger dev: FHIR base {} (data in {}{})",
        server.fhir_base(),
        dev.data_dir.display(),
        cluster
            .as_ref()
            .map(|c| format!(", PostgreSQL on 127.0.0.1:{}", c.port()))
            .unwrap_or_default()
    );
    // Anvil (when installed): stopped when `chain` is dropped, after the server.
    let chain = match crate::dev_chain::start(&dev.data_dir, &mut server) {
        Ok(chain) => chain,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "dev: the chain could not be started; running without it");
            None
        }
    };
    let banner = match &chain {
        Some(chain) => format!("{banner}\n{}", crate::dev_chain::banner(chain, &url)),
        None => {
            format!("{banner}\nChain: none (anvil not available); the Merkle log is not anchored")
        }
    };
    let result = open_store(&url, &server).and_then(|store| {
        let issuer = server.auth_settings().issuer;
        crate::demo::seed(&store, &server.fhir_base(), &issuer)
            .context("creating the demo data")?;
        let portal = format!("{}/portal", server.public_base());
        let banner = format!("{banner}\n{}", crate::demo::banner(&issuer, &portal));
        actix_web::rt::System::new().block_on(app::serve(store, &url, server, Some(banner)))
    });
    if chain.is_some() {
        tracing::info!("stopping anvil");
    }
    drop(chain);
    if let Some(cluster) = cluster {
        tracing::info!("stopping the private PostgreSQL cluster");
        cluster
            .stop()
            .context("stopping the private PostgreSQL cluster")?;
    }
    result
}

/// `fhirledger migrate`.
pub fn migrate(database_url: &str) -> anyhow::Result<()> {
    let store = PgStore::connect(database_url, &PoolConfig::default())
        .context("connecting to the database")?;
    let _startup = store
        .startup_lock()
        .context("taking the database's start-up lock")?;
    let applied = store.migrate().context("applying migrations")?;
    if applied.is_empty() {
        println!("database is up to date");
    }
    for name in applied {
        println!("applied {name}");
    }
    Ok(())
}
