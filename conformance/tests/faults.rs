//! Fault tests on the production topology, on loopback: a two-node
//! PostgreSQL cluster managed by Patroni with synchronous replication
//! (`deploy/ha/start.sh`: etcd, Patroni, HAProxy to the leader), three
//! `fhirledger serve` replicas on it, and an HAProxy in front of them that
//! health-checks `/health/ready` and retries what never reached a replica.
//! Clients create, read and search through that balancer while
//!
//! 1. one replica is killed with SIGKILL: the others carry on, and no
//!    client sees an error beyond the requests that replica had in flight;
//! 2. the PostgreSQL leader's postmaster is killed with SIGKILL: Patroni
//!    promotes the synchronous standby, the replicas reconnect by
//!    themselves (no restart), and every create a client saw acknowledged
//!    is in the database afterwards with its AuditEvent and the event's
//!    Merkle log leaf;
//! 3. the audit trail stalls (a transaction holds a lock on `audit_events`
//!    longer than `FHIRLEDGER_AUDIT_TIMEOUT_SECONDS`): reads get 503 with
//!    `Retry-After`, every answer served with data has its AuditEvent, and
//!    the replicas serve again by themselves once the lock is gone.
//!
//! The figures (requests, errors, recovery time, writes checked) are
//! printed for RELIABILITY.md.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conformance::server::{free_port, start_server_on, workspace_root, TestServer};
use conformance::smart::{BackendClient, Deployment, SigningKey, ALL_SYSTEM_SCOPES};
use conformance::*;
use diesel::{Connection, RunQueryDsl};

/// The HA cluster of `deploy/ha`, stopped and removed when dropped.
struct Ha {
    dir: PathBuf,
    env: HashMap<String, String>,
}

