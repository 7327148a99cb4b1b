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
    /// Largest file uploaded through the portal, in bytes (streamed into the
    /// database, never held in memory).
    #[arg(long, env = "FHIRLEDGER_MAX_UPLOAD_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_upload_bytes: u64,
    /// Connections in the database pool.
    #[arg(long, env = "FHIRLEDGER_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,
    /// Reads allowed in the database at once (default: twice the CPU cores).
    /// Reads are CPU-bound: more of them at once only lengthens the tail.
    #[arg(long, env = "FHIRLEDGER_DB_READ_CONCURRENCY")]
    pub db_read_concurrency: Option<usize>,
    /// Threads committing reads' AuditEvents, each on a connection of its
    /// own: each commits everything queued when it starts (group commit). One makes the largest, fewest commits:
    /// on two cores it served a third more audited reads than two
    /// (BENCHMARKS.md, "Audit"); more shorten the wait where commits are slow.
    #[arg(long, env = "FHIRLEDGER_AUDIT_WRITERS", default_value_t = 1)]
    pub audit_writers: usize,
    /// Microseconds a busy audit writer lets more reads' events gather
    /// before it commits: fewer, larger commits cost PostgreSQL less per
    /// event (BENCHMARKS.md, "Audit"). Only after a commit that carried
    /// several reads' events: a lightly loaded server makes no one wait.
    /// 0 turns it off.
    #[arg(long, env = "FHIRLEDGER_AUDIT_GATHER_MICROS", default_value_t = 1000)]
    pub audit_gather_micros: u64,
    /// Seconds a read waits for its AuditEvents to commit before it is
    /// refused with 503 and no data; also how long one append of the audit
    /// writer may run. A stalled trail (a lock, a full disk) then fails
    /// requests closed instead of holding them without end.
    #[arg(long, env = "FHIRLEDGER_AUDIT_TIMEOUT_SECONDS", default_value_t = 10)]
    pub audit_timeout_seconds: u64,
    /// HTTP worker threads (defaults to the number of CPU cores).
    #[arg(long, env = "FHIRLEDGER_WORKERS")]
    pub workers: Option<usize>,
    /// Load balancers and proxies (comma-separated IP addresses or CIDR
    /// ranges) whose `X-Forwarded-For` names the client whose address
    /// AuditEvents record. Empty: the header is ignored, so no client can
    /// name an address of its choice.
    #[arg(long, env = "FHIRLEDGER_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: crate::http::client_address::TrustedProxies,
    /// Seconds a stop (SIGTERM, Ctrl-C) may take: no new connection is
    /// accepted, requests in flight and the audit commits they wait for
    /// finish, then the process exits 0. Requests still running at the end
    /// are cut (their clients get no answer, so nothing unaudited leaves).
    /// Keep it below the orchestrator's grace period (Kubernetes: 30 s).
    #[arg(long, env = "FHIRLEDGER_SHUTDOWN_SECONDS", default_value_t = 25)]
    pub shutdown_seconds: u64,
    /// What a patient's silence means: `deny` (opt-in: no doctor reads a
    /// document no Consent permits them) or `permit` (opt-out: doctors of the
    /// patient's own hospital read unless a Consent denies).
    #[arg(long, env = "FHIRLEDGER_CONSENT_DEFAULT", default_value = "deny")]
    pub consent_default: fhirledger_access::ConsentDefault,
    /// Minutes an emergency access (`$emergency-access`) lasts.
    #[arg(
        long,
        env = "FHIRLEDGER_EMERGENCY_ACCESS_MINUTES",
        default_value_t = 60
    )]
    pub emergency_access_minutes: i64,
    #[command(flatten)]
    pub auth: AuthConfig,
    #[command(flatten)]
    pub chain: ChainSettings,
}

