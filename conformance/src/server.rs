//! Starting the database and the `fhirledger serve` child process, and tearing
//! both down when the test binary exits.

use std::collections::VecDeque;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, Once, OnceLock};
use std::time::{Duration, Instant};

use fhirledger_postgres::cluster::{ClusterConfig, PrivateCluster};
use rand::Rng;

/// The body limit of [`small_limit_server`].
pub const SMALL_BODY_LIMIT: u64 = 256 * 1024;

/// How long a server may take to say it is listening (migrations included).
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// Lines of server log kept for failure messages.
pub(crate) const LOG_LINES: usize = 400;

/// A running `fhirledger serve`.
pub struct TestServer {
    /// The configured public base URL (no trailing slash).
    pub public_base: String,
    /// The FHIR base: `{public_base}/fhir`.
    pub fhir_base: String,
    /// `127.0.0.1:PORT`, the socket it listens on.
    pub bind: String,
    /// `FHIRLEDGER_MAX_BODY_BYTES`, when set.
    pub max_body_bytes: Option<u64>,
    /// The database it runs on (for the admin commands).
    pub database_url: String,
    /// A system-level token of a backend client, sent by default.
    token: OnceLock<String>,
    pid: u32,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl TestServer {
    /// An absolute URL: `path` is taken as is when it is already absolute,
    /// else joined to the FHIR base (`Patient/1` → `{fhir base}/Patient/1`).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}/{}", self.fhir_base, path.trim_start_matches('/'))
        }
    }

    /// The last `n` lines the server logged.
    pub fn log_tail(&self, n: usize) -> String {
        last_lines(&self.log, n)
    }

    /// Whether the server process is still alive.
    pub fn is_running(&self) -> bool {
        child_running(self.pid)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Stops the server (SIGTERM, then SIGKILL after a bounded wait), for
    /// tests that need its database to themselves afterwards.
    pub fn stop(&self) -> String {
        stop_child(self.pid)
    }

    /// A bearer token with every `system/` scope, obtained once through
    /// SMART Backend Services from a client registered with the CLI.
    pub fn token(&self) -> &str {
        self.token.get_or_init(|| {
            let client = crate::smart::BackendClient::register(
                self,
                crate::smart::ALL_SYSTEM_SCOPES,
                crate::smart::SigningKey::rs384(),
            );
            client.token(crate::smart::ALL_SYSTEM_SCOPES)
        })
    }
}

/// The server every test of a binary shares (default settings).
pub fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| start_server(None))
}

/// A second server on the same database whose body limit is
/// [`SMALL_BODY_LIMIT`], for the 413 tests.
pub fn small_limit_server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| start_server(Some(SMALL_BODY_LIMIT)))
}

/// A server of its own on the binary's database, started with extra
/// environment variables (set after, so overriding, the defaults). They may
/// depend on the server's public base URL (`http://localhost:PORT`), which
/// `extra_env` is given: an external OpenID Connect provider, for one, must
/// know the server's callback URL before the server is told its issuer.
/// `extra_env` runs once per start attempt (a retry picks another port).
pub fn start_server_with(extra_env: impl FnMut(&str) -> Vec<(String, String)>) -> TestServer {
    start_server_inner(None, extra_env)
}

/// A server of its own on a database of its own (see [`fresh_database`]),
/// for tests whose server state must not meet another test's: the Merkle
/// log's checkpoints and its anchoring leadership are per database.
pub fn start_server_on(
    database_url: &str,
    mut extra_env: impl FnMut(&str) -> Vec<(String, String)>,
) -> TestServer {
    let bin = server_binary();
    let mut failures = Vec::new();
    for _ in 0..3 {
        match try_start(bin, database_url, None, &mut extra_env) {
            Ok(server) => return server,
            Err(e) => failures.push(e),
        }
    }
    panic!("fhirledger did not start:\n{}", failures.join("\n----\n"));
}

