//! What a load balancer and an orchestrator rely on: `/health/live` and
//! `/health/ready` (application/health+json, no token), a replica that
//! loses its database staying alive but leaving the balancer's rotation
//! until the database is back, then serving again without a restart, a
//! stop (SIGTERM) that lets the requests in flight finish, audited, within
//! `FHIRLEDGER_SHUTDOWN_SECONDS` and exits 0, replicas started together on
//! a new database, and the client's address behind a trusted balancer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use conformance::balp::recorded_events;
use conformance::server::{free_port, start_server_on, start_server_with, TestServer};
use conformance::*;
use fhirledger_postgres::cluster::{ClusterConfig, PrivateCluster};
use serde_json::Value;

/// A probe's answer: status, `Retry-After`, body.
fn probe(s: &'static TestServer, which: &str) -> (u16, Option<String>, Value) {
    let resp = Request::on(s, "GET", &format!("{}/health/{which}", s.public_base))
        .no_auth()
        .send();
    assert_eq!(
        resp.media_type(),
        "application/health+json",
        "{}",
        resp.describe()
    );
    assert_eq!(resp.header("Cache-Control").as_deref(), Some("no-store"));
    (resp.status, resp.header("Retry-After"), resp.json())
}

/// The one measurement of `check` in a health answer.
fn check<'a>(body: &'a Value, name: &str) -> &'a Value {
    let c = &body["checks"][name][0];
    assert!(c.is_object(), "no check {name} in {body:#}");
    c
}

fn leak(s: TestServer) -> &'static TestServer {
    Box::leak(Box::new(s))
}

#[test]
fn the_probes_answer_without_a_token_and_report_each_part() {
    let s = server();
    let (status, _, live) = probe(s, "live");
    assert_eq!(status, 200, "{live:#}");
    assert_eq!(live["status"], "pass", "{live:#}");
    assert_eq!(check(&live, "audit:writers")["status"], "pass");
    assert_eq!(check(&live, "audit:writers")["observedValue"], 1);

    // Something to sequence, so the sequencer has had work.
    new_patient();
    let (status, retry, ready) = probe(s, "ready");
    assert_eq!(status, 200, "{ready:#}");
    assert_eq!(retry, None);
    assert_eq!(check(&ready, "postgresql:connection")["status"], "pass");
    let migrations = check(&ready, "postgresql:migrations");
    assert_eq!(migrations["status"], "pass", "{ready:#}");
    assert_eq!(migrations["observedValue"], 0);
    assert_eq!(check(&ready, "merkle-log:sequencer")["observedValue"], 0);
    // This server anchors nowhere: reported as a warning, never unready.
    let anchoring = check(&ready, "chain:anchoring-lag");
    assert_eq!(anchoring["status"], "warn", "{ready:#}");
    assert_eq!(anchoring["worker"], "waiting-for-chain");
    assert!(anchoring["treeSize"].as_u64().is_some(), "{ready:#}");
    assert_eq!(ready["status"], "warn");

    // HEAD for balancers that only look at the status.
    let head = Request::on(s, "HEAD", &format!("{}/health/ready", s.public_base))
        .no_auth()
        .send();
    assert_eq!(head.status, 200);
}

/// A PostgreSQL cluster of the test's own, on a fixed port so it comes back
/// where the server looks for it; stopped and removed when dropped.
struct OwnCluster {
    config: ClusterConfig,
    cluster: Option<PrivateCluster>,
    dir: PathBuf,
}

impl OwnCluster {
    fn start() -> OwnCluster {
        let dir = std::env::temp_dir().join(format!("fhirledger-health-{}", uid()));
        std::fs::create_dir_all(&dir).expect("a directory for the cluster");
        // The cluster runs as `postgres` when the tests run as root.
        let _ = std::fs::set_permissions(
            &dir,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
        );
        let mut config = ClusterConfig::new(dir.join("cluster"));
        config.port = Some(free_port());
        config.no_sync = true;
        config.extra_settings = vec!["fsync = off".into(), "synchronous_commit = off".into()];
        let cluster = PrivateCluster::start(&config).expect("a private cluster");
        OwnCluster {
            config,
            cluster: Some(cluster),
            dir,
        }
    }