impl Ha {
    fn start() -> Ha {
        let dir = std::env::temp_dir().join(format!("fhirledger-faults-{}", uid()));
        let out = Command::new(workspace_root().join("deploy/ha/start.sh"))
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("deploy/ha/start.sh runs");
        let ha = Ha {
            env: std::fs::read_to_string(dir.join("env"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dir,
        };
        assert!(
            out.status.success() && ha.env.contains_key("DATABASE_URL"),
            "deploy/ha/start.sh failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ha
    }

    fn database_url(&self) -> &str {
        &self.env["DATABASE_URL"]
    }

    /// The leading node (1 or 2), from Patroni's REST API.
    fn leader(&self) -> Option<usize> {
        (1..=2).find(|n| {
            client()
                .get(format!("{}/primary", self.env[&format!("NODE{n}_REST")]))
                .timeout(Duration::from_secs(2))
                .send()
                .is_ok_and(|r| r.status().as_u16() == 200)
        })
    }

    /// Kills the leader's postmaster outright; which node it was.
    fn kill_leader_postmaster(&self) -> usize {
        let leader = self.leader().expect("a leader");
        let pid_file = self.dir.join(format!("node{leader}/data/postmaster.pid"));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("the leader's postmaster.pid")
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("a pid");
        // SAFETY: SIGKILL to the postmaster of the cluster this test started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        leader
    }
}

impl Drop for Ha {
    fn drop(&mut self) {
        let _ = Command::new(workspace_root().join("deploy/ha/stop.sh"))
            .arg("--remove")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output();
    }
}

/// HAProxy in front of the replicas, as deploy/lb/haproxy.cfg sets it up.
struct Balancer {
    child: Child,
    port: u16,
    _dir: PathBuf,
}

impl Balancer {
    fn start(port: u16, replicas: &[&TestServer], dir: &Path) -> Balancer {
        std::fs::create_dir_all(dir).expect("the balancer's directory");
        let servers: String = replicas
            .iter()
            .enumerate()
            .map(|(i, r)| format!("    server r{i} {} check\n", r.bind))
            .collect();
        let config = format!(
            "global\n    maxconn 4096\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n\
             \x20   timeout server 60s\n    timeout check 3s\n    retries 3\n\
             \x20   option redispatch 1\n    retry-on conn-failure empty-response response-timeout\n\
             frontend fhir\n    bind 127.0.0.1:{port}\n    default_backend replicas\n\
             backend replicas\n    balance roundrobin\n    option forwardfor\n\
             \x20   http-request disable-l7-retry unless METH_GET\n\
             \x20   option httpchk GET /health/ready\n\
             \x20   default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 1 observe layer4 error-limit 1 on-error mark-down\n\
             {servers}"
        );
        let path = dir.join("haproxy.cfg");
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(config.as_bytes()))
            .expect("the balancer's configuration");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy starts (Debian package haproxy)");
        let balancer = Balancer {
            child,
            port,
            _dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !balancer.all_up(replicas.len()) {
            assert!(Instant::now() < deadline, "the balancer did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        balancer
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every replica answered a few readiness checks through it.
    fn all_up(&self, replicas: usize) -> bool {
        (0..replicas * 2).all(|_| {
            client()
                .get(format!("{}/health/ready", self.base()))
                .timeout(Duration::from_secs(3))
                .send()
                .is_ok_and(|r| r.status().as_u16() == 200)
        })
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the load generator saw.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    errors: Mutex<Vec<(Instant, String)>>,
    /// Every request's start and duration.
    timings: Mutex<Vec<(Instant, Duration)>>,
    /// Acknowledged creates: (Patient id, request id), with when.
    created: Mutex<Vec<(String, String, Instant)>>,
    /// Every answer with data (2xx): its request id, and when it was sent.
    served: Mutex<Vec<(String, Instant)>>,
}

impl Seen {
    fn acknowledged(&self) -> usize {
        self.created.lock().map(|c| c.len()).unwrap_or(0)
    }

    fn acknowledged_since(&self, at: Instant) -> usize {
        self.created
            .lock()
            .map(|c| c.iter().filter(|(_, _, t)| *t > at).count())
            .unwrap_or(0)
    }

    /// The longest a request started in `from..to` took: how long clients
    /// waited through an outage that the replicas rode out.
    fn slowest_between(&self, from: Instant, to: Instant) -> Duration {
        self.timings
            .lock()
            .map(|t| {
                t.iter()
                    .filter(|(start, _)| *start >= from && *start <= to)
                    .map(|(_, took)| *took)
                    .max()
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// The median and 99th percentile time of the requests started in
    /// `from..to`, in milliseconds.
    fn latency_ms(&self, from: Instant, to: Instant) -> (f64, f64) {
        let mut took: Vec<Duration> = self
            .timings
            .lock()
            .map(|t| {
                t.iter()
                    .filter(|(start, _)| *start >= from && *start <= to)
                    .map(|(_, took)| *took)
                    .collect()
            })
            .unwrap_or_default();
        took.sort();
        let at = |q: f64| {
            took.get(((took.len() as f64 - 1.0) * q).round() as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        (at(0.5), at(0.99))
    }

    /// When clients last saw an error after `at`: the end of an outage as
    /// they saw it (none: they did not notice one).
    fn last_error_after(&self, at: Instant) -> Option<Instant> {
        self.errors
            .lock()
            .ok()?
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| *t >= at)
            .max()
    }

    /// The errors clients saw in `from..=to`.
    fn errors_in(&self, from: Instant, to: Instant) -> Vec<String> {
        self.errors
            .lock()
            .map(|e| {
                e.iter()
                    .filter(|(t, _)| *t >= from && *t <= to)
                    .map(|(_, what)| what.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn errors_between(&self, from: Instant, to: Instant) -> usize {
        self.errors
            .lock()
            .map(|e| e.iter().filter(|(t, _)| *t >= from && *t <= to).count())
            .unwrap_or(0)
    }
}

/// One client: creates, reads what it created, and searches by identifier,
/// through the balancer, until `stop`; `pace` apart (a steady load rather
/// than the most the machine can take, where the trail it leaves must be
/// verified afterwards).
fn client_loop(
    base: String,
    token: String,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    n: usize,
    pace: Duration,
) {
    let mut mine: Vec<String> = Vec::new();
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let request_id = format!("fault-{n}-{i}-{}", uid());
        let identifier = uid();
        let builder = match i % 3 {
            0 if !mine.is_empty() => {
                client().get(format!("{base}/fhir/Patient/{}", mine[i % mine.len()]))
            }
            1 if !mine.is_empty() => client().get(format!(
                "{base}/fhir/Patient?identifier={ID_SYSTEM}|{}",
                mine[i % mine.len()]
            )),
            _ => client()
                .post(format!("{base}/fhir/Patient"))
                .header("Content-Type", FHIR_JSON)
                .body(patient(&identifier).to_string()),
        };
        let creating = i % 3 == 2 || mine.is_empty();
        let started = Instant::now();
        let sent = builder
            .bearer_auth(&token)
            .header("X-Request-Id", &request_id)
            .timeout(Duration::from_secs(30))
            .send();
        seen.requests.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut t) = seen.timings.lock() {
            t.push((started, started.elapsed()));
        }
        if !pace.is_zero() {
            std::thread::sleep(pace);
        }
        match sent {
            Ok(resp) if resp.status().is_success() => {
                if let Ok(mut s) = seen.served.lock() {
                    s.push((request_id.clone(), started));
                }
                if creating {
                    let body: serde_json::Value = resp.json().unwrap_or_default();
                    if let Some(id) = body["id"].as_str() {
                        mine.push(id.to_string());
                        if let Ok(mut c) = seen.created.lock() {
                            c.push((id.to_string(), request_id, Instant::now()));
                        }
                    }
                }
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("Retry-After")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_string();
                if let Ok(mut e) = seen.errors.lock() {
                    e.push((
                        Instant::now(),
                        format!(
                            "{status} retry-after={retry_after} {}",
                            resp.text().unwrap_or_default()
                        ),
                    ));
                }
                // A 503 says when to come back; the balancer had no replica.
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => {
                if let Ok(mut errors) = seen.errors.lock() {
                    errors.push((Instant::now(), e.to_string()));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Six clients through the balancer at `base`, with a system token of a
/// backend client registered on `database_url`.
struct Load {
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(database_url: &str, base: &str, pace: Duration) -> Load {
        let deployment = Deployment {
            binary: conformance::server::server_binary().to_path_buf(),
            database_url: database_url.to_string(),
            public_base: base.to_string(),
        };
        let token = BackendClient::register_at(&deployment, ALL_SYSTEM_SCOPES, SigningKey::rs384())
            .token(ALL_SYSTEM_SCOPES);
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..6)
            .map(|n| {
                let (base, token, seen, stop) =
                    (base.to_string(), token.clone(), seen.clone(), stop.clone());
                std::thread::spawn(move || client_loop(base, token, seen, stop, n, pace))
            })
            .collect();
        Load {
            seen,
            stop,
            clients,
        }
    }

    /// Stops the clients and waits for them.
    fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        for c in self.clients {
            c.join().expect("a client");
        }
    }
}

/// Waits (bounded) until `ready`.
fn wait_until(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(diesel::QueryableByName)]
struct Found {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    versions: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    events: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    leaves: i64,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// The acknowledged creates that are not in the database with their
/// AuditEvent (found by the request id the client sent) and that event's
/// Merkle log leaf; call once the sequencer has caught up.
fn lost_writes(
    conn: &mut diesel::PgConnection,
    created: &[(String, String, Instant)],
) -> Vec<String> {
    let mut lost = Vec::new();
    for (id, request_id, _) in created {
        let found: Found = diesel::sql_query(
            "SELECT \
               (SELECT count(*) FROM resources WHERE resource_type = 'Patient' AND id = $1) AS versions, \
               (SELECT count(*) FROM audit_events e \
                 WHERE e.patient_id = $1 AND strpos(e.content, $2) > 0) AS events, \
               (SELECT count(*) FROM audit_events e JOIN merkle_leaves l \
                  ON l.resource_type = 'AuditEvent' AND l.resource_id = e.id \
                 WHERE e.patient_id = $1 AND strpos(e.content, $2) > 0) AS leaves",
        )
        .bind::<diesel::sql_types::Text, _>(id)
        .bind::<diesel::sql_types::Text, _>(request_id)
        .get_result(conn)
        .expect("the check of one create");
        if found.versions != 1 || found.events != 1 || found.leaves != 1 {
            lost.push(format!(
                "Patient/{id} ({request_id}): {} versions, {} events, {} leaves",
                found.versions, found.events, found.leaves
            ));
        }
    }
    lost
}

/// Waits until no leaf is pending.
fn sequenced(conn: &mut diesel::PgConnection) {
    wait_until(
        "the sequencer to catch up",
        Duration::from_secs(120),
        || {
            diesel::sql_query("SELECT count(*) AS n FROM merkle_pending")
                .get_result::<Count>(conn)
                .is_ok_and(|c| c.n == 0)
        },
    );
}

/// One topology at a time: each starts several replicas on two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn a_replica_or_the_database_leader_killed_under_load_loses_no_acknowledged_write() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let ha = Ha::start();
    let url = ha.database_url().to_string();
    // The replicas share the balancer's address as their public base, as a
    // deployment's do: a token any of them issues is good at all of them.
    let lb_port = free_port();
    let base = format!("http://127.0.0.1:{lb_port}");
    let env = |_: &str| {
        vec![
            ("FHIRLEDGER_BASE_URL".to_string(), base.clone()),
            (
                "FHIRLEDGER_TRUSTED_PROXIES".to_string(),
                "127.0.0.1".to_string(),
            ),
            ("FHIRLEDGER_SHUTDOWN_SECONDS".to_string(), "5".to_string()),
            (
                "FHIRLEDGER_AUDIT_TIMEOUT_SECONDS".to_string(),
                "3".to_string(),
            ),
        ]
    };
    let replicas: Vec<TestServer> = (0..3).map(|_| start_server_on(&url, env)).collect();
    let refs: Vec<&TestServer> = replicas.iter().collect();
    let balancer = Balancer::start(lb_port, &refs, &ha.dir.join("lb"));
    let load = Load::start(&url, &base, Duration::ZERO);
    let seen = load.seen.clone();
    let wait = Duration::from_secs(120);
    wait_until("the first 100 creates", wait, || seen.acknowledged() >= 100);

    // 1. One replica killed outright.
    let killed_at = Instant::now();
    // SAFETY: SIGKILL to a server this test started.
    unsafe {
        libc::kill(replicas[1].pid() as libc::pid_t, libc::SIGKILL);
    }
    wait_until("100 creates after the replica's death", wait, || {
        seen.acknowledged_since(killed_at) >= 100
    });
    let replica_phase_end = Instant::now();
    let replica_errors = seen.errors_between(killed_at, replica_phase_end);

    // 2. The PostgreSQL leader killed outright.
    let leader_killed_at = Instant::now();
    let leader = ha.kill_leader_postmaster();
    wait_until("creates after the failover", wait, || {
        seen.acknowledged_since(leader_killed_at) >= 100
    });
    let outage = seen
        .last_error_after(leader_killed_at)
        .map_or(Duration::ZERO, |t| t - leader_killed_at);
    let slowest = seen.slowest_between(
        leader_killed_at - Duration::from_secs(1),
        leader_killed_at + Duration::from_secs(10),
    );
    let new_leader = ha.leader();
    let failover_errors = seen.errors_between(leader_killed_at, Instant::now());

    // 3. The audit trail stalls: a transaction holds a lock that blocks the
    // audit writers' appends for longer than the replicas' audit timeout.
    let mut conn = diesel::PgConnection::establish(&url).expect("the database after failover");
    let stalled_at = Instant::now();
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        "BEGIN; LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE",
    )
    .expect("the trail locked");
    // Released at the first refusal: creates wait for the lock inside their
    // own transaction, and a stall longer than the clients' 30 s timeout
    // (seen once in CI while waiting for six refusals) cuts them client-side.
    wait_until("reads refused while the trail stalls", wait, || {
        seen.errors_in(stalled_at, Instant::now())
            .iter()
            .filter(|e| e.starts_with("503"))
            .count()
            >= 1
    });
    diesel::connection::SimpleConnection::batch_execute(&mut conn, "ROLLBACK")
        .expect("the trail released");
    let released_at = Instant::now();
    wait_until("creates after the trail is released", wait, || {
        seen.acknowledged_since(released_at) >= 30
    });
    let recovered = seen
        .last_error_after(released_at)
        .map_or(Duration::ZERO, |t| t - released_at);
    load.finish();
    let stall_errors = seen.errors_in(stalled_at, released_at + recovered);
    // Every refusal is a 503 that says when to come back.
    let unexpected: Vec<&String> = stall_errors
        .iter()
        .filter(|e| !e.starts_with("503 retry-after=2 "))
        .collect();
    assert!(
        unexpected.is_empty(),
        "errors other than 503 with Retry-After while the trail stalled: {unexpected:#?}"
    );
    assert!(replicas[0].is_running() && replicas[2].is_running());
    assert_ne!(new_leader, Some(leader), "Patroni promoted the standby");

    // Every acknowledged create: its version, its AuditEvent (found by the
    // request id the client sent) and the event's leaf, once sequenced.
    sequenced(&mut conn);
    // Nothing was served unaudited while the trail stalled: every answer
    // with data sent from just before the lock to the recovery has its event.
    let served_in_stall: Vec<String> = seen
        .served
        .lock()
        .map(|s| {
            s.iter()
                .filter(|(_, t)| {
                    *t >= stalled_at - Duration::from_secs(1) && *t <= released_at + recovered
                })
                .map(|(id, _)| id.clone())
                .collect()
        })
        .unwrap_or_default();
    // Of those, the ones sent while the lock was held (none could be
    // answered before the release unless its event was committed).
    let sent_in_stall = seen
        .served
        .lock()
        .map(|s| {
            s.iter()
                .filter(|(_, t)| *t >= stalled_at && *t <= released_at)
                .count()
        })
        .unwrap_or(0);
    let unaudited: Vec<&String> = served_in_stall
        .iter()
        .filter(|request_id| {
            diesel::sql_query(
                "SELECT count(*) AS n FROM audit_events WHERE terms @> ARRAY[$1]::text[]",
            )
            .bind::<diesel::sql_types::Text, _>(format!("entity:identifier=|{request_id}"))
            .get_result::<Count>(&mut conn)
            .map_or(true, |c| c.n == 0)
        })
        .collect();
    assert!(
        unaudited.is_empty(),
        "served without an AuditEvent while the trail stalled: {unaudited:#?}"
    );
    let created = seen.created.lock().map(|c| c.clone()).unwrap_or_default();
    let lost = lost_writes(&mut conn, &created);
    let requests = seen.requests.load(Ordering::SeqCst);
    let errors = seen.errors.lock().map(|e| e.len()).unwrap_or(0);
    println!(
        "faults: {requests} requests, {errors} errors; replica killed: {replica_errors} errors; \
         leader (node{leader}) killed: last client error {:.2} s after the kill, slowest request {:.2} s, {failover_errors} errors; \
         trail stalled {:.2} s: {} refusals (503), {} answers with data sent from 1 s before the lock to the recovery ({} sent under the lock) all audited, last error {:.2} s after release; \
         {} acknowledged creates checked, {} lost",
        outage.as_secs_f64(),
        slowest.as_secs_f64(),
        (released_at - stalled_at).as_secs_f64(),
        stall_errors.len(),
        served_in_stall.len(),
        sent_in_stall,
        recovered.as_secs_f64(),
        created.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:#?}");
    // The replica's death costs at most what it had in flight (six clients).
    assert!(
        replica_errors <= 6,
        "{:#?}",
        seen.errors.lock().map(|e| e.clone()).unwrap_or_default()
    );
    drop(balancer);
    for r in [&replicas[0], &replicas[2]] {
        r.stop();
    }
}

/// `fhirledger …` against `database_url`; its JSON output, or a panic.
fn fhirledger_json(args: &[&str], database_url: &str) -> (bool, serde_json::Value, String) {
    let out = Command::new(conformance::server::server_binary())
        .args(args)
        .env("FHIRLEDGER_DATABASE_URL", database_url)
        .env("FHIRLEDGER_LOG", "warn")
        .output()
        .expect("fhirledger runs");
    (
        out.status.success(),
        serde_json::from_slice(&out.stdout).unwrap_or_default(),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The log's size and the last anchored checkpoint's size.
fn log_and_anchored(conn: &mut diesel::PgConnection) -> (i64, i64) {
    #[derive(diesel::QueryableByName)]
    struct Sizes {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        tree: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        anchored: i64,
    }
    diesel::sql_query(
        "SELECT (SELECT COALESCE(max(tree_size), 0) FROM merkle_head) AS tree, \
                (SELECT COALESCE(max(tree_size), 0) FROM merkle_checkpoints) AS anchored",
    )
    .get_result::<Sizes>(conn)
    .map(|s| (s.tree, s.anchored))
    .unwrap_or((0, 0))
}

#[test]
fn the_chain_down_for_a_minute_and_every_replica_killed_at_once_lose_nothing_and_anchoring_resumes_with_no_gap(
) {
    use conformance::anvil::{Anvil, DEV_KEY_0};
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    const CHAIN_ID: u64 = 31_415;
    let dir = std::env::temp_dir().join(format!("fhirledger-faults-chain-{}", uid()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let mut anvil = Anvil::start(CHAIN_ID, Some(dir.join("anvil-state.json")));
    let key_file = dir.join("writer.key");
    std::fs::write(&key_file, format!("{DEV_KEY_0}\n")).expect("the writer key");
    let url = conformance::server::fresh_database("faults_chain");
    let (ok, deployed, out) = fhirledger_json(
        &[
            "chain",
            "deploy",
            "--rpc-url",
            &anvil.url(),
            "--chain-id",
            &CHAIN_ID.to_string(),
            "--key-file",
            &key_file.to_string_lossy(),
        ],
        &url,
    );
    assert!(ok, "chain deploy: {out}");
    let contract = deployed["contract"]
        .as_str()
        .expect("a contract")
        .to_string();

    let lb_port = free_port();
    let base = format!("http://127.0.0.1:{lb_port}");
    // The node comes back on the same port.
    let rpc_url = anvil.url();
    let env = |_: &str| {
        [
            ("FHIRLEDGER_BASE_URL", base.clone()),
            ("FHIRLEDGER_TRUSTED_PROXIES", "127.0.0.1".to_string()),
            ("FHIRLEDGER_CHAIN_RPC_URL", rpc_url.clone()),
            ("FHIRLEDGER_CHAIN_ID", CHAIN_ID.to_string()),
            ("FHIRLEDGER_ANCHOR_CONTRACT", contract.clone()),
            (
                "FHIRLEDGER_CHAIN_KEY_FILE",
                key_file.to_string_lossy().into_owned(),
            ),
            ("FHIRLEDGER_ANCHOR_INTERVAL", "1s".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect::<Vec<_>>()
    };
    let replicas: Vec<TestServer> = (0..3).map(|_| start_server_on(&url, env)).collect();
    let balancer = Balancer::start(
        lb_port,
        &replicas.iter().collect::<Vec<_>>(),
        &dir.join("lb"),
    );
    let load_started = Instant::now();
    let load = Load::start(&url, &base, Duration::from_millis(200));
    let seen = load.seen.clone();
    let wait = Duration::from_secs(120);
    let mut conn = diesel::PgConnection::establish(&url).expect("the database");
    wait_until("the first anchored checkpoint under load", wait, || {
        log_and_anchored(&mut conn).1 > 0
    });

    // 1. The chain node stopped for a minute: requests go on as before.
    let before = seen.requests.load(Ordering::SeqCst);
    let chain_stopped = Instant::now();
    anvil.stop();
    let anchored_when_stopped = log_and_anchored(&mut conn).1;
    std::thread::sleep(Duration::from_secs(60)); // the outage itself, not a synchronisation
    let during = seen.requests.load(Ordering::SeqCst) - before;
    let errors_while_chain_down = seen.errors_between(chain_stopped, Instant::now());
    // The API's speed: request times before the outage and during it.
    let (p50_before, p99_before) = seen.latency_ms(load_started, chain_stopped);
    let (p50_down, p99_down) = seen.latency_ms(chain_stopped, Instant::now());
    let (tree_when_back, anchored_when_back) = log_and_anchored(&mut conn);
    anvil.restart();
    let chain_back = Instant::now();
    wait_until("anchoring to catch up", wait, || {
        let (tree, anchored) = log_and_anchored(&mut conn);
        anchored >= tree_when_back && tree > 0 && anchored > anchored_when_back
    });
    let caught_up_after = chain_back.elapsed();

    // 2. Every replica killed at once, then started again.
    let created_before_restart = seen.acknowledged();
    for r in &replicas {
        // SAFETY: SIGKILL to servers this test started.
        unsafe {
            libc::kill(r.pid() as libc::pid_t, libc::SIGKILL);
        }
    }
    drop(balancer);
    let all_down = Instant::now();
    let replicas: Vec<TestServer> = (0..3).map(|_| start_server_on(&url, env)).collect();
    let balancer = Balancer::start(
        lb_port,
        &replicas.iter().collect::<Vec<_>>(),
        &dir.join("lb"),
    );
    let restarted_after = all_down.elapsed();
    wait_until("100 creates after the restart", wait, || {
        seen.acknowledged_since(all_down) >= 100
    });
    let (tree_after_restart, _) = log_and_anchored(&mut conn);
    wait_until("anchoring to resume after the restart", wait, || {
        log_and_anchored(&mut conn).1 >= tree_after_restart
    });
    load.finish();

    sequenced(&mut conn);
    let created = seen.created.lock().map(|c| c.clone()).unwrap_or_default();
    let lost = lost_writes(&mut conn, &created);
    // Everything anchored so far checks out against the chain: no gap, no
    // checkpoint that disagrees with the log.
    wait_until("the last leaves anchored", wait, || {
        let (tree, anchored) = log_and_anchored(&mut conn);
        anchored == tree
    });
    let (verified, report, out) = fhirledger_json(
        &[
            "audit",
            "verify",
            "--rpc-url",
            &anvil.url(),
            "--contract",
            &contract,
            "--chain-id",
            &CHAIN_ID.to_string(),
            "--json",
        ],
        &url,
    );
    let requests = seen.requests.load(Ordering::SeqCst);
    let errors = seen.errors.lock().map(|e| e.len()).unwrap_or(0);
    println!(
        "faults (chain, restart): {requests} requests, {errors} errors; chain down 60 s: \
         {during} requests meanwhile, {errors_while_chain_down} errors, request time p50/p99 \
         {p50_before:.1}/{p99_before:.1} ms before and {p50_down:.1}/{p99_down:.1} ms while down, anchored size held at \
         {anchored_when_stopped}..{anchored_when_back} while the log reached {tree_when_back}, \
         caught up {:.1} s after the chain was back; all replicas killed: serving again after \
         {:.1} s; {} acknowledged creates checked ({created_before_restart} before the restart), \
         {} lost; audit verify: {}",
        caught_up_after.as_secs_f64(),
        restarted_after.as_secs_f64(),
        created.len(),
        lost.len(),
        report["summary"].as_str().unwrap_or(&out),
    );
    assert_eq!(
        errors_while_chain_down, 0,
        "the chain's outage reached clients"
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:#?}");
    assert!(verified, "audit verify failed: {out}");
    drop(balancer);
    for r in &replicas {
        r.stop();
    }
    anvil.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