/// A new, empty database `name` on the test binary's PostgreSQL (the
/// server started on it applies the migrations); its URL.
pub fn fresh_database(name: &str) -> String {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let url = database_url();
    let mut conn =
        diesel::PgConnection::establish(url).unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    conn.batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
    match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("no database name in {url}"),
    }
}

/// What the exit hook must tear down.
pub(crate) struct Cleanup {
    pub(crate) children: Vec<Child>,
    /// Chains kept for the test binary's whole run (see [`keep_until_exit`]).
    anvils: Vec<crate::anvil::Anvil>,
    cluster: Option<PrivateCluster>,
    temp_dir: Option<PathBuf>,
}

pub(crate) static CLEANUP: Mutex<Cleanup> = Mutex::new(Cleanup {
    children: Vec::new(),
    anvils: Vec::new(),
    cluster: None,
    temp_dir: None,
});

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn register_exit_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: registering a plain `extern "C" fn` with no captured state.
        let rc = unsafe { libc::atexit(cleanup_at_exit) };
        assert_eq!(rc, 0, "could not register the clean-up hook with atexit");
    });
}

extern "C" fn cleanup_at_exit() {
    // A panic must not unwind into libc.
    let _ = std::panic::catch_unwind(|| {
        let mut state = lock(&CLEANUP);
        for child in state.children.iter_mut() {
            terminate(child);
        }
        state.children.clear();
        for anvil in state.anvils.iter_mut() {
            anvil.stop();
        }
        state.anvils.clear();
        if let Some(cluster) = state.cluster.take() {
            if let Err(e) = cluster.stop() {
                eprintln!("conformance: stopping the private PostgreSQL cluster failed: {e}");
            }
        }
        if let Some(dir) = state.temp_dir.take() {
            let _ = fs::remove_dir_all(&dir);
        }
    });
}

/// SIGTERM, a bounded wait for the graceful shutdown, then SIGKILL.
fn terminate(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    // SAFETY: signalling our own child by its pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Keeps `anvil` running until the test binary exits (a static's value is
/// never dropped, so a chain shared by a binary's tests is stopped by the
/// exit hook instead).
pub(crate) fn keep_until_exit(anvil: crate::anvil::Anvil) {
    register_exit_hook();
    lock(&CLEANUP).anvils.push(anvil);
}

/// A directory for the test binary's files, removed when it exits: the
/// private cluster's directory, or the system's temporary directory when
/// the tests run on `FHIRLEDGER_TEST_DATABASE_URL`.
pub(crate) fn scratch_dir() -> PathBuf {
    database_url();
    lock(&CLEANUP)
        .temp_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
}

/// The database URL: `FHIRLEDGER_TEST_DATABASE_URL`, or a private cluster in
/// a fresh directory under /tmp.
fn database_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("FHIRLEDGER_TEST_DATABASE_URL") {
            if !url.trim().is_empty() {
                return url;
            }
        }
        register_exit_hook();
        sweep_stale_dirs();
        let dir = PathBuf::from("/tmp").join(format!(
            "{TEMP_PREFIX}{}-{:08x}",
            std::process::id(),
            rand::thread_rng().gen::<u32>()
        ));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        // The cluster runs as `postgres` when we are root: it must reach the directory.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", dir.display()));
        lock(&CLEANUP).temp_dir = Some(dir.clone());
        // A throw-away cluster: durability is not worth the fsyncs.
        let mut config = ClusterConfig::new(dir.join("cluster"));
        config.no_sync = true;
        config.extra_settings = vec![
            "fsync = off".into(),
            "synchronous_commit = off".into(),
            "full_page_writes = off".into(),
        ];
        let cluster = PrivateCluster::start(&config).unwrap_or_else(|e| {
            panic!(
                "cannot start a private PostgreSQL cluster in {}: {e}",
                dir.display()
            )
        });
        let url = cluster.database_url();
        lock(&CLEANUP).cluster = Some(cluster);
        url
    })
}

const TEMP_PREFIX: &str = "fhirledger-conformance-";