    fn url(&self) -> String {
        self.cluster.as_ref().expect("running").database_url()
    }

    fn stop(&mut self) {
        if let Some(c) = self.cluster.take() {
            c.stop().expect("the cluster stops");
        }
    }

    fn restart(&mut self) {
        self.cluster = Some(PrivateCluster::start(&self.config).expect("the cluster restarts"));
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        if let Some(c) = self.cluster.take() {
            let _ = c.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_replica_that_loses_its_database_stays_alive_leaves_rotation_and_comes_back_by_itself() {
    let mut db = OwnCluster::start();
    let s = leak(start_server_on(&db.url(), |_| Vec::new()));
    let token = s.token().to_string();
    let created = Request::on(s, "POST", "Patient")
        .bearer(&token)
        .json(&patient(&uid()))
        .send();
    created.assert_status(201);
    let id = id_of(&created.json());
    assert_eq!(probe(s, "ready").0, 200);

    db.stop();
    // Alive (a restart would not help), not ready (send requests elsewhere).
    let (status, _, live) = probe(s, "live");
    assert_eq!(status, 200, "{live:#}");
    let (status, retry, ready) = probe(s, "ready");
    assert_eq!(status, 503, "{ready:#}");
    assert_eq!(retry.as_deref(), Some("2"));
    assert_eq!(ready["status"], "fail");
    assert_eq!(check(&ready, "postgresql:connection")["status"], "fail");
    // A request that reaches it anyway: 503 with Retry-After and an
    // OperationOutcome, nothing served.
    let refused = Request::on(s, "GET", &format!("Patient/{id}"))
        .bearer(&token)
        .send();
    refused.assert_status(503);
    assert_eq!(refused.header("Retry-After").as_deref(), Some("2"));
    assert_eq!(refused.json()["resourceType"], "OperationOutcome");
    assert!(s.is_running(), "{}", s.log_tail(40));

    db.restart();
    // Ready again by itself: the pool and the audit writer reconnect.
    let deadline = Instant::now() + Duration::from_secs(60);
    while probe(s, "ready").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready a minute after the database came back:\n{}",
            s.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let read = Request::on(s, "GET", &format!("Patient/{id}"))
        .bearer(&token)
        .header("X-Request-Id", "health-after-restart")
        .send();
    read.assert_status(200);
    s.stop();
}

/// A POST whose headers have arrived (the server answered `100 Continue`,
/// so its handler runs) and whose body has not.
struct HeldRequest {
    stream: TcpStream,
    body: Vec<u8>,
}

impl HeldRequest {
    fn open(s: &TestServer, token: &str, request_id: &str, resource: &Value) -> HeldRequest {
        let body = resource.to_string().into_bytes();
        let mut stream = TcpStream::connect(&s.bind).expect("a connection to the server");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("a read timeout");
        let head = format!(
            "POST /fhir/Patient HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/fhir+json\r\nContent-Length: {}\r\n\
             X-Request-Id: {request_id}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            s.bind,
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("the request head");
        let interim = read_head(&mut stream);
        assert!(
            interim.starts_with("HTTP/1.1 100"),
            "expected 100 Continue, got {interim:?}"
        );
        HeldRequest { stream, body }
    }

    /// Sends the body; the status line and the rest of the answer.
    fn finish(mut self) -> String {
        self.stream.write_all(&self.body).expect("the request body");
        let mut answer = Vec::new();
        let _ = self.stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// What the server sent when the request was never completed.
    fn abandoned(mut self) -> String {
        let mut answer = Vec::new();
        let _ = self.stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }
}

/// Reads up to the end of one response head.
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Waits until the server has logged that it is stopping, and no longer
/// accepts connections.
fn wait_until_stopping(s: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logged = s
            .log_tail(50)
            .contains("stopping: finishing the requests in flight");
        if logged && TcpStream::connect(&s.bind).is_err() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not start stopping:\n{}",
            s.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stop_finishes_the_requests_in_flight_with_their_audit_events_and_exits_0() {
    let s = leak(start_server_with(|_| {
        vec![("FHIRLEDGER_SHUTDOWN_SECONDS".into(), "30".into())]
    }));
    let token = s.token().to_string();
    let identifier = uid();
    let request_id = format!("health-stop-{}", uid());
    let held = HeldRequest::open(s, &token, &request_id, &patient(&identifier));

    let stopping = std::thread::spawn(move || s.stop());
    wait_until_stopping(s);
    // The request that was in flight when the stop began completes.
    let answer = held.finish();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let status = stopping.join().expect("the stop");
    assert_eq!(status, "exit status: 0", "{}", s.log_tail(40));
    assert!(s.log_tail(20).contains("fhirledger stopped"));

    // On the shared server (same database): the Patient and its event.
    let found = get(&format!("Patient?identifier={ID_SYSTEM}|{identifier}")).send();
    found.assert_status(200);
    assert_eq!(found.json()["total"], 1, "{}", found.text());
    let events = recorded_events(&request_id);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["action"], "C");
}

#[test]
fn a_stop_that_outlasts_its_time_cuts_what_is_left_and_still_exits_0() {
    let s = leak(start_server_with(|_| {
        vec![("FHIRLEDGER_SHUTDOWN_SECONDS".into(), "2".into())]
    }));
    let token = s.token().to_string();
    let identifier = uid();
    let held = HeldRequest::open(
        s,
        &token,
        &format!("health-cut-{}", uid()),
        &patient(&identifier),
    );

    let started = Instant::now();
    let status = s.stop();
    let took = started.elapsed();
    assert_eq!(status, "exit status: 0", "{}", s.log_tail(40));
    // The two seconds, not the harness's 30 before it kills.
    assert!(took < Duration::from_secs(15), "the stop took {took:?}");
    // The client never completed its request: no answer, nothing stored.
    let answer = held.abandoned();
    assert!(!answer.contains("HTTP/1.1 2"), "{answer}");
    let found = get(&format!("Patient?identifier={ID_SYSTEM}|{identifier}")).send();
    assert_eq!(found.json()["total"], 0, "{}", found.text());
}

#[test]
fn replicas_started_together_on_a_new_database_take_turns_and_all_serve() {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, RunQueryDsl};
    let url = conformance::server::fresh_database("replicas_together");
    // Hold the start-up lock, as a replica busy migrating would, so that all
    // three are certainly starting at once when it is let go.
    let mut holder = diesel::PgConnection::establish(&url).expect("a connection");
    holder
        .batch_execute("SELECT pg_advisory_lock(hashtextextended('fhirledger start-up', 0))")
        .expect("the start-up lock");
    let starting: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || leak(start_server_on(&url, |_| Vec::new())))
        })
        .collect();
    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let waiting: Waiting = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()",
        )
        .get_result(&mut holder)
        .expect("the lock's waiters");
        if waiting.n == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of 3 replicas wait for the start-up lock",
            waiting.n
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(holder);
    let replicas: Vec<&'static TestServer> = starting
        .into_iter()
        .map(|t| t.join().expect("a replica started"))
        .collect();
    // Each waited; one migrated, and the others found nothing to do.
    for r in &replicas {
        assert!(
            r.log_tail(400)
                .contains("another server process is starting"),
            "{}",
            r.log_tail(40)
        );
    }
    let migrated = replicas
        .iter()
        .filter(|r| r.log_tail(400).contains("applied migration"))
        .count();
    assert_eq!(migrated, 1, "exactly one replica migrates");
    // What one writes, the others read. (Each test server has a public base
    // of its own, so each issues its own tokens; replicas of a deployment
    // share theirs, and accept each other's: tests/smart_keys.rs.)
    let created = Request::on(replicas[0], "POST", "Patient")
        .json(&patient(&uid()))
        .send();
    created.assert_status(201);
    let id = id_of(&created.json());
    for r in &replicas[1..] {
        Request::on(r, "GET", &format!("Patient/{id}"))
            .send()
            .assert_status(200);
        assert_eq!(probe(r, "ready").0, 200);
    }
    for r in replicas {
        assert_eq!(r.stop(), "exit status: 0", "{}", r.log_tail(40));
    }
}

