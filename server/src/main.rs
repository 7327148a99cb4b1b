//! The `fhirledger` command line: `serve`, `dev`, `migrate`, `reindex`, `explain`, and the
//! administration commands `client add`, `user add`, `launch`, `audit export`,
//! `audit verify`, `keys rotate` and `chain deploy|add-writer|remove-writer|status`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fhirledger::admin_cli::{
    self, AdminDatabase, AuditCommand, ClientCommand, KeysCommand, UserCommand,
};
use fhirledger::chain_cli::{self, ChainCommand};
use fhirledger::config::{DevConfig, ServerConfig};
use fhirledger::run;

/// mimalloc instead of glibc's allocator: parsing and rendering resources
/// allocate many small objects, and glibc's malloc/free showed up as ~9% of
/// the server's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fhirledger",
    version,
    about = "A FHIR R4 server for hospital groups sharing medical documents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server against FHIRLEDGER_DATABASE_URL (production).
    Serve {
        #[arg(long, env = "FHIRLEDGER_DATABASE_URL")]
        database_url: String,
        #[command(flatten)]
        server: ServerConfig,
    },
    /// Run the server with a private PostgreSQL cluster under a data directory.
    Dev {
        #[command(flatten)]
        dev: DevConfig,
        #[command(flatten)]
        server: ServerConfig,
    },
    /// Rebuild the search index of every live resource (start-up does this by itself when
    /// the indexing rules changed).
    Reindex {
        #[arg(long, env = "FHIRLEDGER_DATABASE_URL")]
        database_url: String,
        #[command(flatten)]
        server: ServerConfig,
    },
    /// Print the PostgreSQL plan (EXPLAIN ANALYZE) of a search such as
    /// 'DocumentReference?patient=123&_sort=-date'.
    Explain {
        #[arg(long, env = "FHIRLEDGER_DATABASE_URL")]
        database_url: String,
        #[command(flatten)]
        server: ServerConfig,
        /// `{type}?{query}` as in a search URL after the FHIR base.
        search: String,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[arg(long, env = "FHIRLEDGER_DATABASE_URL")]
        database_url: String,
    },
    /// Register SMART clients.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
        #[command(flatten)]
        db: AdminDatabase,
        #[command(flatten)]
        server: ServerConfig,
    },
    /// Create user accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[command(flatten)]
        db: AdminDatabase,
        #[command(flatten)]
        server: ServerConfig,
    },
    /// Create a single-use EHR launch value for a patient and a user; prints {"launch"}.
    Launch {
        #[arg(long)]
        patient: String,
        /// The user's id or email.
        #[arg(long)]
        user: String,
        #[command(flatten)]
        db: AdminDatabase,
        #[command(flatten)]
        server: ServerConfig,
    },
    /// Read the audit trail out of the database (`audit export`) or verify it
    /// against its Merkle log and the chain (`audit verify`).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
        #[command(flatten)]
        db: AdminDatabase,
        #[command(flatten)]
        server: ServerConfig,
    },
    /// Anchoring on chain: deploy the AuditAnchor contract, manage its
    /// writers, print the ledger's anchoring status.
    Chain {
        #[command(subcommand)]
        command: ChainCommand,
    },
    /// Manage the token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        #[command(flatten)]
        db: AdminDatabase,
        #[command(flatten)]
        server: ServerConfig,
    },
}

fn main() -> ExitCode {
    run::init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        // Exit codes of its own: 1 is a disagreement found, 2 a failure to verify.
        Command::Audit {
            command: AuditCommand::Verify(args),
            db,
            server: _,
        } => {
            return match admin_cli::audit_verify(&db, &args) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("fhirledger: audit verify could not verify: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Serve {
            database_url,
            server,
        } => run::serve(&database_url, server),
        Command::Dev { dev, server } => run::dev(dev, server),
        Command::Reindex {
            database_url,
            server,
        } => run::reindex(&database_url, server),
        Command::Explain {
            database_url,
            server,
            search,
        } => run::explain(&database_url, server, &search),
        Command::Migrate { database_url } => run::migrate(&database_url),
        Command::Client {
            command,
            db,
            server,
        } => admin_cli::client(&db, &server, command),
        Command::User {
            command,
            db,
            server,
        } => admin_cli::user(&db, &server, command),
        Command::Launch {
            patient,
            user,
            db,
            server,
        } => admin_cli::launch(&db, &server, &patient, &user),
        Command::Audit {
            command,
            db,
            server,
        } => admin_cli::audit(&db, &server, command),
        Command::Chain { command } => chain_cli::chain(command),
        Command::Keys {
            command,
            db,
            server,
        } => admin_cli::keys(&db, &server, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fhirledger: {e:#}");
            ExitCode::FAILURE
        }
    }
}