/// Where the Merkle log's checkpoints are anchored (the anchoring worker of
/// `serve`, and the `chain` commands). Anchoring runs when the RPC URL, the
/// chain id, the contract and the key file are all set.
#[derive(Debug, Clone, Args)]
pub struct ChainSettings {
    /// JSON-RPC endpoint of the chain node, plain HTTP (`http://127.0.0.1:8545`).
    #[arg(long = "rpc-url", env = "FHIRLEDGER_CHAIN_RPC_URL")]
    pub rpc_url: Option<String>,
    /// The chain id the node must report; every transaction is signed for it.
    #[arg(long = "chain-id", env = "FHIRLEDGER_CHAIN_ID")]
    pub chain_id: Option<u64>,
    /// The AuditAnchor contract's address (0x…).
    #[arg(long = "contract", env = "FHIRLEDGER_ANCHOR_CONTRACT")]
    pub contract: Option<String>,
    /// A file holding the writer account's private key: one 0x-prefixed hex key.
    #[arg(long = "key-file", env = "FHIRLEDGER_CHAIN_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Blocks that must follow a checkpoint's block before it is recorded
    /// (0 for QBFT's immediate finality).
    #[arg(long, env = "FHIRLEDGER_CHAIN_CONFIRMATIONS", default_value_t = 0)]
    pub confirmations: u64,
    /// Gas price in wei of legacy transactions (0 on free-gas Besu networks).
    #[arg(long, env = "FHIRLEDGER_CHAIN_GAS_PRICE", default_value_t = 0)]
    pub gas_price: u128,
    /// EIP-1559 transactions with this max fee per gas (wei) instead of legacy ones.
    #[arg(long, env = "FHIRLEDGER_CHAIN_MAX_FEE")]
    pub max_fee: Option<u128>,
    /// EIP-1559 max priority fee per gas (wei); with FHIRLEDGER_CHAIN_MAX_FEE.
    #[arg(long, env = "FHIRLEDGER_CHAIN_MAX_PRIORITY_FEE", default_value_t = 0)]
    pub max_priority_fee: u128,
    /// Longest wait for one JSON-RPC answer, in seconds.
    #[arg(long, env = "FHIRLEDGER_CHAIN_RPC_TIMEOUT", default_value_t = 10)]
    pub rpc_timeout_seconds: u64,
    /// Longest time between the log growing and its checkpoint: `2s`, `500ms`, or seconds.
    #[arg(long, env = "FHIRLEDGER_ANCHOR_INTERVAL", default_value = "2s", value_parser = parse_interval)]
    pub anchor_interval: std::time::Duration,
    /// Anchor at once when this many leaves wait, without waiting for the interval.
    #[arg(long, env = "FHIRLEDGER_ANCHOR_MAX_LEAVES", default_value_t = 1000)]
    pub anchor_max_leaves: u64,
}

/// `2s`, `1500ms`, `0.5` (seconds).
pub fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a duration such as 2s or 500ms"))?;
    if !value.is_finite() || value <= 0.0 || value * scale > 86_400.0 {
        return Err(format!("'{text}' must be above 0 and at most a day"));
    }
    Ok(std::time::Duration::from_secs_f64(value * scale))
}