/// The client agent's network address in the events of `request_id`.
fn recorded_client_address(request_id: &str) -> String {
    let events = recorded_events(request_id);
    assert_eq!(events.len(), 1, "{events:#?}");
    events[0]["agent"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["network"]["type"] == "2")
        .and_then(|a| a["network"]["address"].as_str())
        .unwrap_or_else(|| panic!("no client address in {:#}", events[0]))
        .to_string()
}

#[test]
fn behind_a_trusted_balancer_the_audit_records_the_client_it_names_and_never_a_forged_one() {
    let id = new_patient();
    // The shared server trusts no proxy: the header is the client's word.
    let forged = format!("deploy-xff-forged-{}", uid());
    get(&format!("Patient/{id}"))
        .header("X-Request-Id", &forged)
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .assert_status(200);
    assert_eq!(recorded_client_address(&forged), "127.0.0.1");

    // A server whose balancer (loopback here) is trusted.
    let s = leak(start_server_with(|_| {
        vec![(
            "FHIRLEDGER_TRUSTED_PROXIES".into(),
            "127.0.0.1/32, ::1".into(),
        )]
    }));
    let behind = format!("deploy-xff-{}", uid());
    // What the client claimed, then what the balancer saw and appended.
    Request::on(s, "GET", &format!("Patient/{id}"))
        .header("X-Request-Id", &behind)
        .header("X-Forwarded-For", "192.0.2.66, 203.0.113.9")
        .send()
        .assert_status(200);
    assert_eq!(recorded_client_address(&behind), "203.0.113.9");
    assert_eq!(s.stop(), "exit status: 0");
}

