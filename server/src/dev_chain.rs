//! The chain of `fhirledger dev`: anvil (from the npm package
//! `@foundry-rs/anvil`, as `conformance/chain` installs it, or
//! `FHIRLEDGER_ANVIL`) on a free loopback port, one block a second, chain id
//! 48879, free gas, its state kept in the data directory. On first start a
//! writer key is made (`chain-key`, mode 0600) and the AuditAnchor contract
//! deployed with it (`chain.json`); later starts reuse both. Without anvil,
//! `dev` runs without the chain (the worker is not started, and
//! `$ledger-status` says `waiting-for-chain`).
//!
//! Only this file knows it is anvil: the server talks to it like to any
//! node (standard JSON-RPC only).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use fhirledger_chain::anvil::{find_anvil, Anvil, AnvilOptions};
use fhirledger_chain::{deploy, Address, Fees, Key};
use serde_json::json;

use crate::config::ServerConfig;

/// The dev chain's id (0xBEEF).
pub const DEV_CHAIN_ID: u64 = 48879;

/// The running dev chain; anvil is stopped (SIGTERM, so that it writes its
/// state) when this is dropped.
pub struct DevChain {
    _node: Anvil,
    pub rpc_url: String,
    pub contract: Address,
}

/// Starts the dev chain and points `server`'s chain settings at it; `None`
/// (with a log line saying why) when anvil is not installed or the chain is
/// configured explicitly.
pub fn start(data_dir: &Path, server: &mut ServerConfig) -> anyhow::Result<Option<DevChain>> {
    if server.chain.any_set() {
        tracing::info!("dev: anchoring on the configured chain, no anvil started");
        return Ok(None);
    }
    // From the working directory, then from the source tree this binary was built from.
    let roots = [
        PathBuf::from("."),
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
    ];
    let Some(binary) = find_anvil(&roots) else {
        tracing::warn!("dev: anvil not found (set FHIRLEDGER_ANVIL, or run `npm ci` in conformance/chain: ./dev.sh does); running without the chain");
        return Ok(None);
    };
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let options = AnvilOptions {
        block_time: Some(1),
        state: Some(data_dir.join("anvil-state.json")),
        extra: [
            "--gas-price",
            "0",
            "--base-fee",
            "0",
            "--state-interval",
            "5",
        ]
        .map(String::from)
        .to_vec(),
        // Started on the main thread (before the server's runtime): a
        // SIGKILLed `fhirledger dev` takes its anvil with it.
        die_with_starting_thread: true,
        ..AnvilOptions::free_gas(DEV_CHAIN_ID)
    };
    let node = Anvil::start(&binary, &options).context("starting anvil")?;
    let rpc_url = node.url();
    let key_file = data_dir.join("chain-key");
    if !key_file.exists() {
        write_new_key(&key_file)?;
    }
    let key = Key::from_file(&key_file)?;
    let chain_json = data_dir.join("chain.json");
    let contract = match read_contract(&chain_json)? {
        Some(contract) => contract,
        None => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let deployed = runtime
                .block_on(deploy(
                    &rpc_url,
                    DEV_CHAIN_ID,
                    &key,
                    Fees::Legacy { gas_price: 0 },
                ))
                .context("deploying the AuditAnchor contract on the dev chain")?;
            let text = json!({
                "contract": deployed.contract.to_string(),
                "chain_id": DEV_CHAIN_ID,
                "tx": deployed.tx.to_string(),
                "block": deployed.block,
                "writer": key.address().to_string(),
            });
            std::fs::write(&chain_json, format!("{text:#}\n"))
                .with_context(|| format!("writing {}", chain_json.display()))?;
            tracing::info!(contract = %deployed.contract, "dev: deployed the AuditAnchor contract");
            deployed.contract
        }
    };
    server.chain.rpc_url = Some(rpc_url.clone());
    server.chain.chain_id = Some(DEV_CHAIN_ID);
    server.chain.contract = Some(contract.to_string());
    server.chain.key_file = Some(key_file);
    Ok(Some(DevChain {
        _node: node,
        rpc_url,
        contract,
    }))
}

/// A random secp256k1 key (32 bytes from the kernel), `0x` hex, mode 0600.
fn write_new_key(path: &Path) -> anyhow::Result<()> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    let mut text = String::from("0x");
    for b in bytes {
        text.push_str(&format!("{b:02x}"));
    }
    text.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn read_contract(path: &Path) -> anyhow::Result<Option<Address>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let contract = value["contract"]
        .as_str()
        .with_context(|| format!("{} names no contract", path.display()))?
        .parse()
        .map_err(|e: String| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Some(contract))
}

/// The banner's lines about the chain.
pub fn banner(chain: &DevChain, database_url: &str) -> String {
    format!(
        "Chain: anvil at {} (chain id {DEV_CHAIN_ID}), AuditAnchor contract {}\n\
         Verify the audit trail against it:\n  fhirledger audit verify --database-url '{database_url}' --rpc-url {} --contract {}",
        chain.rpc_url, chain.contract, chain.rpc_url, chain.contract
    )
}
