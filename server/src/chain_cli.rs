//! `fhirledger chain …`: deploy the AuditAnchor contract, manage its
//! writers, and print the ledger's anchoring status.

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use fhirledger_chain::{deploy, Address, AnchorClient};
use fhirledger_service::anchoring::{LedgerStatus, LocalAnchoring};
use serde_json::json;

use crate::admin_cli::{with_store, AdminDatabase};
use crate::config::ChainSettings;

/// How long a writer change may take to be mined.
const ADMIN_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Deploy the AuditAnchor contract with the key file's account as owner
    /// and first writer; prints {"contract", "tx", "block"}.
    Deploy {
        #[command(flatten)]
        chain: ChainSettings,
    },
    /// Let ADDRESS anchor checkpoints (signed by the owner's key file);
    /// prints {"writer", "tx", "block"}.
    AddWriter {
        /// The account to allow (0x…).
        address: String,
        #[command(flatten)]
        chain: ChainSettings,
    },
    /// Stop ADDRESS from anchoring checkpoints (signed by the owner's key
    /// file); prints {"writer", "tx", "block"}.
    RemoveWriter {
        /// The account to remove (0x…).
        address: String,
        #[command(flatten)]
        chain: ChainSettings,
    },
    /// Print what `GET /fhir/$ledger-status` answers (a FHIR Parameters).
    Status {
        #[command(flatten)]
        chain: ChainSettings,
        #[command(flatten)]
        db: AdminDatabase,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs a `chain` command.
pub fn chain(command: ChainCommand) -> anyhow::Result<()> {
    match command {
        ChainCommand::Deploy { chain } => {
            let key = chain.key()?;
            let deployed = runtime()?
                .block_on(deploy(
                    chain.rpc_url()?,
                    chain.chain_id()?,
                    &key,
                    chain.fees(),
                ))
                .context("deploying the AuditAnchor contract")?;
            println!(
                "{}",
                json!({
                    "contract": deployed.contract.to_string(),
                    "tx": deployed.tx.to_string(),
                    "block": deployed.block,
                })
            );
            Ok(())
        }
        ChainCommand::AddWriter { address, chain } => change_writer(&chain, &address, true),
        ChainCommand::RemoveWriter { address, chain } => change_writer(&chain, &address, false),
        ChainCommand::Status { chain, db } => {
            let local = if chain.any_set() {
                Some(LocalAnchoring {
                    chain_id: chain.chain_id()?,
                    contract: chain.contract()?.0,
                })
            } else {
                None
            };
            let snapshot = with_store(&db, |store| Ok(store.ledger_snapshot()?))?;
            let status = LedgerStatus::from_snapshot(&snapshot, local);
            println!("{}", status.to_parameters());
            Ok(())
        }
    }
}

fn change_writer(chain: &ChainSettings, address: &str, add: bool) -> anyhow::Result<()> {
    let writer: Address = address
        .parse()
        .map_err(|e: String| anyhow::anyhow!("ADDRESS: {e}"))?;
    let config = chain.client_config()?;
    let verb = if add { "addWriter" } else { "removeWriter" };
    runtime()?.block_on(async {
        let client = AnchorClient::connect(config)
            .await
            .context("connecting to the contract")?;
        let sent = if add {
            client.add_writer(writer).await
        } else {
            client.remove_writer(writer).await
        }
        .with_context(|| format!("sending {verb}"))?;
        let receipt = client
            .wait_receipt(sent.hash, ADMIN_WAIT)
            .await
            .with_context(|| format!("waiting for {verb} ({})", sent.hash))?;
        anyhow::ensure!(receipt.status, "{verb} {} failed on chain", sent.hash);
        let is_writer = client.is_writer(writer).await?;
        anyhow::ensure!(
            is_writer == add,
            "{verb} was mined but {writer} is {}a writer",
            if is_writer { "still " } else { "not " }
        );
        println!(
            "{}",
            json!({
                "writer": writer.to_string(),
                "tx": sent.hash.to_string(),
                "block": receipt.block_number,
            })
        );
        Ok(())
    })
}
