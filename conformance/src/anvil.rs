//! A private anvil (the npm package `@foundry-rs/anvil`, as
//! `conformance/chain` installs it, or `FHIRLEDGER_ANVIL`) on loopback, for
//! the anchoring tests: started on a port of its own, stopped with SIGTERM
//! (so a `--state` file is written), restartable on the same port.

use std::net::SocketAddr;
use std::path::PathBuf;

use fhirledger_chain::anvil::{find_anvil, AnvilOptions};
use fhirledger_chain::Key;

use crate::server::workspace_root;

/// anvil's first default account (mnemonic "test test … junk"): a
/// well-known test key.
pub const DEV_KEY_0: &str = KEYS[0];

/// anvil's first default accounts (mnemonic "test test … junk"): well-known
/// test keys.
pub const KEYS: [&str; 3] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f4d97485b01e4f8a8fa1bbb6d6fc8ab1e5ed6d6c4e0f1",
];

/// anvil's default account `index` (0..3), as the adapter's key.
pub fn key(index: usize) -> Key {
    Key::from_hex(KEYS[index]).expect("anvil's well-known key")
}

pub use fhirledger_chain::anvil::json_rpc as rpc;

/// A private anvil; [`stop`](Self::stop) and [`restart`](Self::restart) keep
/// its port (and its chain, with a state file).
pub struct Anvil {
    node: Option<fhirledger_chain::anvil::Anvil>,
    pub addr: SocketAddr,
    pub chain_id: u64,
    /// `--state` file, when the chain keeps its state across restarts.
    state: Option<PathBuf>,
}

impl Anvil {
    /// One block a second, free gas (legacy transactions at gas price 0, base
    /// fee 0), on a port anvil picks; `state` keeps the chain across
    /// [`stop`](Self::stop) and [`restart`](Self::restart).
    pub fn start(chain_id: u64, state: Option<PathBuf>) -> Anvil {
        let mut anvil = Anvil {
            node: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            chain_id,
            state,
        };
        anvil.spawn(0);
        anvil
    }

    fn spawn(&mut self, port: u16) {
        let binary = find_anvil(&[workspace_root()]).expect(
            "anvil not found: set FHIRLEDGER_ANVIL or run `npm ci` in conformance/chain (./test.sh does)",
        );
        let options = AnvilOptions {
            port,
            accounts: 3,
            block_time: Some(1),
            state: self.state.clone(),
            ..AnvilOptions::free_gas(self.chain_id)
        };
        let node = fhirledger_chain::anvil::Anvil::start(&binary, &options).expect("anvil starts");
        self.addr = node.addr();
        self.node = Some(node);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An anvil shared by the test binary's tests for its whole run (as in a
    /// `static`, whose value is never dropped): stopped by the binary's exit
    /// hook instead, so it does not outlive the binary. Its URL.
    pub fn for_the_binary(chain_id: u64) -> String {
        let anvil = Anvil::start(chain_id, None);
        let url = anvil.url();
        crate::server::keep_until_exit(anvil);
        url
    }

    /// SIGTERM (anvil writes its `--state`), then waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut node) = self.node.take() {
            node.stop();
        }
    }

    /// Starts it again on the same port, from its `--state`.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.addr.port();
        self.spawn(port);
    }
}
