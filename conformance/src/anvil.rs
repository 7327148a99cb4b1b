//! A private anvil (the npm package `@foundry-rs/anvil`, as
//! `conformance/chain` installs it, or `FHIRLEDGER_ANVIL`) on loopback, for
//! the anchoring tests: started on a port of its own, stopped with SIGTERM
//! (so a `--state` file is written), restartable on the same port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::server::workspace_root;

/// anvil's first default account (mnemonic "test test … junk"): a
/// well-known test key.
pub const DEV_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// `FHIRLEDGER_ANVIL`, else anvil's platform package in conformance/chain.
pub fn anvil_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FHIRLEDGER_ANVIL") {
        return PathBuf::from(path);
    }
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let native = workspace_root().join(format!(
        "conformance/chain/node_modules/@foundry-rs/anvil-linux-{arch}/bin/anvil"
    ));
    assert!(
        native.exists(),
        "anvil not found: set FHIRLEDGER_ANVIL or run `npm ci` in conformance/chain (./test.sh does)"
    );
    native
}

pub struct Anvil {
    child: Option<Child>,
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
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            chain_id,
            state,
        };
        anvil.spawn(0);
        anvil
    }

    fn spawn(&mut self, port: u16) {
        let mut cmd = Command::new(anvil_binary());
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--accounts", "2", "--chain-id", &self.chain_id.to_string()])
            .args(["--block-time", "1", "--gas-price", "0", "--base-fee", "0"]);
        if let Some(state) = &self.state {
            cmd.arg("--state").arg(state);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start anvil");
        let stdout = child.stdout.take().expect("anvil's stdout");
        let (tx, rx) = mpsc::channel();
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
        self.addr = addr;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let want = format!("\"0x{:x}\"", self.chain_id);
        loop {
            if let Ok(body) = rpc(self.addr, "eth_chainId", "[]") {
                if body.contains(&want) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "anvil did not answer in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM (anvil writes its `--state`), then waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: signalling our own child by its pid.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, from its `--state`.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.addr.port();
        self.spawn(port);
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
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
