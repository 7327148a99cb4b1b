//! The Merkle log: every Consent version and every AuditEvent becomes a
//! leaf, with an index given within a second of its commit, gapless and in
//! commit order, committing to exactly the bytes a compact JSON read of it
//! returns. The leaves and the root the server stored are checked by an
//! independent implementation (conformance/chain/merkle.mjs: Keccak-256 from
//! ethers, the tree and leaf format written from RFC 9162 and the README),
//! not by the server's own fhirledger-merkle.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use conformance::server::workspace_root;
use conformance::*;
use fhirledger_merkle::hex_0x;
use fhirledger_postgres::{LoggedLeaf, PgStore, PoolConfig};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// How long a committed leaf may wait for its index: the log promises one
/// second; the margin absorbs a test machine running every suite at once.
const SEQUENCED_WITHIN: Duration = Duration::from_secs(3);

fn store() -> &'static PgStore {
    static STORE: OnceLock<PgStore> = OnceLock::new();
    STORE.get_or_init(|| {
        PgStore::connect(&server().database_url, &PoolConfig::default())
            .expect("a pool on the test server's database")
    })
}

/// Runs `node conformance/chain/merkle.mjs <command>` on `input`.
fn independent(command: &str, input: &Value) -> Value {
    let node = std::env::var("FHIRLEDGER_NODE").unwrap_or_else(|_| "node".into());
    let script = workspace_root().join("conformance/chain/merkle.mjs");
    let mut child = Command::new(node)
        .arg(&script)
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs conformance/chain/merkle.mjs (npm ci in conformance/chain)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("writing to merkle.mjs");
    let out = child.wait_with_output().expect("merkle.mjs ends");
    assert!(
        out.status.success(),
        "merkle.mjs {command} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("merkle.mjs answers JSON")
}

/// The leaf of `type/id` version `vid`, waiting for the sequencer (by
/// polling the log, bounded by [`SEQUENCED_WITHIN`]).
#[track_caller]
fn leaf_of(resource_type: &str, id: &str, vid: &str) -> LoggedLeaf {
    let start = Instant::now();
    loop {
        if let Some(leaf) = store()
            .log_leaf(resource_type, id, vid)
            .expect("reading the log")
        {
            return leaf;
        }
        assert!(
            start.elapsed() < SEQUENCED_WITHIN,
            "{resource_type}/{id} version {vid} has no leaf {SEQUENCED_WITHIN:?} after its commit"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The leaf's fields as the independent decoder reads them.
fn decoded(leaf: &LoggedLeaf) -> Value {
    independent("leaf", &json!({ "leafData": hex::encode(&leaf.leaf_data) }))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex_0x(&Sha256::digest(bytes))
}

#[track_caller]
fn compact_read(path: &str) -> Vec<u8> {
    let resp = get(path).send();
    resp.assert_status(200);
    resp.body
}

fn micros_of(instant: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(instant)
        .expect("an instant")
        .timestamp_micros()
        .to_string()
}

#[test]
fn every_consent_version_is_a_leaf_committing_to_its_bytes() {
    let patient = new_patient();
    let created = create(&consent(&patient, &uid()));
    let id = id_of(&created);
    let mut updated = created.clone();
    updated["status"] = json!("inactive");
    let resp = put(&format!("Consent/{id}")).json(&updated).send();
    resp.assert_status(200);
    delete(&format!("Consent/{id}")).send().assert_status(204);

    let mut salts = Vec::new();
    for vid in ["1", "2"] {
        let body = compact_read(&format!("Consent/{id}/_history/{vid}"));
        let read: Value = serde_json::from_slice(&body).expect("JSON");
        let leaf = decoded(&leaf_of("Consent", &id, vid));
        assert_eq!(leaf["kind"], 1, "a Consent version's leaf kind");
        assert_eq!(leaf["resourceType"], "Consent");
        assert_eq!(leaf["id"], id.as_str());
        assert_eq!(leaf["versionId"], vid);
        assert_eq!(
            leaf["contentSha256"],
            sha256_hex(&body),
            "the leaf commits to the bytes a compact JSON read returns"
        );
        assert_eq!(
            leaf["recordedMicros"],
            micros_of(read["meta"]["lastUpdated"].as_str().expect("lastUpdated"))
        );
        salts.push(leaf["salt"].clone());
    }
    // The delete is a version too: its leaf commits to no bytes.
    let deleted = decoded(&leaf_of("Consent", &id, "3"));
    assert_eq!(deleted["contentSha256"], sha256_hex(b""));
    salts.push(deleted["salt"].clone());
    salts.sort_by_key(|s| s.to_string());
    salts.dedup();
    assert_eq!(salts.len(), 3, "every leaf has a salt of its own");
}

#[test]
fn every_audit_event_is_a_leaf_committing_to_its_bytes() {
    let patient = new_patient();
    let doc = id_of(&create(&document_reference(&patient, &uid())));
    let request_id = format!("ledger-{}", uid());
    get(&format!("DocumentReference/{doc}"))
        .header("X-Request-Id", &request_id)
        .send()
        .assert_status(200);
    let events = conformance::balp::recorded_events(&request_id);
    assert!(!events.is_empty(), "the read was audited");
    for event in events {
        let event_id = id_of(&event);
        let body = compact_read(&format!("AuditEvent/{event_id}"));
        let leaf = decoded(&leaf_of("AuditEvent", &event_id, "1"));
        assert_eq!(leaf["kind"], 2, "an AuditEvent's leaf kind");
        assert_eq!(leaf["resourceType"], "AuditEvent");
        assert_eq!(leaf["contentSha256"], sha256_hex(&body));
        assert_eq!(
            leaf["recordedMicros"],
            micros_of(event["recorded"].as_str().expect("recorded"))
        );
    }
}

#[test]
fn a_rolled_back_transaction_leaves_no_leaf_and_no_gap() {
    let patient = new_patient();
    let consent_id = format!("ledger-{}", uid());
    let mut c = consent(&patient, &uid());
    c["id"] = json!(consent_id);
    // The second entry fails (a version conflict), so the whole transaction,
    // the Consent's version and its pending leaf with it, rolls back.
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            { "resource": c, "request": { "method": "PUT", "url": format!("Consent/{consent_id}") } },
            { "resource": patient_resource(&patient),
              "request": { "method": "PUT", "url": format!("Patient/{patient}"), "ifMatch": "W/\"99\"" } }
        ]
    });
    let resp = post(&base()).json(&bundle).send();
    assert!(
        resp.status >= 400,
        "the transaction fails: {} {}",
        resp.status,
        resp.text()
    );
    // Something after it that does commit: once its leaf is there, every
    // commit before it has been through the sequencer.
    let later = id_of(&create(&consent(&patient, &uid())));
    leaf_of("Consent", &later, "1");
    assert!(
        store()
            .log_leaf("Consent", &consent_id, "1")
            .expect("reading the log")
            .is_none(),
        "a rolled-back Consent version has no leaf"
    );
    assert_gapless_and_root_matches();
}

fn patient_resource(id: &str) -> Value {
    let mut p = read("Patient", id);
    p["active"] = json!(true);
    p
}

/// Leaves `0..size` of the head are all there, in order, and an independent
/// implementation computes the head's root from them.
#[track_caller]
fn assert_gapless_and_root_matches() {
    let head = store().log_head().expect("the log's head");
    let leaves = store()
        .log_leaves(0, head.tree_size)
        .expect("the log's leaves");
    assert_eq!(leaves.len() as u64, head.tree_size);
    for (expected, leaf) in leaves.iter().enumerate() {
        assert_eq!(leaf.leaf_index, expected as u64, "leaf indexes are gapless");
    }
    let computed = independent(
        "root",
        &json!({ "leaves": leaves.iter().map(|l| hex::encode(&l.leaf_data)).collect::<Vec<_>>() }),
    );
    assert_eq!(
        computed["root"],
        hex_0x(&head.root),
        "the stored root is the RFC 9162 Keccak-256 root of the stored leaves"
    );
}

#[test]
fn the_log_stays_gapless_under_concurrent_writers() {
    let patient = new_patient();
    let doc = id_of(&create(&document_reference(&patient, &uid())));
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let (patient, doc) = (patient.clone(), doc.clone());
            std::thread::spawn(move || {
                let mut consents = Vec::new();
                for _ in 0..10 {
                    consents.push(id_of(&create(&consent(&patient, &uid()))));
                    get(&format!("DocumentReference/{doc}"))
                        .send()
                        .assert_status(200);
                }
                consents
            })
        })
        .collect();
    let consents: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("a writer thread"))
        .collect();
    for id in &consents {
        leaf_of("Consent", id, "1");
    }
    assert_gapless_and_root_matches();
}
