//! A private PostgreSQL cluster owned by one fhirledger process: created on
//! first use under a data directory with the installed server binaries,
//! started on a free loopback port, stopped when dropped. `fhirledger dev` and
//! the test harness use it, so neither needs a database set up by hand.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use diesel::prelude::*;
use diesel::sql_types::Text;
use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::StoreError;

/// Name of the application database inside the cluster.
pub const DATABASE: &str = "fhirledger";
const SUPERUSER: &str = "postgres";

/// Where the cluster lives and how it listens.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Holds `pgdata/` and the generated credentials.
    pub data_dir: PathBuf,
    /// Loopback port; a free one is picked when `None`.
    pub port: Option<u16>,
    /// Extra `postgresql.conf` lines written at creation.
    pub extra_settings: Vec<String>,
    /// Skip initdb's fsync of the new cluster: for throw-away test clusters.
    pub no_sync: bool,
}

impl ClusterConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ClusterConfig {
            data_dir: data_dir.into(),
            port: None,
            extra_settings: Vec::new(),
            no_sync: false,
        }
    }
}

/// A running private cluster.
pub struct PrivateCluster {
    pgdata: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    password: String,
    owner: Option<(u32, u32)>,
    stopped: AtomicBool,
}

fn err(msg: impl Into<String>) -> StoreError {
    StoreError::Cluster(msg.into())
}

impl PrivateCluster {
    /// Creates the cluster if `data_dir` has none yet, starts it and makes
    /// sure the application database exists.
    pub fn start(config: &ClusterConfig) -> Result<Self, StoreError> {
        let bin_dir = find_bin_dir()?;
        fs::create_dir_all(&config.data_dir)
            .map_err(|e| err(format!("cannot create {}: {e}", config.data_dir.display())))?;
        let data_dir = fs::canonicalize(&config.data_dir)
            .map_err(|e| err(format!("cannot resolve {}: {e}", config.data_dir.display())))?;
        let pgdata = data_dir.join("pgdata");
        // PostgreSQL refuses to run as root: as root, the cluster belongs to
        // the `postgres` account the server package created.
        let owner = if unsafe { libc::geteuid() } == 0 {
            Some(postgres_account()?)
        } else {
            None
        };
        let password = credentials(&data_dir)?;
        let cluster = PrivateCluster {
            pgdata,
            bin_dir,
            port: match config.port {
                Some(p) => p,
                None => free_port()?,
            },
            password,
            owner,
            stopped: AtomicBool::new(true),
        };
        if !cluster.pgdata.join("PG_VERSION").exists() {
            cluster.init(&data_dir, config)?;
        }
        cluster.run_pg_ctl(&[
            "start",
            "-w",
            "-t",
            "120",
            "-l",
            &cluster.pgdata.join("server.log").to_string_lossy(),
            "-o",
            &format!(
                "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''",
                cluster.port
            ),
        ])?;
        cluster.stopped.store(false, Ordering::SeqCst);
        cluster.ensure_database()?;
        Ok(cluster)
    }

