//! The store against a real private PostgreSQL cluster.

mod common;

use std::sync::{Arc, Barrier};

use common::store;
use fhir_profiles::search::query::{Criterion, SearchRequest, SystemMatch, TokenMatch, Visibility};
use fhir_profiles::search::{param_key, IndexRows, TokenIndex};
use fhirledger_postgres::{StoreError, WriteOutcome};

/// Index rows holding just these identifiers of a Patient (what conditional interactions
/// look up).
fn identifiers(pairs: &[(Option<String>, String)]) -> IndexRows {
    let key = param_key("Patient", "identifier");
    IndexRows {
        tokens: pairs
            .iter()
            .map(|(system, value)| TokenIndex {
                key,
                system: system.clone(),
                code: Some(value.clone()),
                text: None,
            })
            .collect(),
        ..IndexRows::default()
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", rand_suffix())
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn body(id: &str, v: i64) -> String {
    format!(r#"{{"resourceType":"Patient","id":"{id}","meta":{{"versionId":"{v}"}}}}"#)
}

#[test]
fn create_then_read_returns_version_one() {
    let s = store();
    let id = unique("p");
    let created = s
        .transaction(|tx| tx.create("Patient", &id, &IndexRows::default(), |v, _| body(&id, v)))
        .expect("created");
    assert_eq!(created.version_id, 1);
    let read = s.read("Patient", &id).expect("read").expect("exists");
    assert_eq!(read.version_id, 1);
    assert_eq!(read.content.as_deref(), Some(body(&id, 1).as_str()));
}

#[test]
fn if_match_lets_exactly_one_racer_win() {
    let s = store();
    let id = unique("race");
    s.transaction(|tx| tx.create("Patient", &id, &IndexRows::default(), |v, _| body(&id, v)))
        .expect("created");
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (s, id, barrier) = (s.clone(), id.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                s.transaction(|tx| {
                    tx.update("Patient", &id, Some(1), &IndexRows::default(), |v, _| {
                        body(&id, v)
                    })
                })
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let winners = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(StoreError::VersionConflict {
                    expected: 1,
                    current: 2
                })
            )
        })
        .count();
    assert_eq!((winners, conflicts), (1, 7));
}

#[test]
fn concurrent_updates_without_if_match_all_land() {
    let s = store();
    let id = unique("nolost");
    s.transaction(|tx| tx.create("Patient", &id, &IndexRows::default(), |v, _| body(&id, v)))
        .expect("created");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (s, id) = (s.clone(), id.clone());
            std::thread::spawn(move || {
                for _ in 0..10 {
                    s.transaction(|tx| {
                        tx.update("Patient", &id, None, &IndexRows::default(), |v, _| {
                            body(&id, v)
                        })
                    })
                    .expect("update");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let current = s.read("Patient", &id).expect("read").expect("exists");
    assert_eq!(current.version_id, 81);
    let history = s
        .history(Some("Patient"), Some(&id), None, None, 1000)
        .expect("history");
    let versions: Vec<i64> = history.entries.iter().map(|e| e.version_id).collect();
    assert_eq!(versions, (1..=81).rev().collect::<Vec<_>>());
}

#[test]
fn update_creates_missing_and_delete_leaves_history() {
    let s = store();
    let id = unique("uac");
    let first = s
        .transaction(|tx| {
            tx.update("Patient", &id, None, &IndexRows::default(), |v, _| {
                body(&id, v)
            })
        })
        .expect("update-as-create");
    assert!(matches!(first, WriteOutcome::Created(_)));
    let deleted = s
        .transaction(|tx| tx.delete("Patient", &id, None))
        .expect("delete")
        .expect("something deleted");
    assert_eq!(deleted.version_id, 2);
    assert!(s
        .read("Patient", &id)
        .expect("read")
        .expect("marker")
        .is_deleted());
    assert!(s.vread("Patient", &id, 1).expect("vread").is_some());
    assert!(s
        .transaction(|tx| tx.delete("Patient", &id, None))
        .expect("again")
        .is_none());
}

#[test]
fn a_failed_transaction_leaves_nothing() {
    let s = store();
    let id = unique("rollback");
    let result: Result<(), StoreError> = s.transaction(|tx| {
        tx.create(
            "Patient",
            &id,
            &identifiers(&[(None, id.clone())]),
            |v, _| body(&id, v),
        )?;
        Err(StoreError::Internal("the caller changed its mind".into()))
    });
    assert!(result.is_err());
    assert!(s.read("Patient", &id).expect("read").is_none());
    assert!(find(s, None, &id).is_empty());
}

/// The ids of live Patients with identifier `system|value` (any system for `None`).
fn find(s: &fhirledger_postgres::PgStore, system: Option<&str>, value: &str) -> Vec<String> {
    let mut request = SearchRequest::new("Patient");
    request.criteria.push(Criterion::Token {
        key: param_key("Patient", "identifier"),
        negated: false,
        values: vec![TokenMatch {
            system: system.map_or(SystemMatch::Any, |s| SystemMatch::Is(s.to_string())),
            code: Some(value.to_string()),
        }],
    });
    s.search(&request, &Visibility::everything())
        .expect("search")
        .matches
        .into_iter()
        .map(|f| f.id)
        .collect()
}

#[test]
fn identifiers_follow_the_current_version() {
    let s = store();
    let id = unique("ident");
    let value = unique("mrn");
    let sys = Some("urn:sys".to_string());
    s.transaction(|tx| {
        tx.create(
            "Patient",
            &id,
            &identifiers(&[(sys.clone(), value.clone())]),
            |v, _| body(&id, v),
        )
    })
    .expect("created");
    assert_eq!(find(s, sys.as_deref(), &value), vec![id.clone()]);
    assert_eq!(find(s, None, &value), vec![id.clone()]);
    s.transaction(|tx| {
        tx.update("Patient", &id, None, &IndexRows::default(), |v, _| {
            body(&id, v)
        })
    })
    .expect("updated without identifier");
    assert!(find(s, None, &value).is_empty());
}

#[test]
fn history_pages_by_cursor_without_gaps() {
    let s = store();
    let id = unique("hist");
    s.transaction(|tx| tx.create("Patient", &id, &IndexRows::default(), |v, _| body(&id, v)))
        .expect("created");
    for _ in 0..6 {
        s.transaction(|tx| {
            tx.update("Patient", &id, None, &IndexRows::default(), |v, _| {
                body(&id, v)
            })
        })
        .expect("update");
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .history(Some("Patient"), Some(&id), None, cursor, 3)
            .expect("page");
        seen.extend(page.entries.iter().map(|e| e.version_id));
        match page.next_before_seq {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, vec![7, 6, 5, 4, 3, 2, 1]);
}

#[test]
fn binary_bytes_round_trip_in_chunks() {
    let s = store();
    let id = unique("bin");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let chunks: Vec<Result<Vec<u8>, String>> =
        data.chunks(700_000).map(|c| Ok(c.to_vec())).collect();
    let meta = s
        .transaction(|tx| {
            let v = tx.create("Binary", &id, &IndexRows::default(), |v, _| body(&id, v))?;
            tx.write_binary(
                &id,
                v.version_id,
                "application/pdf",
                chunks.clone(),
                10_000_000,
            )
        })
        .expect("stored");
    assert_eq!(meta.size, 3_000_000);
    let at = s
        .transaction(|tx| tx.binary_location(&id, 1))
        .expect("located")
        .expect("bytes exist");
    assert_eq!(at.meta.content_type, "application/pdf");
    let mut read = Vec::new();
    while let Some(chunk) = s.binary_chunk(&at, read.len() as u64).expect("a chunk") {
        assert!(chunk.len() <= fhirledger_postgres::CHUNK_SIZE);
        read.extend_from_slice(&chunk);
    }
    assert_eq!(read, data);
}

#[test]
fn an_oversized_upload_rolls_back() {
    let s = store();
    let id = unique("big");
    let result = s.transaction(|tx| {
        let v = tx.create("Binary", &id, &IndexRows::default(), |v, _| body(&id, v))?;
        tx.write_binary(
            &id,
            v.version_id,
            "text/plain",
            vec![Ok(vec![1u8; 600]), Ok(vec![2u8; 600])],
            1000,
        )
    });
    assert!(matches!(result, Err(StoreError::TooLarge { limit: 1000 })));
    assert!(s.read("Binary", &id).expect("read").is_none());
}

/// A visit's calls share one pooled connection, held from its first call until the
/// visit's store drops; a call made while another of the same visit holds it gets one
/// of its own instead of waiting for itself.
#[test]
fn a_visit_holds_one_connection_until_it_ends() {
    use std::time::Duration;
    let config = fhirledger_postgres::PoolConfig {
        max_size: 2,
        connection_timeout: Duration::from_millis(300),
    };
    let s = fhirledger_postgres::PgStore::connect(common::database_url(), &config).expect("pool");
    let id = unique("visit");
    s.transaction(|tx| tx.create("Patient", &id, &IndexRows::default(), |v, _| body(&id, v)))
        .expect("created");

    let first = s.for_visit();
    let second = s.for_visit();
    for _ in 0..3 {
        assert!(first.read("Patient", &id).expect("read").is_some());
        assert!(second.read("Patient", &id).expect("read").is_some());
    }
    // Two visits hold the pool's two connections, however many calls they made.
    assert!(matches!(s.read("Patient", &id), Err(StoreError::Pool(_))));
    // A call within a call of the visit: the inner one borrows from the pool.
    drop(second);
    let nested: Result<_, StoreError> = first.reading(false, |_| first.read("Patient", &id));
    assert!(nested.expect("nested read").is_some());
    // Once the visits end, their connections serve others.
    drop(first);
    assert!(s.read("Patient", &id).expect("read").is_some());
    let other = s.for_visit();
    assert!(other.read("Patient", &id).expect("read").is_some());
    assert!(s.read("Patient", &id).expect("read").is_some());
}
