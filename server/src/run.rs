//! What each CLI command does: wiring configuration, storage and the server.

use anyhow::Context;
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
    let applied = store.migrate().context("applying migrations")?;
    for name in applied {
        tracing::info!(migration = %name, "applied migration");
    }
    Ok(store)
}

/// `fhirledger serve`: production, against an existing database.
pub fn serve(database_url: &str, server: ServerConfig) -> anyhow::Result<()> {
    let store = open_store(database_url, &server)?;
    actix_web::rt::System::new().block_on(app::serve(store, server, None))
}

/// `fhirledger dev`: a private cluster (unless a database URL is given), the
/// server on loopback, and the cluster stopped again on Ctrl-C or SIGTERM.
pub fn dev(dev: DevConfig, server: ServerConfig) -> anyhow::Result<()> {
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
    let result = open_store(&url, &server).and_then(|store| {
        actix_web::rt::System::new().block_on(app::serve(store, server, Some(banner)))
    });
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
    let applied = store.migrate().context("applying migrations")?;
    if applied.is_empty() {
        println!("database is up to date");
    }
    for name in applied {
        println!("applied {name}");
    }
    Ok(())
}