    /// The database URL of a cluster already running in `data_dir` (a
    /// `fhirledger dev` in another terminal), read from its
    /// `postmaster.pid`; `None` when it is not running.
    pub fn running_database_url(data_dir: &Path) -> Option<String> {
        let pid_file = fs::read_to_string(data_dir.join("pgdata").join("postmaster.pid")).ok()?;
        let pid: i32 = pid_file.lines().next()?.trim().parse().ok()?;
        // SAFETY: signal 0 only asks whether the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            return None;
        }
        let port: u16 = pid_file.lines().nth(3)?.trim().parse().ok()?;
        let password = fs::read_to_string(data_dir.join("postgres-password")).ok()?;
        Some(format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{port}/{DATABASE}",
            password.trim()
        ))
    }

    /// URL of the application database.
    pub fn database_url(&self) -> String {
        self.url_for(DATABASE)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn url_for(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// Stops the cluster (fast shutdown: open transactions roll back).
    pub fn stop(&self) -> Result<(), StoreError> {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.run_pg_ctl(&["stop", "-w", "-m", "fast"])
    }

    fn init(&self, data_dir: &Path, config: &ClusterConfig) -> Result<(), StoreError> {
        tracing::info!(pgdata = %self.pgdata.display(), "creating a private PostgreSQL cluster");
        fs::create_dir_all(&self.pgdata).map_err(|e| err(format!("cannot create pgdata: {e}")))?;
        fs::set_permissions(&self.pgdata, fs::Permissions::from_mode(0o700))
            .map_err(|e| err(format!("cannot protect pgdata: {e}")))?;
        let pwfile = data_dir.join(".pwfile");
        fs::write(&pwfile, &self.password).map_err(|e| err(format!("cannot write pwfile: {e}")))?;
        if let Some((uid, gid)) = self.owner {
            check_reachable(&self.pgdata, uid)?;
            chown(&self.pgdata, uid, gid)?;
            chown(&pwfile, uid, gid)?;
        }
        let pgdata = self.pgdata.to_string_lossy();
        let pwfile_arg = pwfile.to_string_lossy();
        let mut args = vec![
            "-D",
            &pgdata,
            "-U",
            SUPERUSER,
            "--pwfile",
            &pwfile_arg,
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
        ];
        if config.no_sync {
            args.push("--no-sync");
        }
        let result = self.run("initdb", &args);
        let _ = fs::remove_file(&pwfile);
        result?;
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(self.pgdata.join("postgresql.conf"))
            .map_err(|e| err(format!("cannot open postgresql.conf: {e}")))?;
        let mut settings = vec![
            "max_connections = 200".to_string(),
            "shared_buffers = 256MB".to_string(),
            "wal_level = minimal".to_string(),
            "max_wal_senders = 0".to_string(),
            "max_wal_size = 2GB".to_string(),
            "logging_collector = off".to_string(),
            // Statistics follow bulk loads within seconds, so cached search plans (made
            // generic per connection, invalidated by ANALYZE) do not outlive them.
            "autovacuum_naptime = 5s".to_string(),
        ];
        settings.extend(config.extra_settings.iter().cloned());
        writeln!(
            conf,
            "\n# fhirledger private cluster\n{}",
            settings.join("\n")
        )
        .map_err(|e| err(format!("cannot write postgresql.conf: {e}")))?;
        Ok(())
    }

    fn ensure_database(&self) -> Result<(), StoreError> {
        #[derive(QueryableByName)]
        struct Name {
            #[diesel(sql_type = Text)]
            #[allow(dead_code)]
            datname: String,
        }
        let mut conn = PgConnection::establish(&self.url_for("postgres"))?;
        let existing = diesel::sql_query("SELECT datname FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(DATABASE)
            .load::<Name>(&mut conn)?;
        if existing.is_empty() {
            diesel::sql_query(format!("CREATE DATABASE {DATABASE}")).execute(&mut conn)?;
        }
        Ok(())
    }

    fn run_pg_ctl(&self, args: &[&str]) -> Result<(), StoreError> {
        let mut all = vec!["-D", self.pgdata.to_str().unwrap_or_default()];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), StoreError> {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.args(args).stdin(Stdio::null());
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd
            .output()
            .map_err(|e| err(format!("cannot run {program}: {e}")))?;
        if !out.status.success() {
            let log = fs::read_to_string(self.pgdata.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            return Err(err(format!(
                "{program} {} failed: {}{}\n{}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )));
        }
        Ok(())
    }
}

/// What the exit hook needs to stop one cluster.
struct ExitStop {
    cluster: &'static PrivateCluster,
    remove_dir: Option<PathBuf>,
}

static EXIT_STOPS: Mutex<Vec<ExitStop>> = Mutex::new(Vec::new());

extern "C" fn stop_registered_clusters() {
    let stops = match EXIT_STOPS.lock() {
        Ok(mut guard) => std::mem::take(&mut *guard),
        Err(_) => return,
    };
    for stop in stops {
        let _ = stop.cluster.run_pg_ctl(&["stop", "-w", "-m", "immediate"]);
        stop.cluster.stopped.store(true, Ordering::SeqCst);
        if let Some(dir) = stop.remove_dir {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

impl PrivateCluster {
    /// Keeps the cluster for the rest of the process and stops it (removing
    /// `remove_dir`, if given) when the process exits. For clusters held in
    /// statics, such as a test binary's, which are never dropped.
    pub fn stop_at_exit(self, remove_dir: Option<PathBuf>) -> &'static PrivateCluster {
        let cluster: &'static PrivateCluster = Box::leak(Box::new(self));
        if let Ok(mut stops) = EXIT_STOPS.lock() {
            if stops.is_empty() {
                // SAFETY: registering a plain extern "C" function with no captured state.
                unsafe {
                    libc::atexit(stop_registered_clusters);
                }
            }
            stops.push(ExitStop {
                cluster,
                remove_dir,
            });
        }
        cluster
    }
}

/// A migrated store on a private cluster of its own, for tests: in a fresh
/// directory under `/tmp` named after `purpose` (the postgres account must
/// reach it, so not under a private home), stopped and removed when the
/// process exits. Returns the database URL with it, for statements the store
/// does not offer.
pub fn disposable_store(purpose: &str) -> Result<(String, crate::PgStore), StoreError> {
    let suffix: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(10)
        .map(char::from)
        .collect();
    let dir = PathBuf::from(format!("/tmp/fhirledger-{purpose}-{suffix}"));
    fs::create_dir_all(&dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| err(format!("cannot open {} to postgres: {e}", dir.display())))?;
    let cluster =
        PrivateCluster::start(&ClusterConfig::new(dir.join("db")))?.stop_at_exit(Some(dir));
    let url = cluster.database_url();
    let store = crate::PgStore::connect(&url, &crate::PoolConfig::default())?;
    store.migrate()?;
    Ok((url, store))
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("stopping the private cluster failed: {e}");
        }
    }
}

/// The directory holding `initdb` and `pg_ctl`: `FHIRLEDGER_PG_BIN_DIR`, the
/// newest `/usr/lib/postgresql/N/bin`, or the `PATH`.
fn find_bin_dir() -> Result<PathBuf, StoreError> {
    if let Ok(dir) = std::env::var("FHIRLEDGER_PG_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
        .ok_or_else(|| {
            err("no PostgreSQL server binaries found (install the `postgresql` package, or set FHIRLEDGER_PG_BIN_DIR)")
        })
}

fn postgres_account() -> Result<(u32, u32), StoreError> {
    let name = std::ffi::CString::new(SUPERUSER).map_err(|e| err(e.to_string()))?;
    // SAFETY: getpwnam returns a pointer into static storage or null; we copy
    // the two ids out immediately.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(err(
            "running as root needs the `postgres` system account (it comes with the `postgresql` package)",
        ));
    }
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok((uid, gid))
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), StoreError> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| err(format!("cannot hand {} to postgres: {e}", path.display())))
}

/// Every parent of `pgdata` must let the postgres account through.
fn check_reachable(pgdata: &Path, uid: u32) -> Result<(), StoreError> {
    for dir in pgdata.ancestors().skip(1) {
        if let Ok(meta) = fs::metadata(dir) {
            let mode = meta.mode();
            let passable = if meta.uid() == uid {
                mode & 0o100 != 0
            } else {
                mode & 0o001 != 0
            };
            if !passable {
                return Err(err(format!(
                    "the postgres account cannot reach {}: {} is not searchable by others (chmod o+x it, or choose another data directory)",
                    pgdata.display(),
                    dir.display()
                )));
            }
        }
    }
    Ok(())
}

/// The superuser password, generated once and kept beside the cluster.
fn credentials(data_dir: &Path) -> Result<String, StoreError> {
    let path = data_dir.join("postgres-password");
    if let Ok(existing) = fs::read_to_string(&path) {
        let existing = existing.trim().to_string();
        if !existing.is_empty() {
            return Ok(existing);
        }
    }
    let password: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    fs::write(&path, &password)
        .map_err(|e| err(format!("cannot write {}: {e}", path.display())))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
        .map_err(|e| err(format!("cannot protect {}: {e}", path.display())))?;
    Ok(password)
}

fn free_port() -> Result<u16, StoreError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| err(format!("no free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| err(format!("no free port: {e}")))
}
