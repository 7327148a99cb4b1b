//! The command line's administration commands: `client add`, `user add`,
//! `launch` and `keys rotate`. They print JSON, so scripts can use them.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use fhirledger_postgres::cluster::{ClusterConfig, PrivateCluster};
use fhirledger_postgres::{PgStore, PoolConfig};

use chrono::{DateTime, Utc};
use fhirledger_service::audit_export::{self, ExportFilter};

use crate::config::ServerConfig;
use fhirledger_auth::accounts::{create_launch, create_user, register_client, NewClient, NewUser};

/// Which database an admin command works on.
#[derive(Debug, Clone, Args)]
pub struct AdminDatabase {
    /// The database of a `serve` deployment.
    #[arg(long, env = "FHIRLEDGER_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Otherwise the private cluster of `fhirledger dev` in this directory
    /// (used while `dev` runs, or started for the command).
    #[arg(long, env = "FHIRLEDGER_DATA_DIR", default_value = ".fhirledger")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a SMART client; prints {"client_id", "client_secret"?}.
    Add {
        #[arg(long)]
        name: String,
        /// public, confidential, asymmetric or backend.
        #[arg(long)]
        kind: String,
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A file holding the client's public JWK Set.
        #[arg(long, conflicts_with = "jwks_uri")]
        jwks_file: Option<PathBuf>,
        /// Where the client publishes its JWK Set.
        #[arg(long)]
        jwks_uri: Option<String>,
        /// The most the client may be granted (space-separated scopes).
        #[arg(long)]
        scope: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account; prints its id and invitation.
    Add {
        #[arg(long)]
        role: String,
        #[arg(long)]
        org: Option<String>,
        /// TYPE/ID of the person's FHIR identity (fhirUser).
        #[arg(long)]
        fhir_user: Option<String>,
        #[arg(long)]
        email: String,
        /// A local password (development sign-in).
        #[arg(long)]
        password: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Write the selected AuditEvents to stdout as NDJSON, oldest first,
    /// exactly as stored, with a progress bar on stderr.
    Export {
        /// Events recorded at or after this instant (RFC 3339, or a date: its midnight UTC).
        #[arg(long, value_parser = parse_instant)]
        since: DateTime<Utc>,
        /// Events recorded before this instant (default: all up to now).
        #[arg(long, value_parser = parse_instant)]
        until: Option<DateTime<Utc>>,
        /// Only events about this patient (Patient id).
        #[arg(long)]
        patient: Option<String>,
        /// Only what this hospital's compliance officers see (Organization id).
        #[arg(long = "org")]
        organization: Option<String>,
    },
    /// Check the audit trail against its Merkle log and the chain: every
    /// leaf recomputed from its AuditEvent or Consent row, the tree rebuilt,
    /// every anchored checkpoint's root read back from the contract and
    /// successive checkpoints proven consistent. Exits 0 when everything
    /// holds, 1 naming the first disagreement, 2 when it cannot verify.
    Verify(crate::audit_verify::VerifyArgs),
}

/// An instant as RFC 3339 (`2026-12-01T08:00:00Z`) or a date (`2026-12-01`,
/// its midnight UTC).
fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            format!("'{text}' is neither an RFC 3339 instant (2026-12-01T08:00:00Z) nor a date (2026-12-01)")
        })
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new token signing key; the old ones stay published until their tokens expire.
    Rotate,
}

/// `audit verify`: read-only (no migrations are applied, nothing is
/// recorded), so an auditor's read-only database role suffices.
pub fn audit_verify(
    db: &AdminDatabase,
    args: &crate::audit_verify::VerifyArgs,
) -> anyhow::Result<std::process::ExitCode> {
    let mut db = db.clone();
    if args.database_url.is_some() {
        db.database_url.clone_from(&args.database_url);
    }
    open_store(&db, false, crate::audit_verify::CONNECTIONS, |store| {
        crate::audit_verify::run(store, args)
    })
}

/// Runs `work` on the chosen database (starting the dev cluster for the
/// command when it is not running).
pub(crate) fn with_store<T>(
    db: &AdminDatabase,
    work: impl FnOnce(&PgStore) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    open_store(db, true, 2, work)
}

/// [`with_store`], applying pending migrations first or not.
fn open_store<T>(
    db: &AdminDatabase,
    migrate: bool,
    connections: u32,
    work: impl FnOnce(&PgStore) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (cluster, url) = match (
        &db.database_url,
        PrivateCluster::running_database_url(&db.data_dir),
    ) {
        (Some(url), _) => (None, url.clone()),
        (None, Some(url)) => (None, url),
        (None, None) => {
            let cluster =
                PrivateCluster::start(&ClusterConfig::new(&db.data_dir)).with_context(|| {
                    format!("starting the private cluster in {}", db.data_dir.display())
                })?;
            let url = cluster.database_url();
            (Some(cluster), url)
        }
    };
    let result = PgStore::connect(
        &url,
        &PoolConfig {
            max_size: connections,
            ..PoolConfig::default()
        },
    )
    .context("connecting to the database")
    .and_then(|store| {
        if migrate {
            store.migrate().context("applying migrations")?;
        }
        work(&store)
    });
    if let Some(cluster) = cluster {
        cluster.stop().context("stopping the private cluster")?;
    }
    result
}