#[test]
fn a_stalled_audit_trail_refuses_reads_with_503_and_recovers_by_itself() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let identifier = uid();
    let id = id_of(&create(&patient(&identifier)));
    let s = leak(start_server_with(|_| {
        vec![("FHIRLEDGER_AUDIT_TIMEOUT_SECONDS".into(), "2".into())]
    }));
    Request::on(s, "GET", &format!("Patient/{id}"))
        .send()
        .assert_status(200);

    // Appends to the trail wait behind this lock (reads of it do not).
    let mut stall = diesel::PgConnection::establish(&s.database_url).expect("a connection");
    stall
        .batch_execute("BEGIN; LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE")
        .expect("the trail locked");
    let started = Instant::now();
    let refused = Request::on(s, "GET", &format!("Patient/{id}"))
        .header("X-Request-Id", "deploy-stalled-trail")
        .send();
    let took = started.elapsed();
    refused.assert_status(503);
    assert_eq!(refused.header("Retry-After").as_deref(), Some("2"));
    assert_eq!(refused.json()["resourceType"], "OperationOutcome");
    // Nothing of the patient left unaudited.
    assert!(!refused.text().contains(&identifier), "{}", refused.text());
    assert!(took < Duration::from_secs(10), "refused after {took:?}");

    stall.batch_execute("ROLLBACK").expect("the trail released");
    // The writer gave up its stalled append and serves again.
    let read = Request::on(s, "GET", &format!("Patient/{id}"))
        .header("X-Request-Id", "deploy-trail-moves-again")
        .send();
    read.assert_status(200);
    assert_eq!(recorded_events("deploy-trail-moves-again").len(), 1);
    assert_eq!(s.stop(), "exit status: 0");
}

