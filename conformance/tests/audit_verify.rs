//! `fhirledger audit verify` against a real trail: Consent versions and
//! audited reads made through the server, sequenced by it, their checkpoints
//! anchored on a real anvil. Then each kind of tampering the issue names is
//! done on a fresh copy of that database (`CREATE DATABASE … TEMPLATE`), as
//! an attacker with superuser access to the database would (the append-only
//! triggers disabled), and the verifier must exit 1 naming the right kind
//! and the right leaf.
//!
//! The `merkle_checkpoints` table is the anchoring worker's (migration
//! `2026-12-07-000002_anchoring`, not on this branch yet): the fixture
//! creates it with `CREATE TABLE IF NOT EXISTS` and fills it itself after
//! anchoring each root with fhirledger-chain.

use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use conformance::anvil::{key, Anvil};
use conformance::server::server_binary;
use conformance::*;
use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use fhirledger_chain::{deploy, Address, AnchorClient, ChainConfig, Fees, Key};
use fhirledger_merkle::{Frontier, Hash, Hasher, Keccak256Hasher, LeafData, LeafKind, PerfectNode};
use fhirledger_postgres::{PgStore, PoolConfig};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const CHAIN_ID: u64 = 48_879;
const WAIT: Duration = Duration::from_secs(30);
const SEQUENCED_WITHIN: Duration = Duration::from_secs(10);

/// One leaf of the fixture's log.
#[derive(Debug, Clone)]
struct Leaf {
    index: u64,
    data: LeafData,
    encoded: Vec<u8>,
}

struct Fixture {
    /// The anvil's URL (it is the binary's, stopped when the binary exits).
    anvil: String,
    contract: Address,
    /// Every leaf, in index order.
    leaves: Vec<Leaf>,
    /// The three anchored checkpoint sizes, increasing; the last below the
    /// log's size (an unanchored tail).
    sizes: [u64; 3],
    /// The server's database URL (the copies differ in the name only).
    database_url: String,
}

