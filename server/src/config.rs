//! Configuration from `FHIRLEDGER_*` environment variables (see the README).

use std::path::PathBuf;

use clap::Args;

/// Settings shared by `serve` and `dev`.
#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// Address the HTTP server listens on.
    #[arg(long, env = "FHIRLEDGER_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Public base URL; the FHIR base is this plus `/fhir`. Defaults to
    /// `http://{bind}`.
    #[arg(long, env = "FHIRLEDGER_BASE_URL")]
    pub base_url: Option<String>,
    /// Largest accepted request body in bytes (resources and Binary uploads).
    #[arg(long, env = "FHIRLEDGER_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: u64,
    /// Connections in the database pool.
    #[arg(long, env = "FHIRLEDGER_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,
    /// Reads allowed in the database at once (default: twice the CPU cores).
    /// Reads are CPU-bound: more of them at once only lengthens the tail.
    #[arg(long, env = "FHIRLEDGER_DB_READ_CONCURRENCY")]
    pub db_read_concurrency: Option<usize>,
    /// HTTP worker threads (defaults to the number of CPU cores).
    #[arg(long, env = "FHIRLEDGER_WORKERS")]
    pub workers: Option<usize>,
}

impl ServerConfig {
    /// The public base URL without a trailing slash.
    pub fn public_base(&self) -> String {
        match &self.base_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.bind),
        }
    }

    /// How many reads may use the database at once.
    pub fn read_concurrency(&self) -> usize {
        self.db_read_concurrency
            .unwrap_or_else(|| {
                2 * std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            })
            .clamp(1, self.db_pool_size.max(1) as usize)
    }

    /// The FHIR base URL: `{public base}/fhir`.
    pub fn fhir_base(&self) -> String {
        format!("{}/fhir", self.public_base())
    }
}

/// Where `fhirledger dev` keeps its private PostgreSQL cluster.
#[derive(Debug, Clone, Args)]
pub struct DevConfig {
    /// Data directory of the private cluster (created on first run).
    #[arg(long, env = "FHIRLEDGER_DATA_DIR", default_value = ".fhirledger")]
    pub data_dir: PathBuf,
    /// Use this database instead of a private cluster.
    #[arg(long, env = "FHIRLEDGER_DATABASE_URL")]
    pub database_url: Option<String>,
}