/// A test binary killed outright (SIGKILL, a CI timeout) cannot run its exit
/// hook: its server dies with it (`PR_SET_PDEATHSIG`) but its cluster keeps
/// running. Such leftovers are recognised by their directory name, whose pid
/// is no longer alive: their postmaster (checked against its data directory)
/// is asked for a fast shutdown and the directory removed.
fn sweep_stale_dirs() {
    let Ok(listing) = fs::read_dir("/tmp") else {
        return;
    };
    for entry in listing.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = name
            .strip_prefix(TEMP_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        if process_alive(owner) {
            continue;
        }
        let dir = entry.path();
        let pgdata = dir.join("cluster").join("pgdata");
        if let Some(postmaster) = fs::read_to_string(pgdata.join("postmaster.pid"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .next()
                    .and_then(|l| l.trim().parse::<libc::pid_t>().ok())
            })
        {
            let cmdline = fs::read(format!("/proc/{postmaster}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("postgres") && cmdline.contains(&*pgdata.to_string_lossy()) {
                // SAFETY: signalling a postmaster this harness started, by pid.
                unsafe {
                    libc::kill(postmaster, libc::SIGINT);
                }
                let deadline = Instant::now() + Duration::from_secs(20);
                while process_alive(postmaster) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

fn process_alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// The workspace root (the conformance crate sits directly under it).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `FHIRLEDGER_BIN`, or the debug binary freshly built by cargo.
pub fn server_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("FHIRLEDGER_BIN") {
            return PathBuf::from(bin);
        }
        let root = workspace_root();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(&cargo)
            .args(["build", "-p", "fhirledger", "--bin", "fhirledger"])
            .current_dir(&root)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cargo:?} to build the server: {e}"));
        assert!(
            out.status.success(),
            "`cargo build -p fhirledger` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|t| if t.is_absolute() { t } else { root.join(t) })
            .unwrap_or_else(|| root.join("target"));
        target.join("debug").join("fhirledger")
    })
}

/// Whether the child `pid` started by this binary is still alive.
pub(crate) fn child_running(pid: u32) -> bool {
    lock(&CLEANUP)
        .children
        .iter_mut()
        .find(|c| c.id() == pid)
        .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// Starts one server; retried a few times because the free port can be
/// taken between choosing it and binding it.
fn start_server(max_body_bytes: Option<u64>) -> TestServer {
    start_server_inner(max_body_bytes, |_| Vec::new())
}

fn start_server_inner(
    max_body_bytes: Option<u64>,
    mut extra_env: impl FnMut(&str) -> Vec<(String, String)>,
) -> TestServer {
    // Serialised: the first server applies the migrations before a second
    // one looks at the database.
    static START: Mutex<()> = Mutex::new(());
    let _guard = lock(&START);
    register_exit_hook();
    let url = database_url();
    let bin = server_binary();
    assert!(
        bin.exists(),
        "the server binary {} does not exist",
        bin.display()
    );
    let mut failures = Vec::new();
    for _ in 0..3 {
        match try_start(bin, url, max_body_bytes, &mut extra_env) {
            Ok(server) => return server,
            Err(e) => failures.push(e),
        }
    }
    panic!("fhirledger did not start:\n{}", failures.join("\n----\n"));
}

fn try_start(
    bin: &Path,
    database_url: &str,
    max_body_bytes: Option<u64>,
    extra_env: &mut dyn FnMut(&str) -> Vec<(String, String)>,
) -> Result<TestServer, String> {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    // A public base that differs from the socket address: every absolute URL
    // the server emits must use this configured base, not the Host header.
    let public_base = format!("http://localhost:{port}");
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .env("FHIRLEDGER_DATABASE_URL", database_url)
        .env("FHIRLEDGER_BIND", &bind)
        .env("FHIRLEDGER_BASE_URL", &public_base)
        .env(
            "FHIRLEDGER_LOG",
            std::env::var("FHIRLEDGER_TEST_LOG").unwrap_or_else(|_| "info".to_string()),
        )
        .env("NO_COLOR", "1")
        // Long enough for any test binary; expiry is tested with its own server.
        .env("FHIRLEDGER_BACKEND_TOKEN_SECONDS", "14400")
        // The SMART flows sign in with local accounts made by the tests.
        .env("FHIRLEDGER_LOCAL_LOGIN", "true")
        .env_remove("FHIRLEDGER_MAX_BODY_BYTES")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(limit) = max_body_bytes {
        cmd.env("FHIRLEDGER_MAX_BODY_BYTES", limit.to_string());
    }
    cmd.envs(extra_env(&public_base));
    die_with_parent(&mut cmd);
    let mut child =
        spawn_on_keeper_thread(cmd).map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let pid = child.id();
    let stderr = child.stderr.take().ok_or("the child has no stderr pipe")?;
    lock(&CLEANUP).children.push(child);

    let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES)));
    let (tx, rx) = mpsc::channel::<String>();
    let drain_log = Arc::clone(&log);
    std::thread::Builder::new()
        .name(format!("fhirledger-{pid}-stderr"))
        .spawn(move || drain(stderr, drain_log, tx))
        .map_err(|e| format!("cannot start the log reader: {e}"))?;

    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("fhirledger is listening") => break,
            Ok(_) => continue,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let tail = tail_of(&log);
                stop_child(pid);
                return Err(format!(
                    "fhirledger did not report `fhirledger is listening` within {READY_TIMEOUT:?}; its log:\n{tail}"
                ));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = stop_child(pid);
                return Err(format!(
                    "fhirledger exited before it was ready ({status}); its log:\n{}",
                    tail_of(&log)
                ));
            }
        }
    }
    Ok(TestServer {
        fhir_base: format!("{public_base}/fhir"),
        public_base,
        bind,
        max_body_bytes,
        database_url: database_url.to_string(),
        token: OnceLock::new(),
        pid,
        log,
    })
}