#[test]
fn every_answer_carries_the_security_headers_unless_its_page_chose_stricter_ones() {
    let s = server();
    let id = new_patient();
    let answers = [
        (
            "a FHIR read",
            Request::on(s, "GET", &format!("Patient/{id}")).send(),
        ),
        ("a 401", Request::on(s, "GET", "Patient").no_auth().send()),
        (
            "a 404 outside the API",
            Request::on(s, "GET", &format!("{}/no-such-page", s.public_base))
                .no_auth()
                .send(),
        ),
        (
            "the CapabilityStatement",
            Request::on(s, "GET", "metadata").no_auth().send(),
        ),
        (
            "a probe",
            Request::on(s, "GET", &format!("{}/health/live", s.public_base))
                .no_auth()
                .send(),
        ),
        (
            "the landing page",
            Request::on(s, "GET", &format!("{}/", s.public_base))
                .no_auth()
                .send(),
        ),
    ];
    for (what, r) in &answers {
        assert_eq!(
            r.header("X-Content-Type-Options").as_deref(),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            r.header("X-Frame-Options").as_deref(),
            Some("DENY"),
            "{what}"
        );
        assert!(r.header("Referrer-Policy").is_some(), "{what}");
        assert_eq!(
            r.header("Cache-Control").as_deref(),
            Some("no-store"),
            "{what}"
        );
        // Plain HTTP on loopback: no HSTS (it would pin a name to TLS).
        assert_eq!(r.header("Strict-Transport-Security"), None, "{what}");
    }
    // Static assets keep the caching their handler chose.
    let css = Request::on(
        s,
        "GET",
        &format!("{}/portal/assets/portal.css", s.public_base),
    )
    .no_auth()
    .send();
    assert_eq!(
        css.header("Cache-Control").as_deref(),
        Some("public, max-age=3600")
    );
    assert_eq!(css.header("X-Frame-Options").as_deref(), Some("DENY"));
}

#[test]
fn behind_tls_browsers_are_told_to_come_back_over_https_only() {
    let s = leak(start_server_with(|_| {
        vec![(
            "FHIRLEDGER_BASE_URL".into(),
            "https://fhir.example.test".into(),
        )]
    }));
    // Reached directly (the balancer would end TLS in front of it).
    let r = Request::on(s, "GET", &format!("http://{}/health/live", s.bind))
        .no_auth()
        .send();
    assert_eq!(
        r.header("Strict-Transport-Security").as_deref(),
        Some("max-age=31536000")
    );
    assert_eq!(s.stop(), "exit status: 0");
}

#[test]
fn a_token_revoked_at_one_replica_is_refused_by_another_that_had_already_checked_it() {
    use conformance::smart::{post_form, BackendClient, SigningKey, ALL_SYSTEM_SCOPES};
    let a = server();
    // A second replica of the same deployment: same database, same public base.
    let public_base = a.public_base.clone();
    let b = leak(start_server_with(move |_| {
        vec![("FHIRLEDGER_BASE_URL".into(), public_base.clone())]
    }));
    let client = BackendClient::register(a, ALL_SYSTEM_SCOPES, SigningKey::rs384());
    let token = client.token(ALL_SYSTEM_SCOPES);
    let id = new_patient();
    let read_at = |s: &'static TestServer| {
        Request::on(s, "GET", &format!("Patient/{id}"))
            .bearer(&token)
            .send()
            .status
    };
    // B accepts A's token, and keeps it as checked.
    assert_eq!(read_at(b), 200);
    assert_eq!(read_at(b), 200);

    let (status, body) = post_form(
        &format!("{}/auth/revoke", a.public_base),
        &[
            ("token", token.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &client.assertion()),
        ],
    );
    assert_eq!(status, 200, "{body}");
    // A refuses it at once; B once it has read the revocation (every second).
    assert_eq!(read_at(a), 401);
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_at(b) != 401 {
        assert!(Instant::now() < deadline, "B still accepts a revoked token");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(b.stop(), "exit status: 0");
}
