//! A private anvil for the tests: on loopback, on a port it picks itself,
//! killed when dropped.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fhirledger_chain::anvil::{find_anvil, AnvilOptions};
use fhirledger_chain::Key;

/// anvil's default accounts (mnemonic "test test … junk"): well-known test keys.
pub const KEYS: [&str; 3] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f4d97485b01e4f8a8fa1bbb6d6fc8ab1e5ed6d6c4e0f1",
];

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[allow(unused_imports)] // not every test binary drives the node by hand
pub use fhirledger_chain::anvil::json_rpc as rpc;

/// A private anvil on loopback, on a port it picks, stopped when dropped.
pub struct Anvil {
    node: fhirledger_chain::anvil::Anvil,
    pub addr: SocketAddr,
    pub chain_id: u64,
}

impl Anvil {
    /// Automine (a block per transaction), free gas: legacy transactions at
    /// gas price 0 are accepted with a base fee of 0.
    pub fn start(chain_id: u64) -> Anvil {
        Anvil::start_with(chain_id, &["--gas-price", "0", "--base-fee", "0"])
    }

    pub fn start_with(chain_id: u64, extra: &[&str]) -> Anvil {
        let binary = find_anvil(&[repo_root()]).expect(
            "anvil not found: set FHIRLEDGER_ANVIL or run `npm ci` in conformance/chain (./test.sh does)",
        );
        let options = AnvilOptions {
            accounts: 3,
            extra: extra.iter().map(|a| a.to_string()).collect(),
            ..AnvilOptions::free_gas(chain_id)
        };
        let node = fhirledger_chain::anvil::Anvil::start(&binary, &options).expect("anvil starts");
        Anvil {
            addr: node.addr(),
            node,
            chain_id,
        }
    }

    pub fn url(&self) -> String {
        self.node.url()
    }
}

/// A key file in a fresh temporary directory, read back through the adapter.
pub fn key(index: usize) -> Key {
    let dir = std::env::temp_dir().join(format!(
        "fhirledger-chain-test-{}-{index}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("writer.key");
    std::fs::write(&path, format!("{}\n", KEYS[index])).expect("write key file");
    let key = Key::from_file(&path).expect("key file");
    let _ = std::fs::remove_dir_all(&dir);
    key
}

pub fn root(n: u8) -> [u8; 32] {
    let mut root = [n; 32];
    root[0] = 0xab;
    root
}
