//! The whole production topology on one machine without Docker, as a
//! newcomer starts it from deploy/README.md: `deploy/loopback.sh up DIR`
//! (the Patroni PostgreSQL cluster of deploy/ha with synchronous
//! replication, anvil with the AuditAnchor contract, three `fhirledger
//! serve` replicas and an HAProxy in front of them, all on 127.0.0.1), then,
//! through the balancer only: the capability statement and readiness, a
//! backend client's token, a Patient created and read back (round robin
//! spreads the reads over the replicas), and a checkpoint covering the
//! create's AuditEvent anchored on the chain. `deploy/loopback.sh down
//! --remove DIR` must then leave nothing running and nothing listening on
//! the balancer's port.
//!
//! Ports are free ones (the balancer's from [`free_port`], the others the
//! script's and deploy/ha's own choice): other test binaries run alongside.

use std::collections::HashMap;
use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use conformance::server::{free_port, server_binary, workspace_root};
use conformance::smart::{BackendClient, Deployment, SigningKey, ALL_SYSTEM_SCOPES};
use conformance::*;
use diesel::{Connection, RunQueryDsl};
use serde_json::{Map, Value};

/// `up` as a whole: the cluster (FHIRLEDGER_HA_START_TIMEOUT below), then
/// the chain, the replicas and the balancer (FHIRLEDGER_LOOPBACK_START_TIMEOUT).
const UP_LIMIT: Duration = Duration::from_secs(150);
/// `down`: the replicas' shutdown, anvil writing its state, Patroni stopping
/// PostgreSQL.
const DOWN_LIMIT: Duration = Duration::from_secs(90);

fn script() -> PathBuf {
    workspace_root().join("deploy/loopback.sh")
}