impl Fixture {
    fn tree_size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// A leaf of `kind` with index in `range`.
    fn leaf_in(&self, kind: LeafKind, range: std::ops::Range<u64>, skip_deletes: bool) -> &Leaf {
        self.leaves
            .iter()
            .find(|l| {
                l.data.kind == kind
                    && range.contains(&l.index)
                    && (!skip_deletes || l.data.content_sha256 != sha256(b""))
            })
            .unwrap_or_else(|| panic!("no {kind:?} leaf in {range:?}"))
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn bytea(bytes: &[u8]) -> String {
    format!("'\\x{}'::bytea", hex::encode(bytes))
}

fn url_of(database_url: &str, database: &str) -> String {
    let (base, _) = database_url.rsplit_once('/').expect("a database URL");
    format!("{base}/{database}")
}

fn connect(url: &str) -> PgConnection {
    PgConnection::establish(url).unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Anchors `(size, root)` for each of `roots` on a contract, returning
/// (tx hash, block number, block hash) of each.
fn anchor(
    rt: &tokio::runtime::Runtime,
    anvil: &str,
    contract: Address,
    owner: Key,
    roots: &[(u64, Hash)],
) -> Vec<([u8; 32], u64, [u8; 32])> {
    rt.block_on(async {
        let client = AnchorClient::connect(ChainConfig::new(anvil, CHAIN_ID, contract, owner))
            .await
            .expect("connect to the contract");
        let mut anchored = Vec::new();
        for (size, root) in roots {
            let sent = client
                .send_checkpoint(*size, *root)
                .await
                .expect("send checkpoint");
            let receipt = client.wait_receipt(sent.hash, WAIT).await.expect("receipt");
            assert!(receipt.status, "checkpoint {size} failed");
            anchored.push((sent.hash.0, receipt.block_number, receipt.block_hash));
        }
        anchored
    })
}

/// The SQL that records anchored checkpoints as the anchoring worker does.
fn checkpoint_rows(
    contract: Address,
    roots: &[(u64, Hash)],
    anchored: &[([u8; 32], u64, [u8; 32])],
) -> String {
    roots
        .iter()
        .zip(anchored)
        .map(|((size, root), (tx, block, block_hash))| {
            format!(
                "INSERT INTO merkle_checkpoints (tree_size, root, chain_id, contract, tx_hash, block_number, block_hash, anchored_at) \
                 VALUES ({size}, {}, {CHAIN_ID}, {}, {}, {block}, {}, now()) \
                 ON CONFLICT (tree_size) DO UPDATE SET root = EXCLUDED.root, contract = EXCLUDED.contract, \
                 tx_hash = EXCLUDED.tx_hash, block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash;",
                bytea(root),
                bytea(&contract.0),
                bytea(tx),
                bytea(block_hash)
            )
        })
        .collect()
}

/// Roots of the tree of `leaves` at each of `sizes`, and every perfect node.
fn tree_of(leaves: &[Vec<u8>], sizes: &[u64]) -> (Vec<(u64, Hash)>, Vec<PerfectNode>, Hash) {
    let hasher = Keccak256Hasher;
    let mut frontier = Frontier::new(hasher);
    let mut nodes = Vec::new();
    let mut roots = Vec::new();
    for leaf in leaves {
        nodes.extend(frontier.append(hasher.leaf_hash(leaf)).expect("append"));
        if sizes.contains(&frontier.size()) {
            roots.push((frontier.size(), frontier.root()));
        }
    }
    (roots, nodes, frontier.root())
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

fn build_fixture() -> Fixture {
    let started = Instant::now();
    let server = server();
    // A trail: Consent versions (create, update, delete) and audited reads,
    // each write and read with its AuditEvents.
    let patient = new_patient();
    let doc = id_of(&create(&document_reference(&patient, &uid())));
    let mut consents = Vec::new();
    for _ in 0..4 {
        consents.push(create(&consent(&patient, &uid())));
    }
    let mut updated = consents[0].clone();
    updated["status"] = json!("inactive");
    put(&format!("Consent/{}", id_of(&updated)))
        .json(&updated)
        .send()
        .assert_status(200);
    delete(&format!("Consent/{}", id_of(&consents[1])))
        .send()
        .assert_status(204);
    for _ in 0..16 {
        get(&format!("DocumentReference/{doc}"))
            .send()
            .assert_status(200);
    }
    let last = id_of(&create(&consent(&patient, &uid())));

    let store = PgStore::connect(&server.database_url, &PoolConfig::default()).expect("a pool");
    // Every request above has committed its leaves (reads are audited before
    // their response); wait until the sequencer has given them indexes.
    let deadline = Instant::now() + SEQUENCED_WITHIN;
    while store
        .log_leaf("Consent", &last, "1")
        .expect("the log")
        .is_none()
        || store.log_pending().expect("pending") > 0
    {
        assert!(
            Instant::now() < deadline,
            "the log was not sequenced in {SEQUENCED_WITHIN:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop();
    // Anything committed while the server stopped gets its index here.
    store.sequence_log(1_000_000).expect("sequencing the rest");
    let head = store.log_head().expect("the head");
    let leaves: Vec<Leaf> = store
        .log_leaves(0, head.tree_size)
        .expect("the leaves")
        .into_iter()
        .map(|l| Leaf {
            index: l.leaf_index,
            data: LeafData::decode(&l.leaf_data).expect("a leaf"),
            encoded: l.leaf_data,
        })
        .collect();
    drop(store);
    let n = leaves.len() as u64;
    assert!(n >= 24, "the trail has {n} leaves");
    let sizes = [n / 3, 2 * n / 3, n - 2];

    // Anchor three checkpoints on a real chain, record them as the worker does.
    let anvil = Anvil::for_the_binary(CHAIN_ID);
    let rt = runtime();
    let deployed = rt
        .block_on(deploy(&anvil, CHAIN_ID, &key(0), Fees::default()))
        .expect("deploy AuditAnchor");
    let encoded: Vec<Vec<u8>> = leaves.iter().map(|l| l.encoded.clone()).collect();
    let (roots, _, root) = tree_of(&encoded, &sizes);
    assert_eq!(root, head.root, "the test's tree is the server's");
    let anchored = anchor(&rt, &anvil, deployed.contract, key(0), &roots);
    {
        let mut conn = connect(&server.database_url);
        conn.batch_execute(&checkpoint_rows(deployed.contract, &roots, &anchored))
            .expect("checkpoint rows");
    }
    // The pristine trail every case copies.
    connect(&url_of(&server.database_url, "postgres"))
        .batch_execute("CREATE DATABASE verify_base TEMPLATE fhirledger")
        .expect("copying the trail's database");
    eprintln!(
        "fixture: {n} leaves, checkpoints {sizes:?}, contract {} ({:.1} s)",
        deployed.contract,
        started.elapsed().as_secs_f64()
    );
    Fixture {
        anvil,
        contract: deployed.contract,
        leaves,
        sizes,
        database_url: server.database_url.clone(),
    }
}

/// A fresh copy of the pristine trail; its URL.
fn fresh_copy(name: &str) -> String {
    static CREATE: Mutex<()> = Mutex::new(());
    let f = fixture();
    let _one_at_a_time = CREATE.lock().unwrap_or_else(|p| p.into_inner());
    connect(&url_of(&f.database_url, "postgres"))
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE verify_base"))
        .unwrap_or_else(|e| panic!("copying the trail to {name}: {e}"));
    url_of(&f.database_url, name)
}

/// Runs `fhirledger audit verify --json` on `url`; the exit code and summary.
fn verify_with(url: &str, contract: Address, extra: &[&str]) -> (i32, Value) {
    let f = fixture();
    let started = Instant::now();
    let out = Command::new(server_binary())
        .args([
            "audit",
            "verify",
            "--database-url",
            url,
            "--rpc-url",
            &f.anvil,
        ])
        .args([
            "--contract",
            &contract.to_string(),
            "--chain-id",
            &CHAIN_ID.to_string(),
        ])
        .args(extra)
        .env("FHIRLEDGER_LOG", "warn")
        .env_remove("FHIRLEDGER_DATABASE_URL")
        .output()
        .expect("running fhirledger audit verify");
    let code = out.status.code().expect("an exit code");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "audit verify {extra:?} on {url}: exit {code} in {:.2} s\n{stdout}{stderr}",
        started.elapsed().as_secs_f64()
    );
    if extra.contains(&"--json") {
        let summary = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("verify printed no JSON ({e}): {stdout}\n{stderr}"));
        (code, summary)
    } else {
        (code, Value::String(stdout.into_owned()))
    }
}

fn verify(url: &str) -> (i32, Value) {
    verify_with(url, fixture().contract, &["--json"])
}

/// Asserts exit 1 with a first finding of `kind` at `leaf_index`; returns it.
#[track_caller]
fn assert_first(result: &(i32, Value), kind: &str, leaf_index: Option<u64>) -> Value {
    let (code, summary) = result;
    assert_eq!(*code, 1, "tampering must exit 1: {summary:#}");
    assert_eq!(summary["holds"], false);
    let first = &summary["first"];
    assert_eq!(first["kind"], kind, "the first finding: {first:#}");
    assert_eq!(
        first["leaf_index"],
        json!(leaf_index),
        "the first finding: {first:#}"
    );
    first.clone()
}

/// Runs `sql` on `url` as the superuser, the append-only triggers off (as an
/// attacker with database access would).
fn tamper(url: &str, sql: &str) {
    connect(url)
        .batch_execute(&format!(
            "ALTER TABLE audit_events DISABLE TRIGGER USER; \
             ALTER TABLE merkle_leaves DISABLE TRIGGER USER; \
             ALTER TABLE merkle_nodes DISABLE TRIGGER USER; \
             ALTER TABLE merkle_tiles DISABLE TRIGGER USER; \
             ALTER TABLE merkle_checkpoints DISABLE TRIGGER USER; \
             {sql}"
        ))
        .unwrap_or_else(|e| panic!("tampering failed: {e}\n{sql}"));
}

#[derive(QueryableByName)]
struct Content {
    #[diesel(sql_type = Text)]
    content: String,
}

#[test]
fn an_untouched_trail_holds() {
    let f = fixture();
    let url = fresh_copy("verify_untouched");
    let (code, summary) = verify(&url);
    assert_eq!(code, 0, "{summary:#}");
    assert_eq!(summary["holds"], true);
    assert_eq!(summary["tree_size"], f.tree_size());
    assert_eq!(summary["leaves_checked"], f.tree_size());
    assert_eq!(summary["checkpoints_checked"], 3);
    assert_eq!(summary["first_anchored_size"], f.sizes[0]);
    assert_eq!(summary["last_anchored_size"], f.sizes[2]);
    assert_eq!(summary["chain_latest_size"], f.sizes[2]);
    assert_eq!(summary["unanchored_tail"], f.tree_size() - f.sizes[2]);
    assert_eq!(summary["unsequenced"], 0);
    assert_eq!(summary["findings_total"], 0);
    assert_eq!(summary["contract"], f.contract.to_string());
    eprintln!(
        "observed: {} leaves/s (debug build, small log)",
        summary["leaves_per_second"]
    );

    // A range: from the first checkpoint to the second.
    let (from, to) = (f.sizes[0].to_string(), f.sizes[1].to_string());
    let (code, summary) = verify_with(&url, f.contract, &["--json", "--from", &from, "--to", &to]);
    assert_eq!(code, 0, "{summary:#}");
    assert_eq!(summary["leaves_checked"], f.sizes[1] - f.sizes[0]);
    assert_eq!(summary["checkpoints_checked"], 2);

    // The text summary.
    let (code, text) = verify_with(&url, f.contract, &[]);
    assert_eq!(code, 0);
    let text = text.as_str().unwrap_or_default();
    assert!(text.contains("the audit trail holds"), "{text}");
    assert!(
        text.contains(&format!("leaves checked: {}", f.tree_size())),
        "{text}"
    );
}

#[test]
fn a_pending_row_is_the_unsequenced_tail_not_tampering() {
    let url = fresh_copy("verify_pending");
    let content = r#"{"resourceType":"AuditEvent","id":"pending-1"}"#;
    let leaf = LeafData {
        kind: LeafKind::AuditEvent,
        resource_type: "AuditEvent".into(),
        id: "pending-1".into(),
        version_id: "1".into(),
        content_sha256: sha256(content.as_bytes()),
        recorded_micros: 1_767_225_600_000_000,
        salt: [7; 32],
    };
    tamper(
        &url,
        &format!(
            "INSERT INTO audit_events (id, recorded, terms, codes, content) \
             VALUES ('pending-1', '2026-01-01T00:00:00Z', '{{}}', '{{}}', '{content}'); \
             INSERT INTO merkle_pending (leaf_data) VALUES ({});",
            bytea(&leaf.encode().expect("a leaf"))
        ),
    );
    let (code, summary) = verify(&url);
    assert_eq!(code, 0, "{summary:#}");
    assert_eq!(summary["unsequenced"], 1);
}

#[test]
fn a_modified_row_is_named() {
    let f = fixture();
    let url = fresh_copy("verify_modified");
    let leaf = f.leaf_in(LeafKind::ConsentVersion, f.sizes[0]..f.tree_size(), true);
    tamper(
        &url,
        &format!(
            "UPDATE resource_versions SET content = replace(content, '\"active\"', '\"draft\"') || ' ' \
              WHERE resource_type = 'Consent' AND id = '{}' AND version_id = {}",
            leaf.data.id, leaf.data.version_id
        ),
    );
    let first = assert_first(&verify(&url), "modified_row", Some(leaf.index));
    assert_eq!(first["resource"], format!("Consent/{}", leaf.data.id));
    assert_eq!(first["version"], leaf.data.version_id);
    assert_eq!(first["row"]["table"], "resource_versions");
}

#[test]
fn a_deleted_row_is_named() {
    let f = fixture();
    let url = fresh_copy("verify_deleted");
    let leaf = f.leaf_in(LeafKind::AuditEvent, 5..f.tree_size(), false);
    tamper(
        &url,
        &format!("DELETE FROM audit_events WHERE id = '{}'", leaf.data.id),
    );
    let first = assert_first(&verify(&url), "deleted_row", Some(leaf.index));
    assert_eq!(first["resource"], format!("AuditEvent/{}", leaf.data.id));
}

#[test]
fn an_inserted_row_is_named() {
    let url = fresh_copy("verify_inserted");
    tamper(
        &url,
        "INSERT INTO audit_events (id, recorded, patient_id, terms, codes, content) \
         SELECT 'forged-event', recorded, patient_id, terms, codes, content \
           FROM audit_events ORDER BY seq DESC LIMIT 1",
    );
    let (code, summary) = verify(&url);
    let first = assert_first(&(code, summary.clone()), "inserted_row", None);
    assert_eq!(first["resource"], "AuditEvent/forged-event");
    assert_eq!(first["row"]["table"], "audit_events");
    assert_eq!(summary["findings_total"], 1, "{summary:#}");
}

#[test]
fn two_swapped_rows_are_named() {
    let f = fixture();
    let url = fresh_copy("verify_swapped");
    let pair = f
        .leaves
        .windows(2)
        .find(|w| {
            w[0].data.kind == LeafKind::AuditEvent
                && w[1].data.kind == LeafKind::AuditEvent
                && w[0].index >= 3
        })
        .expect("two adjacent AuditEvent leaves");
    let (a, b) = (&pair[0], &pair[1]);
    tamper(
        &url,
        &format!(
            "UPDATE audit_events x SET content = y.content, recorded = y.recorded \
               FROM audit_events y \
              WHERE (x.id, y.id) IN (('{0}', '{1}'), ('{1}', '{0}'))",
            a.data.id, b.data.id
        ),
    );
    let (code, summary) = verify(&url);
    let first = assert_first(&(code, summary.clone()), "swapped_rows", Some(a.index));
    assert_eq!(first["other_leaf_index"], b.index);
    assert_eq!(
        summary["findings_total"], 1,
        "one swap, one finding: {summary:#}"
    );
}

#[test]
fn a_truncated_log_is_named() {
    let f = fixture();
    let url = fresh_copy("verify_truncated");
    // Everything from leaf `t` on is removed: leaves, the rows they record,
    // the nodes and checkpoint rows beyond, and the head moved back.
    let t = f.sizes[1] + 1;
    assert!(t < f.sizes[2]);
    let gone = &f.leaves[t as usize..];
    let events: Vec<String> = gone
        .iter()
        .filter(|l| l.data.kind == LeafKind::AuditEvent)
        .map(|l| format!("'{}'", l.data.id))
        .collect();
    let versions: Vec<String> = gone
        .iter()
        .filter(|l| l.data.kind == LeafKind::ConsentVersion)
        .map(|l| format!("('{}', {})", l.data.id, l.data.version_id))
        .collect();
    let encoded: Vec<Vec<u8>> = f.leaves[..t as usize]
        .iter()
        .map(|l| l.encoded.clone())
        .collect();
    let (_, _, root_t) = tree_of(&encoded, &[]);
    let mut sql = format!(
        "DELETE FROM merkle_leaves WHERE leaf_index >= {t}; \
         DELETE FROM merkle_nodes WHERE (node_index + 1) * (1::bigint << level) > {t}; \
         DELETE FROM merkle_tiles WHERE (tile_index + 1) * 64 > {t}; \
         UPDATE merkle_head SET tree_size = {t}, root = {}; \
         DELETE FROM merkle_checkpoints WHERE tree_size > {t};",
        bytea(&root_t)
    );
    if !events.is_empty() {
        sql.push_str(&format!(
            "DELETE FROM audit_events WHERE id IN ({});",
            events.join(", ")
        ));
    }
    if !versions.is_empty() {
        sql.push_str(&format!(
            "DELETE FROM resource_versions WHERE resource_type = 'Consent' AND (id, version_id) IN ({});",
            versions.join(", ")
        ));
    }
    tamper(&url, &sql);
    let (code, summary) = verify(&url);
    let first = assert_first(&(code, summary.clone()), "truncated", Some(t));
    assert_eq!(first["leaf_end"], f.sizes[2], "the contract's latest size");
    assert_eq!(summary["findings_total"], 1, "{summary:#}");
}

#[test]
fn a_rewritten_log_re_anchored_under_a_new_contract_is_named() {
    let f = fixture();
    let url = fresh_copy("verify_rewritten");
    // The attacker changes an event between the first and second
    // checkpoints, rewrites its leaf (same salt, new content hash), every
    // node and the head, anchors the new roots on a contract of their own
    // and records those checkpoints in the database.
    let leaf = f.leaf_in(LeafKind::AuditEvent, f.sizes[0]..f.sizes[1], false);
    let mut conn = connect(&url);
    let content = diesel::sql_query("SELECT content FROM audit_events WHERE id = $1")
        .bind::<Text, _>(&leaf.data.id)
        .get_result::<Content>(&mut conn)
        .expect("the event")
        .content;
    drop(conn);
    let forged = content.replacen("\"recorded\"", "\"recorded\" ", 1) + " ";
    let mut data = leaf.data.clone();
    data.content_sha256 = sha256(forged.as_bytes());
    let mut encoded: Vec<Vec<u8>> = f.leaves.iter().map(|l| l.encoded.clone()).collect();
    encoded[leaf.index as usize] = data.encode().expect("a leaf");
    let (roots, nodes, root) = tree_of(&encoded, &f.sizes);
    let rt = runtime();
    let attacker = rt
        .block_on(deploy(&f.anvil, CHAIN_ID, &key(1), Fees::default()))
        .expect("deploy the attacker's contract");
    let anchored = anchor(&rt, &f.anvil, attacker.contract, key(1), &roots);
    let node_rows: Vec<String> = nodes
        .iter()
        .map(|n| format!("({}, {}, {})", n.id.level, n.id.index, bytea(&n.hash)))
        .collect();
    tamper(
        &url,
        &format!(
            "UPDATE audit_events SET content = $forged${forged}$forged$ WHERE id = '{id}'; \
             UPDATE merkle_leaves SET leaf_data = {leaf_data} WHERE leaf_index = {index}; \
             DELETE FROM merkle_nodes; DELETE FROM merkle_tiles; \
             INSERT INTO merkle_nodes (level, node_index, hash) VALUES {nodes}; \
             UPDATE merkle_head SET root = {root}; {checkpoints}",
            id = leaf.data.id,
            leaf_data = bytea(&encoded[leaf.index as usize]),
            index = leaf.index,
            nodes = node_rows.join(", "),
            root = bytea(&root),
            checkpoints = checkpoint_rows(attacker.contract, &roots, &anchored),
        ),
    );
    // Against the contract the deployment published: caught, in the range
    // of the first checkpoint whose root changed.
    let first = assert_first(&verify(&url), "not_on_chain", Some(f.sizes[0]));
    assert_eq!(first["leaf_end"], f.sizes[1]);
    assert!(
        first["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("another contract"),
        "{first:#}"
    );
    assert!(f.sizes[0] <= leaf.index && leaf.index < f.sizes[1]);
    // Against the attacker's own contract everything agrees: which contract
    // is the deployment's must come from outside the database.
    let (code, summary) = verify_with(&url, attacker.contract, &["--json"]);
    assert_eq!(code, 0, "{summary:#}");
}

#[test]
fn a_checkpoint_not_on_chain_is_named() {
    let f = fixture();
    let url = fresh_copy("verify_not_on_chain");
    // A checkpoint row with the log's true root at a size never anchored.
    let size = f.sizes[1] + 1;
    let encoded: Vec<Vec<u8>> = f.leaves.iter().map(|l| l.encoded.clone()).collect();
    let (roots, _, _) = tree_of(&encoded, &[size]);
    tamper(
        &url,
        &format!(
            "INSERT INTO merkle_checkpoints (tree_size, root, chain_id, contract, tx_hash, block_number, block_hash, anchored_at) \
             VALUES ({size}, {}, {CHAIN_ID}, {}, {}, 1, {}, now())",
            bytea(&roots[0].1),
            bytea(&f.contract.0),
            bytea(&[0x5a; 32]),
            bytea(&[0x5b; 32])
        ),
    );
    let first = assert_first(&verify(&url), "not_on_chain", Some(f.sizes[1]));
    assert_eq!(first["leaf_end"], size);
    assert_eq!(first["checkpoint"], size);
    assert!(
        first["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("no root"),
        "{first:#}"
    );
}

/// The leaves/s and peak memory of `audit verify` over a larger log: the
/// pristine trail plus `FHIRLEDGER_VERIFY_LEAVES` (default 50,000) synthetic
/// but valid AuditEvents (each a real event's JSON under a fresh id, about
/// the size of a real one), with their leaves, nodes and head, loaded in SQL.
/// `FHIRLEDGER_VERIFY_MIN_RATE` makes the rate an assertion (the benchmark,
/// conformance/bench/verify.sh, runs a release build with it); the debug
/// build of the test suite only reports it.
#[test]
fn verify_rate_on_a_larger_log() {
    use diesel::sql_types::{Array, BigInt, Bytea, SmallInt, Timestamptz};
    let f = fixture();
    let extra: u64 = std::env::var("FHIRLEDGER_VERIFY_LEAVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let url = fresh_copy("verify_rate");
    let mut conn = connect(&url);
    let template = diesel::sql_query("SELECT content FROM audit_events ORDER BY seq DESC LIMIT 1")
        .get_result::<Content>(&mut conn)
        .expect("an event")
        .content;
    let template_id = f
        .leaves
        .iter()
        .rev()
        .find(|l| l.data.kind == LeafKind::AuditEvent)
        .map(|l| l.data.id.clone())
        .expect("an AuditEvent leaf");
    let hasher = Keccak256Hasher;
    let mut frontier = Frontier::new(hasher);
    for leaf in &f.leaves {
        frontier
            .append(hasher.leaf_hash(&leaf.encoded))
            .expect("append");
    }
    let loading = Instant::now();
    let start = chrono::Utc::now();
    let mut next = 0u64;
    while next < extra {
        let count = (extra - next).min(5_000);
        let (mut ids, mut recorded, mut contents) = (Vec::new(), Vec::new(), Vec::new());
        let (mut indexes, mut leaf_data) = (Vec::new(), Vec::new());
        let (mut levels, mut node_indexes, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
        for i in next..next + count {
            let id = format!("synthetic-{i:08}");
            let content = template.replace(&template_id, &id);
            let at = start + chrono::Duration::microseconds(i as i64);
            let data = LeafData {
                kind: LeafKind::AuditEvent,
                resource_type: "AuditEvent".into(),
                id: id.clone(),
                version_id: "1".into(),
                content_sha256: sha256(content.as_bytes()),
                recorded_micros: at.timestamp_micros(),
                salt: sha256(id.as_bytes()),
            };
            let encoded = data.encode().expect("a leaf");
            for node in frontier.append(hasher.leaf_hash(&encoded)).expect("append") {
                levels.push(i16::from(node.id.level));
                node_indexes.push(node.id.index as i64);
                hashes.push(node.hash.to_vec());
            }
            indexes.push((f.tree_size() + i) as i64);
            leaf_data.push(encoded);
            ids.push(id);
            recorded.push(at);
            contents.push(content);
        }
        diesel::sql_query(
            "INSERT INTO audit_events (id, recorded, terms, codes, content) \
             SELECT id, recorded, '{}', '{}', content \
               FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS u(id, recorded, content)",
        )
        .bind::<Array<Text>, _>(&ids)
        .bind::<Array<Timestamptz>, _>(&recorded)
        .bind::<Array<Text>, _>(&contents)
        .execute(&mut conn)
        .expect("synthetic events");
        diesel::sql_query(
            "INSERT INTO merkle_leaves (leaf_index, resource_type, resource_id, version_id, leaf_data, sequenced_at) \
             SELECT leaf_index, 'AuditEvent', id, '1', leaf_data, now() \
               FROM unnest($1::bigint[], $2::text[], $3::bytea[]) AS u(leaf_index, id, leaf_data)",
        )
        .bind::<Array<BigInt>, _>(&indexes)
        .bind::<Array<Text>, _>(&ids)
        .bind::<Array<Bytea>, _>(&leaf_data)
        .execute(&mut conn)
        .expect("synthetic leaves");
        diesel::sql_query(
            "INSERT INTO merkle_nodes (level, node_index, hash) \
             SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])",
        )
        .bind::<Array<SmallInt>, _>(&levels)
        .bind::<Array<BigInt>, _>(&node_indexes)
        .bind::<Array<Bytea>, _>(&hashes)
        .execute(&mut conn)
        .expect("synthetic nodes");
        next += count;
    }
    conn.batch_execute(&format!(
        "UPDATE merkle_head SET tree_size = {}, root = {}",
        frontier.size(),
        bytea(&frontier.root())
    ))
    .expect("the head");
    conn.batch_execute("VACUUM ANALYZE").expect("vacuum");
    if std::env::var_os("FHIRLEDGER_VERIFY_EXPLAIN").is_some() {
        explain_leaf_batch(&mut conn, f.tree_size() + extra / 2);
    }
    drop(conn);
    eprintln!(
        "loaded {extra} synthetic events in {:.1} s",
        loading.elapsed().as_secs_f64()
    );

    let out = Command::new("/usr/bin/time")
        .args(["-f", "max-rss-kib %M"])
        .arg(server_binary())
        .args([
            "audit",
            "verify",
            "--database-url",
            &url,
            "--rpc-url",
            &f.anvil,
        ])
        .args(["--contract", &f.contract.to_string(), "--json"])
        .env("FHIRLEDGER_LOG", "warn")
        .output()
        .expect("running audit verify under /usr/bin/time");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {stderr}"));
    assert_eq!(out.status.code(), Some(0), "{summary:#}\n{stderr}");
    assert_eq!(summary["leaves_checked"], f.tree_size() + extra);
    let rate = summary["leaves_per_second"].as_f64().unwrap_or_default();
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("max-rss-kib "))
        .unwrap_or("?");
    eprintln!(
        "audit verify: {} leaves in {:.2} s = {rate:.0} leaves/s (the reading thread busy {:.2} s, the checking thread waiting for it {:.2} s), peak RSS {rss} KiB ({})",
        summary["leaves_checked"],
        summary["elapsed_seconds"].as_f64().unwrap_or_default(),
        summary["reading_leaves_seconds"].as_f64().unwrap_or_default(),
        summary["waiting_for_leaves_seconds"].as_f64().unwrap_or_default(),
        server_binary().display()
    );
    if let Some(min) = std::env::var("FHIRLEDGER_VERIFY_MIN_RATE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    {
        assert!(rate >= min, "{rate:.0} leaves/s is below {min}");
    }
}

/// Prints PostgreSQL's plan and timing of one batch of the verifier's leaf
/// query (as `adapters/postgres/src/verify.rs` writes it), under the
/// adapter's session settings.
fn explain_leaf_batch(conn: &mut PgConnection, from: u64) {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
        line: String,
    }
    conn.batch_execute(
        "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; \
         PREPARE leaves(bigint, bigint) AS \
         SELECT l.leaf_index, l.resource_type, l.resource_id, l.version_id, l.leaf_data, \
                a.seq AS audit_seq, a.content AS audit_content, a.recorded AS audit_recorded, \
                v.seq AS version_seq, v.content AS version_content, v.last_updated AS version_recorded \
           FROM merkle_leaves l \
           LEFT JOIN audit_events a ON l.resource_type = 'AuditEvent' AND a.id = l.resource_id \
           LEFT JOIN resource_versions v ON l.resource_type = 'Consent' AND v.resource_type = 'Consent' \
                AND v.id = l.resource_id \
                AND v.version_id = CASE WHEN l.version_id ~ '^[0-9]{1,18}$' THEN l.version_id::bigint END \
          WHERE l.leaf_index >= $1 ORDER BY l.leaf_index LIMIT $2",
    )
    .expect("prepare");
    for line in diesel::sql_query(format!(
        "EXPLAIN (ANALYZE, BUFFERS) EXECUTE leaves({from}, 4000)"
    ))
    .load::<Line>(conn)
    .expect("explain")
    {
        eprintln!("  {}", line.line);
    }
}

#[test]
fn what_cannot_be_verified_exits_2() {
    let f = fixture();
    let url = fresh_copy("verify_unverifiable");
    // No contract at that address.
    let out = Command::new(server_binary())
        .args([
            "audit",
            "verify",
            "--database-url",
            &url,
            "--rpc-url",
            &f.anvil,
        ])
        .args([
            "--contract",
            "0x1111111111111111111111111111111111111111",
            "--json",
        ])
        .env("FHIRLEDGER_LOG", "warn")
        .output()
        .expect("running audit verify");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no contract code"),
        "{out:?}"
    );
    // The node is on another chain than the one given.
    let out = Command::new(server_binary())
        .args([
            "audit",
            "verify",
            "--database-url",
            &url,
            "--rpc-url",
            &f.anvil,
        ])
        .args([
            "--contract",
            &f.contract.to_string(),
            "--chain-id",
            "1",
            "--json",
        ])
        .env("FHIRLEDGER_LOG", "warn")
        .output()
        .expect("running audit verify");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chain id mismatch"),
        "{out:?}"
    );
}
