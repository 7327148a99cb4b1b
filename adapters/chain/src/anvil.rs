//! anvil, the development chain node (from the npm package
//! `@foundry-rs/anvil`, as `conformance/chain` installs it, or
//! `FHIRLEDGER_ANVIL`), as a child process on loopback: for `fhirledger dev`
//! and the tests. Only starting and stopping it lives here; the server talks
//! to it like to any node (standard JSON-RPC only, never `anvil_*`/`evm_*`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long anvil may take to print its address and to answer.
const STARTUP: Duration = Duration::from_secs(30);

/// `FHIRLEDGER_ANVIL`, else the binary of anvil's platform package under
/// `{root}/conformance/chain/node_modules` for the first of `roots` that has
/// it (the native binary, not npm's Node wrapper, so that stopping it stops
/// anvil itself).
pub fn find_anvil(roots: &[PathBuf]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FHIRLEDGER_ANVIL") {
        return Some(PathBuf::from(path));
    }
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let package =
        format!("conformance/chain/node_modules/@foundry-rs/anvil-linux-{arch}/bin/anvil");
    roots
        .iter()
        .map(|root| root.join(&package))
        .find(|p| p.is_file())
}

/// How to run anvil.
#[derive(Debug, Clone)]
pub struct AnvilOptions {
    pub chain_id: u64,
    /// 0: a free port anvil picks.
    pub port: u16,
    pub accounts: u32,
    /// Seconds between blocks; `None` mines a block per transaction.
    pub block_time: Option<u64>,
    /// Where anvil keeps its chain across restarts (`--state`).
    pub state: Option<PathBuf>,
    /// More arguments (fees, `--state-interval`, …).
    pub extra: Vec<String>,
    /// anvil gets SIGTERM when the thread that started it ends, however the
    /// process ends (`PR_SET_PDEATHSIG`): even a SIGKILLed `fhirledger dev`
    /// leaves no anvil behind. Only for a thread that lives as long as the
    /// process (the main thread): the signal follows the starting *thread*.
    pub die_with_starting_thread: bool,
}

impl AnvilOptions {
    /// Free gas (legacy transactions at gas price 0, base fee 0), as on a
    /// free-gas Besu network, one account, automine.
    pub fn free_gas(chain_id: u64) -> AnvilOptions {
        AnvilOptions {
            chain_id,
            port: 0,
            accounts: 1,
            block_time: None,
            state: None,
            extra: ["--gas-price", "0", "--base-fee", "0"]
                .map(String::from)
                .to_vec(),
            die_with_starting_thread: false,
        }
    }
}

/// Why anvil could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AnvilError {
    #[error("starting {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("anvil did not report its address within {0:?}")]
    NoAddress(Duration),
    #[error("anvil did not answer eth_chainId {0} within {1:?}")]
    NotReady(u64, Duration),
}

/// Makes the child get SIGTERM when the thread that forks it ends.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls (getpid, prctl, getppid, _exit)
    // run between fork and exec.
    let parent = unsafe { libc::getpid() };
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// A running anvil; stopped (SIGTERM, so that it writes its `--state`, then
/// SIGKILL if it lingers) when dropped.
pub struct Anvil {
    child: Child,
    addr: SocketAddr,
}

impl Anvil {
    /// Starts `binary` with `options` and returns once it answers
    /// `eth_chainId` with the chain id asked for.
    pub fn start(binary: &Path, options: &AnvilOptions) -> Result<Anvil, AnvilError> {
        let mut command = Command::new(binary);
        command
            .args(["--host", "127.0.0.1", "--port", &options.port.to_string()])
            .args(["--accounts", &options.accounts.to_string()])
            .args(["--chain-id", &options.chain_id.to_string()]);
        if let Some(seconds) = options.block_time {
            command.args(["--block-time", &seconds.to_string()]);
        }
        if let Some(state) = &options.state {
            command.arg("--state").arg(state);
        }
        if options.die_with_starting_thread {
            die_with_parent(&mut command);
        }
        let mut child = command
            .args(&options.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| AnvilError::Spawn {
                binary: binary.display().to_string(),
                source,
            })?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(AnvilError::NoAddress(STARTUP));
        };
        let (tx, rx) = mpsc::channel();
        // Reads the banner up to "Listening on ADDR", then drains the rest so
        // that anvil never blocks on a full pipe.
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
        let addr = match rx.recv_timeout(STARTUP).ok().and_then(|a| a.parse().ok()) {
            Some(addr) => addr,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(AnvilError::NoAddress(STARTUP));
            }
        };
        let mut anvil = Anvil { child, addr };
        let deadline = Instant::now() + STARTUP;
        let want = format!("\"0x{:x}\"", options.chain_id);
        loop {
            let exited = matches!(anvil.child.try_wait(), Ok(Some(_)));
            if !exited {
                if let Ok(body) = json_rpc(addr, "eth_chainId", "[]") {
                    if body.contains(&want) {
                        return Ok(anvil);
                    }
                }
            }
            if exited || Instant::now() >= deadline {
                anvil.stop();
                return Err(AnvilError::NotReady(options.chain_id, STARTUP));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its JSON-RPC endpoint, `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM (anvil writes its `--state`), then SIGKILL after 20 s.
    pub fn stop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signalling our own child process by its pid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One JSON-RPC call over a plain HTTP/1.1 connection; the response body.
/// Enough to see a node is up, or for a test to drive it, without a client.
pub fn json_rpc(addr: SocketAddr, method: &str, params: &str) -> std::io::Result<String> {
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
