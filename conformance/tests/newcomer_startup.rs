//! What the server says when it starts: a brand-new database is not
//! "written by other rules", while a search index that really was written
//! by other rules is rebuilt (and found by searches again).
//!
//! One test in a binary of its own: the first server of a test binary is the
//! one that meets its fresh cluster.

use conformance::server::start_server_with;
use conformance::*;
use fhirledger_postgres::{PgStore, PoolConfig};

const REBUILDING: &str = "the search index was written by other rules; rebuilding it";

#[test]
fn a_new_database_starts_quietly_and_other_index_rules_are_rebuilt() {
    let first = server();
    let log = first.log_tail(400);
    let own_database =
        std::env::var("FHIRLEDGER_TEST_DATABASE_URL").map_or(true, |url| url.trim().is_empty());
    if own_database {
        assert!(
            log.contains("applied migration"),
            "the first server of this binary met a new database: {log}"
        );
        assert!(
            !log.contains(REBUILDING) && !log.contains("search index rebuilt"),
            "a new database has no index written by other rules: {log}"
        );
    }

    // A patient, found by its identifier.
    let ident = uid();
    let id = id_of(&create(&patient(&ident)));
    let by_identifier = format!("Patient?identifier={}", url_encode(&token(&ident)));
    let found = |server: &TestServer| -> Vec<String> {
        let bundle = get(&server.url(&by_identifier)).send().json();
        entries(&bundle)
            .iter()
            .map(|e| id_of(&e["resource"]))
            .collect()
    };
    assert_eq!(found(first), vec![id.clone()]);

    // The database as an older version would have left it: its index rows
    // (none, here) written by rules of another generation.
    let store = PgStore::connect(&first.database_url, &PoolConfig::default())
        .unwrap_or_else(|e| panic!("connecting to the test database: {e}"));
    store
        .reindex("other-rules", |_, _| Default::default(), |_| {})
        .unwrap_or_else(|e| panic!("recording another generation: {e}"));
    assert!(
        found(first).is_empty(),
        "without index rows the patient is not found"
    );

    // A server started on it says so and rebuilds the index (same public
    // URL, so the shared token is good on both).
    let second =
        start_server_with(|_| vec![("FHIRLEDGER_BASE_URL".to_string(), first.public_base.clone())]);
    let log = second.log_tail(400);
    assert!(log.contains(REBUILDING), "{log}");
    assert!(log.contains("search index rebuilt"), "{log}");
    assert_eq!(found(&second), vec![id.clone()]);
    assert_eq!(found(first), vec![id]);
}