/// Settings of the SMART authorization server.
#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    /// Lifetime in seconds of access tokens issued to apps acting for a user.
    #[arg(long, env = "FHIRLEDGER_ACCESS_TOKEN_SECONDS", default_value_t = 3600)]
    pub access_token_seconds: i64,
    /// Lifetime in seconds of access tokens issued to backend clients.
    #[arg(long, env = "FHIRLEDGER_BACKEND_TOKEN_SECONDS", default_value_t = 300)]
    pub backend_token_seconds: i64,
    /// Lifetime in days of refresh tokens granted with `offline_access`.
    #[arg(long, env = "FHIRLEDGER_OFFLINE_DAYS", default_value_t = 90)]
    pub offline_days: i64,
    /// Lifetime in seconds of a browser sign-in (and of `online_access` refresh tokens).
    #[arg(long, env = "FHIRLEDGER_SESSION_SECONDS", default_value_t = 8 * 3600)]
    pub session_seconds: i64,
    /// Days between automatic rotations of the token signing key.
    #[arg(long, env = "FHIRLEDGER_KEY_ROTATION_DAYS", default_value_t = 30)]
    pub key_rotation_days: i64,
    /// External OpenID Connect providers people sign in with, as a JSON array of
    /// `{"name", "label", "issuer", "client_id", "client_secret"}`.
    #[arg(long, env = "FHIRLEDGER_OIDC_PROVIDERS")]
    pub oidc_providers: Option<String>,
    /// Failed password sign-ins of one account within
    /// FHIRLEDGER_SIGN_IN_LOCK_MINUTES that lock it for as long.
    #[arg(
        long,
        env = "FHIRLEDGER_SIGN_IN_FAILURES_PER_ACCOUNT",
        default_value_t = 5
    )]
    pub sign_in_failures_per_account: u32,
    /// Failed password sign-ins from one client address (any accounts)
    /// within FHIRLEDGER_SIGN_IN_LOCK_MINUTES that lock the address.
    #[arg(
        long,
        env = "FHIRLEDGER_SIGN_IN_FAILURES_PER_ADDRESS",
        default_value_t = 50
    )]
    pub sign_in_failures_per_address: u32,
    /// Minutes failed sign-ins are counted in, and a lock lasts.
    #[arg(long, env = "FHIRLEDGER_SIGN_IN_LOCK_MINUTES", default_value_t = 15)]
    pub sign_in_lock_minutes: i64,
    /// Token requests one client may make within a minute before it is
    /// refused with 429 until the minute ends (0: no limit). A public
    /// client is counted per client address.
    #[arg(
        long,
        env = "FHIRLEDGER_TOKEN_REQUESTS_PER_CLIENT_PER_MINUTE",
        default_value_t = 600
    )]
    pub token_requests_per_client_per_minute: u32,
    /// Allow local password accounts to sign in (always on under `dev`).
    #[arg(long, env = "FHIRLEDGER_LOCAL_LOGIN", default_value_t = false)]
    pub local_login: bool,
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

    /// This server as its AuditEvents name it: its FHIR base and host.
    pub fn observer(&self) -> fhirledger_audit::Observer {
        let fhir_base = self.fhir_base();
        let host = fhir_base
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or(&fhir_base)
            .to_string();
        fhirledger_audit::Observer { fhir_base, host }
    }

    /// The access policy of this deployment.
    pub fn policy(&self) -> fhirledger_access::Policy {
        fhirledger_access::Policy {
            consent_default: self.consent_default,
            emergency_access_minutes: self.emergency_access_minutes.clamp(1, 7 * 24 * 60),
        }
    }

    /// The authorization server's settings.
    pub fn auth_settings(&self) -> fhirledger_auth::AuthSettings {
        use chrono::Duration;
        let a = &self.auth;
        fhirledger_auth::AuthSettings {
            issuer: format!("{}/auth", self.public_base()),
            fhir_base: self.fhir_base(),
            public_base: self.public_base(),
            access_token_lifetime: Duration::seconds(a.access_token_seconds.max(1)),
            backend_token_lifetime: Duration::seconds(a.backend_token_seconds.max(1)),
            offline_lifetime: Duration::days(a.offline_days.max(1)),
            session_lifetime: Duration::seconds(a.session_seconds.max(60)),
            key_rotation: Duration::days(a.key_rotation_days.max(1)),
            local_login: a.local_login,
            max_body_bytes: self.max_body_bytes,
            policy: self.policy(),
            sign_in_limits: fhirledger_auth::SignInLimits {
                per_account: a.sign_in_failures_per_account.clamp(1, 1_000_000) as i32,
                per_address: a.sign_in_failures_per_address.clamp(1, 1_000_000) as i32,
                window: Duration::minutes(a.sign_in_lock_minutes.max(1)),
            },
            token_requests_per_client_per_minute: match a.token_requests_per_client_per_minute {
                0 => None,
                n => Some(n.min(1_000_000) as i32),
            },
        }
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
