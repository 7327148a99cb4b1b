//! The `fhirledger` command line: `serve`, `dev` and `migrate`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    /// Apply pending database migrations and exit.
    Migrate {
        #[arg(long, env = "FHIRLEDGER_DATABASE_URL")]
        database_url: String,
    },
}

fn main() -> ExitCode {
    run::init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            database_url,
            server,
        } => run::serve(&database_url, server),
        Command::Dev { dev, server } => run::dev(dev, server),
        Command::Migrate { database_url } => run::migrate(&database_url),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fhirledger: {e:#}");
            ExitCode::FAILURE
        }
    }
}