/// Makes the child get SIGTERM when this process dies, however it dies.
/// Spawn it with [`spawn_on_keeper_thread`].
pub(crate) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
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

/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child ends, so
/// the child is spawned from a thread that lives as long as the process.
pub(crate) fn spawn_on_keeper_thread(mut cmd: Command) -> std::io::Result<Child> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("fhirledger-keeper".into())
        .spawn(move || {
            let _ = tx.send(cmd.spawn());
            loop {
                std::thread::park();
            }
        })?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the keeper thread died before spawning the server"))?
}

/// Reads a child's output (the server's stderr) to the end, keeping the last
/// lines and forwarding each line while somebody listens.
pub(crate) fn drain(
    stderr: impl Read,
    log: Arc<Mutex<VecDeque<String>>>,
    tx: mpsc::Sender<String>,
) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    let mut listening = true;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                {
                    let mut log = lock(&log);
                    if log.len() == LOG_LINES {
                        log.pop_front();
                    }
                    log.push_back(line.clone());
                }
                if listening && tx.send(line).is_err() {
                    listening = false;
                }
            }
        }
    }
}

pub(crate) fn tail_of(log: &Mutex<VecDeque<String>>) -> String {
    last_lines(log, LOG_LINES)
}

/// The last `n` lines of a child's kept output, one string.
pub(crate) fn last_lines(log: &Mutex<VecDeque<String>>, n: usize) -> String {
    let log = lock(log);
    let skip = log.len().saturating_sub(n);
    log.iter()
        .skip(skip)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

/// Stops a child (one that failed to start, or is no longer wanted) and
/// forgets it; returns its status.
pub(crate) fn stop_child(pid: u32) -> String {
    let mut state = lock(&CLEANUP);
    match state.children.iter().position(|c| c.id() == pid) {
        Some(i) => {
            let mut child = state.children.remove(i);
            terminate(&mut child);
            match child.try_wait() {
                Ok(Some(status)) => status.to_string(),
                _ => "unknown status".to_string(),
            }
        }
        None => "unknown status".to_string(),
    }
}