/// A run of the script: its exit status and what it printed.
struct Run {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    fn describe(&self) -> String {
        let status = self
            .status
            .map_or_else(|| "killed: it ran too long".to_string(), |s| s.to_string());
        format!(
            "{status} after {:.1}s\n--- stdout\n{}\n--- stderr\n{}",
            self.took.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `deploy/loopback.sh ARGS` with `env`, for at most `limit` (then
/// SIGKILL: the guard's `down` stops what it had started). Its output goes
/// to files beside the run directory, so that nothing it leaves running can
/// hold a pipe of ours open.
fn run(args: &[&str], env: &[(&str, String)], out_dir: &Path, limit: Duration) -> Run {
    let name = args.first().copied().unwrap_or("run");
    let stdout_path = out_dir.join(format!("{name}.stdout"));
    let stderr_path = out_dir.join(format!("{name}.stderr"));
    let started = Instant::now();
    let mut child = Command::new(script())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        // Fixed ports would collide with the other test binaries.
        .env_remove("FHIRLEDGER_LOOPBACK_PORT_BASE")
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("the script's stdout file"))
        .stderr(File::create(&stderr_path).expect("the script's stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script().display()));
    let status = loop {
        match child.try_wait().expect("waiting for the script") {
            Some(status) => break Some(status),
            None if started.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    Run {
        status,
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
        took: started.elapsed(),
    }
}

/// The topology in a run directory of its own; `down --remove` when dropped,
/// whatever happened (a failed `up` included), unless the test already took
/// it down.
struct Topology {
    /// Holds the run directory and the script's output files.
    parent: PathBuf,
    dir: PathBuf,
    env: HashMap<String, String>,
    down: bool,
}

impl Topology {
    fn dir_str(&self) -> &str {
        self.dir.to_str().expect("a UTF-8 temporary directory")
    }

    fn down(&mut self) -> Run {
        self.down = true;
        run(
            &["down", "--remove", self.dir_str()],
            &[],
            &self.parent,
            DOWN_LIMIT,
        )
    }

    fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{}/env has no {key}: {:?}", self.dir.display(), self.env))
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if !self.down {
            let run = self.down();
            if !run.ok() {
                eprintln!("deploy/loopback.sh down failed: {}", run.describe());
            }
        }
        let _ = std::fs::remove_dir_all(&self.parent);
    }
}

fn read_env(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The processes whose command line or working directory names `dir`.
fn processes_of(dir: &Path) -> Vec<String> {
    let needle = format!("{}/", dir.display());
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        let cwd = std::fs::read_link(entry.path().join("cwd"))
            .map(|p| format!("{}/", p.display()))
            .unwrap_or_default();
        if cmdline.contains(&needle) || cwd.starts_with(&needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// `GET {fhir}/$ledger-status` through the balancer, as a name → value map.
fn ledger_status(fhir: &str, token: &str) -> Map<String, Value> {
    let response = client()
        .get(format!("{fhir}/$ledger-status"))
        .bearer_auth(token)
        .header("Accept", FHIR_JSON)
        .timeout(Duration::from_secs(10))
        .send()
        .expect("GET $ledger-status through the balancer");
    let status = response.status().as_u16();
    let body: Value = response.json().expect("$ledger-status answers JSON");
    assert_eq!(status, 200, "$ledger-status: {body}");
    let mut map = Map::new();
    for p in body["parameter"].as_array().expect("a Parameters resource") {
        let value = p
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.starts_with("value")))
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null);
        map.insert(p["name"].as_str().expect("a name").to_string(), value);
    }
    map
}

fn number(v: Option<&Value>) -> u64 {
    v.and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)))
        .unwrap_or_else(|| panic!("not a number: {v:?}"))
}

#[derive(diesel::QueryableByName)]
struct Leaf {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// The highest Merkle log leaf index among the AuditEvents about Patient
/// `id` (its create and reads), once the sequencer has given them one.
fn last_leaf_about(conn: &mut diesel::PgConnection, id: &str) -> Option<u64> {
    diesel::sql_query(
        "SELECT coalesce(max(l.leaf_index), -1) AS n FROM audit_events e \
         JOIN merkle_leaves l ON l.resource_type = 'AuditEvent' AND l.resource_id = e.id \
         WHERE e.patient_id = $1",
    )
    .bind::<diesel::sql_types::Text, _>(id)
    .get_result::<Leaf>(conn)
    .ok()
    .and_then(|l| u64::try_from(l.n).ok())
}

/// Polls `check` every 250 ms until it gives a value, for at most `within`.
fn wait_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn get_status(url: &str) -> u16 {
    client()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .map_or(0, |r| r.status().as_u16())
}

#[test]
fn loopback_topology_starts_serves_anchors_and_stops() {
    let started = Instant::now();
    let parent = std::env::temp_dir().join(format!("fhirledger-topology-{}", uid()));
    std::fs::create_dir_all(&parent).expect("the test's temporary directory");
    let mut topology = Topology {
        dir: parent.join("run"),
        parent,
        env: HashMap::new(),
        down: false,
    };
    let lb_port = free_port();

    // 1. Up, with the binary under test and a free port for the balancer.
    let up = run(
        &["up", topology.dir_str()],
        &[
            ("FHIRLEDGER_BIN", server_binary().display().to_string()),
            ("FHIRLEDGER_LOOPBACK_PORT", lb_port.to_string()),
            ("FHIRLEDGER_HA_START_TIMEOUT", "90".to_string()),
            ("FHIRLEDGER_LOOPBACK_START_TIMEOUT", "60".to_string()),
        ],
        &topology.parent,
        UP_LIMIT,
    );
    assert!(up.ok(), "deploy/loopback.sh up failed: {}", up.describe());
    let up_took = up.took;
    topology.env = read_env(&topology.dir.join("env"));
    let base = topology.get("FHIRLEDGER_BASE_URL").to_string();
    assert_eq!(base, format!("http://127.0.0.1:{lb_port}"));
    let fhir = topology.get("FHIR_BASE_URL").to_string();
    assert_eq!(fhir, format!("{base}/fhir"));
    assert!(
        up.stdout.contains(&fhir)
            && up
                .stdout
                .contains(topology.get("FHIRLEDGER_ANCHOR_CONTRACT")),
        "up says what runs where: {}",
        up.stdout
    );
    let key_mode = std::fs::metadata(topology.get("FHIRLEDGER_CHAIN_KEY_FILE"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .expect("the writer's key file");
    assert_eq!(key_mode, 0o600, "the writer's key is the owner's only");

    // 2. Through the balancer: the capability statement and readiness.
    assert_eq!(
        get_status(&format!("{fhir}/metadata")),
        200,
        "GET /fhir/metadata"
    );
    assert_eq!(
        get_status(&format!("{base}/health/ready")),
        200,
        "GET /health/ready"
    );

    // 3. A backend client registered with the CLI against the cluster, its
    // token from the balancer.
    let deployment = Deployment {
        binary: server_binary().to_path_buf(),
        database_url: topology.get("FHIRLEDGER_DATABASE_URL").to_string(),
        public_base: base.clone(),
    };
    let token = BackendClient::register_at(&deployment, ALL_SYSTEM_SCOPES, SigningKey::rs384())
        .token(ALL_SYSTEM_SCOPES);

    // 4. A Patient created and read back, three times (once per replica in
    // round robin).
    let identifier = uid();
    let created = client()
        .post(format!("{fhir}/Patient"))
        .bearer_auth(&token)
        .header("Content-Type", FHIR_JSON)
        .header("Accept", FHIR_JSON)
        .body(patient(&identifier).to_string())
        .send()
        .expect("POST Patient through the balancer");
    assert_eq!(
        created.status().as_u16(),
        201,
        "create: {:?}",
        created.text()
    );
    let created: Value = created.json().expect("the created Patient");
    let id = created["id"]
        .as_str()
        .expect("the Patient's id")
        .to_string();
    let tree_at_create = number(ledger_status(&fhir, &token).get("treeSize"));
    for _ in 0..3 {
        let read = client()
            .get(format!("{fhir}/Patient/{id}"))
            .bearer_auth(&token)
            .header("Accept", FHIR_JSON)
            .send()
            .expect("GET Patient through the balancer");
        assert_eq!(read.status().as_u16(), 200, "read Patient/{id}");
        let read: Value = read.json().expect("the Patient");
        assert_eq!(
            read["identifier"][0]["value"],
            identifier.as_str(),
            "{read}"
        );
    }

    // 5. A checkpoint covering the create: the create's (and the reads')
    // AuditEvents get their leaves, then the anchored size passes them.
    let mut conn = diesel::PgConnection::establish(topology.get("FHIRLEDGER_DATABASE_URL"))
        .expect("the database through the cluster's HAProxy");
    let anchor_from = Instant::now();
    let leaf = wait_for(
        "the Patient's AuditEvents to be in the Merkle log",
        Duration::from_secs(30),
        || last_leaf_about(&mut conn, &id),
    );
    let covered = (leaf + 1).max(tree_at_create);
    let status = wait_for(
        "a checkpoint covering the Patient's create to be anchored",
        Duration::from_secs(60),
        || {
            let st = ledger_status(&fhir, &token);
            (number(st.get("anchoredSize")) >= covered).then_some(st)
        },
    );
    let anchor_took = anchor_from.elapsed();
    assert_eq!(
        status["contract"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some(
            topology
                .get("FHIRLEDGER_ANCHOR_CONTRACT")
                .to_ascii_lowercase()
                .as_str()
        ),
        "anchored on the contract up deployed: {status:?}"
    );
    assert_eq!(
        number(status.get("chainId")),
        topology
            .get("FHIRLEDGER_CHAIN_ID")
            .parse::<u64>()
            .expect("a chain id"),
        "{status:?}"
    );
    assert!(
        matches!(status["worker"].as_str(), Some("anchoring" | "standby")),
        "the anchoring worker: {status:?}"
    );
    drop(conn);

    // 6. Down: nothing of the run directory runs, nothing listens on the
    // balancer's port, and the directory is gone.
    let down = topology.down();
    assert!(
        down.ok(),
        "deploy/loopback.sh down --remove failed: {}",
        down.describe()
    );
    let left = processes_of(&topology.dir);
    assert!(left.is_empty(), "still running after down: {left:#?}");
    let addr = SocketAddr::from(([127, 0, 0, 1], lb_port));
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
        "something still listens on the balancer's port {lb_port}"
    );
    assert!(
        !topology.dir.exists(),
        "down --remove leaves {}",
        topology.dir.display()
    );

    println!(
        "loopback topology: up {:.1}s, anchored (leaf {leaf}, anchoredSize {}) {:.1}s after the create, \
         down {:.1}s, whole test {:.1}s",
        up_took.as_secs_f64(),
        number(status.get("anchoredSize")),
        anchor_took.as_secs_f64(),
        down.took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