fn print(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn client(
    db: &AdminDatabase,
    server: &ServerConfig,
    command: ClientCommand,
) -> anyhow::Result<()> {
    let ClientCommand::Add {
        name,
        kind,
        redirect_uris,
        jwks_file,
        jwks_uri,
        scope,
    } = command;
    let jwks = match jwks_file {
        Some(path) => Some(
            serde_json::from_str(
                &std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )
            .with_context(|| format!("{} is not JSON", path.display()))?,
        ),
        None => None,
    };
    let new = NewClient {
        name,
        kind,
        redirect_uris,
        jwks,
        jwks_uri,
        scope,
    };
    with_store(db, |store| {
        let client = register_client(store, &new)?;
        administered(
            store,
            server,
            "fhirledger client add",
            client.audit_description(),
        )?;
        print(&client)
    })
}

/// An administration done by a command, in the trail before the command
/// reports it done.
fn administered(
    store: &PgStore,
    server: &ServerConfig,
    command: &str,
    what: String,
) -> anyhow::Result<()> {
    fhirledger_service::audit::record_command(
        store,
        &server.observer(),
        command,
        fhirledger_audit::SecurityEvent::Administration { what },
    )
    .context("recording the administration in the audit trail")
}

pub fn user(db: &AdminDatabase, server: &ServerConfig, command: UserCommand) -> anyhow::Result<()> {
    let UserCommand::Add {
        role,
        org,
        fhir_user,
        email,
        password,
    } = command;
    let new = NewUser {
        role,
        email,
        organization: org,
        fhir_user,
        password,
    };
    let issuer = server.auth_settings().issuer;
    with_store(db, |store| {
        let user = create_user(store, &issuer, &new)?;
        administered(
            store,
            server,
            "fhirledger user add",
            user.audit_description(),
        )?;
        print(&user)
    })
}

/// `--user` is a user id or an account's email.
pub fn launch(
    db: &AdminDatabase,
    server: &ServerConfig,
    patient: &str,
    user: &str,
) -> anyhow::Result<()> {
    with_store(db, |store| {
        let user_id = match user.parse::<uuid::Uuid>() {
            Ok(id) => id,
            Err(_) => store
                .user_by_email(user)?
                .map(|u| u.user_id)
                .with_context(|| format!("there is no account with id or email '{user}'"))?,
        };
        let launch = create_launch(store, &server.fhir_base(), patient, user_id)?;
        print(
            &serde_json::json!({ "launch": launch, "expires_in": fhirledger_auth::accounts::LAUNCH_SECONDS }),
        )
    })
}

pub fn keys(db: &AdminDatabase, server: &ServerConfig, command: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Rotate = command;
    let settings = server.auth_settings();
    with_store(db, |store| {
        let ring = fhirledger_auth::keys::KeyRing::open(
            store.clone(),
            settings.key_rotation,
            settings.longest_token(),
        )?;
        let kid = ring.rotate()?;
        print(&serde_json::json!({ "kid": kid }))
    })
}

/// `audit export`: NDJSON on stdout, progress on stderr (drawn only when
/// stderr is a terminal), a summary line at the end.
pub fn audit(
    db: &AdminDatabase,
    server: &ServerConfig,
    command: AuditCommand,
) -> anyhow::Result<()> {
    let (since, until, patient, organization) = match command {
        AuditCommand::Export {
            since,
            until,
            patient,
            organization,
        } => (since, until, patient, organization),
        AuditCommand::Verify(args) => {
            let code = audit_verify(db, &args)?;
            if code != std::process::ExitCode::SUCCESS {
                anyhow::bail!("the audit trail does not hold");
            }
            return Ok(());
        }
    };
    let filter = ExportFilter {
        since: Some(since),
        until,
        patient,
        organization,
    };
    let observer = server.observer();
    with_store(db, |store| {
        let total = audit_export::count(store, &observer, &filter)?;
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {human_pos}/{human_len} events, {per_sec}, {eta} left",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
        let written = audit_export::export(store, &observer, &filter, &mut out, &mut |n| {
            if n.is_multiple_of(1000) {
                bar.set_position(n);
            }
        })?;
        bar.finish_and_clear();
        eprintln!("exported {written} AuditEvents");
        Ok(())
    })
}
