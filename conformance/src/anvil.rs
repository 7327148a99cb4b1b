//! A private anvil for tests that anchor checkpoints (as
//! adapters/chain/tests/common starts one for that crate's own tests): on
//! loopback, on a port it picks itself, killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fhirledger_chain::Key;

/// anvil's default accounts (mnemonic "test test … junk"): well-known test keys.
pub const KEYS: [&str; 3] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f4d97485b01e4f8a8fa1bbb6d6fc8ab1e5ed6d6c4e0f1",
];

/// `FHIRLEDGER_ANVIL`, else the binary of conformance/chain's npm packages
/// (the platform package's own, so that killing it kills anvil and not a
/// Node wrapper), else its `.bin/anvil` wrapper.
pub fn anvil_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FHIRLEDGER_ANVIL") {
        return PathBuf::from(path);
    }
    let modules = crate::server::workspace_root().join("conformance/chain/node_modules");
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let native = modules.join(format!("@foundry-rs/anvil-linux-{arch}/bin/anvil"));
    if native.exists() {
        return native;
    }
    let wrapper = modules.join(".bin/anvil");
    assert!(
        wrapper.exists(),
        "anvil not found: set FHIRLEDGER_ANVIL or run `npm ci` in conformance/chain (./test.sh does)"
    );
    wrapper
}

pub struct Anvil {
    child: Child,
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
        let mut cmd = Command::new(anvil_binary());
        cmd.args(["--host", "127.0.0.1", "--port", "0", "--accounts", "3"])
            .args(["--chain-id", &chain_id.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // Kept in a static by tests: it must die with the test binary.
        crate::server::die_with_parent(&mut cmd);
        let mut child = crate::server::spawn_on_keeper_thread(cmd).expect("start anvil");
        let stdout = child.stdout.take().expect("anvil's stdout");
        let (tx, rx) = mpsc::channel();
        // Reads anvil's banner up to "Listening on ADDR", then drains the rest
        // so that anvil never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(addr) = line.trim().strip_prefix("Listening on ") {
                    let _ = tx.send(addr.to_string());
                    break;
                }
                line.clear();
            }
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let addr: SocketAddr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr.parse().expect("anvil's listening address"),
            Err(_) => {
                let _ = child.kill();
                panic!("anvil did not report its address: {:?}", child.wait());
            }
        };
        let mut anvil = Anvil {
            child,
            addr,
            chain_id,
        };
        anvil.wait_ready();
        anvil
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Polls eth_chainId until anvil answers with its chain id.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let want = format!("\"0x{:x}\"", self.chain_id);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("anvil exited before answering: {status}");
            }
            if let Ok(body) = rpc(self.addr, "eth_chainId", "[]") {
                if body.contains(&want) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "anvil did not answer eth_chainId in 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One JSON-RPC call over a plain HTTP/1.1 connection; the response body.
pub fn rpc(addr: SocketAddr, method: &str, params: &str) -> std::io::Result<String> {
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#);
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default())
}

/// anvil's default account `index` (0..3), as the adapter's key.
pub fn key(index: usize) -> Key {
    Key::from_hex(KEYS[index]).expect("anvil's well-known key")
}
