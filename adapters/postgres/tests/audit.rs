//! The audit trail's table against a real private PostgreSQL cluster:
//! events append in order, commit with their transaction or not at all,
//! and can never be changed or removed, whoever asks.

mod common;

use chrono::{TimeZone, Utc};
use common::{database_url, store};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use fhirledger_postgres::{AuditRow, StoreError};

fn row(id: &str, patient: Option<&str>) -> AuditRow {
    AuditRow {
        id: id.to_string(),
        recorded: Utc.with_ymd_and_hms(2026, 12, 6, 9, 0, 0).unwrap(),
        patient_id: patient.map(str::to_string),
        terms: vec!["action=R".into(), "agent=Practitioner/1".into()],
        client_recorded: false,
        content: format!(r#"{{"resourceType":"AuditEvent","id":"{id}"}}"#),
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Array<Text>)]
    terms: Vec<String>,
    #[diesel(sql_type = Array<Text>)]
    codes: Vec<String>,
}

fn stored(ids: &[String]) -> Vec<Stored> {
    let mut conn = PgConnection::establish(database_url()).expect("a connection");
    diesel::sql_query(
        "SELECT id, seq, terms, codes FROM audit_events WHERE id = ANY($1) ORDER BY seq",
    )
    .bind::<Array<Text>, _>(ids)
    .load(&mut conn)
    .expect("stored events")
}

#[test]
fn a_batch_appends_in_order_with_its_search_values() {
    let ids: Vec<String> = (0..50).map(|_| unique("ae")).collect();
    let rows: Vec<AuditRow> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| row(id, (i % 2 == 0).then_some("p1")))
        .collect();
    store().append_audit_events(&rows).expect("appended");
    let back = stored(&ids);
    assert_eq!(
        back.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        ids,
        "in the order given"
    );
    assert!(back.windows(2).all(|w| w[0].seq < w[1].seq));
    // Who and what under the index, coded facts beside it.
    assert_eq!(back[0].terms, ["agent=Practitioner/1"]);
    assert_eq!(back[0].codes, ["action=R"]);
    assert_eq!(
        store().audit_event(&ids[7]).expect("read").as_deref(),
        Some(rows[7].content.as_str())
    );
}

#[test]
fn events_of_a_transaction_that_rolls_back_are_not_kept() {
    let id = unique("ae");
    let result: Result<(), StoreError> = store().transaction(|tx| {
        tx.append_audit_events(&[row(&id, None)])?;
        Err(StoreError::Internal(
            "the write failed after its event".into(),
        ))
    });
    assert!(result.is_err());
    assert_eq!(store().audit_event(&id).expect("read"), None);
    store()
        .transaction(|tx| tx.append_audit_events(&[row(&id, None)]))
        .expect("committed");
    assert!(store().audit_event(&id).expect("read").is_some());
}

#[test]
fn recorded_events_can_never_be_changed_or_removed() {
    let id = unique("ae");
    store()
        .append_audit_events(&[row(&id, Some("p2"))])
        .expect("appended");
    let mut conn = PgConnection::establish(database_url()).expect("a connection");
    for statement in [
        "UPDATE audit_events SET content = '{}' WHERE id = $1",
        "DELETE FROM audit_events WHERE id = $1",
    ] {
        let err = diesel::sql_query(statement)
            .bind::<Text, _>(&id)
            .execute(&mut conn)
            .expect_err("refused");
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
    let err = diesel::sql_query("TRUNCATE audit_events")
        .execute(&mut conn)
        .expect_err("refused");
    assert!(err.to_string().contains("append-only"), "TRUNCATE: {err}");
    assert_eq!(
        store().audit_event(&id).expect("read").as_deref(),
        Some(row(&id, None).content.as_str())
    );
}

#[test]
fn a_value_postgresql_text_cannot_hold_does_not_sink_the_batch() {
    let (clean, dirty) = (unique("ae"), unique("ae"));
    let mut odd = row(&dirty, Some("p\0 3"));
    odd.terms.push("agent-name=nul\0 in a name".into());
    store()
        .append_audit_events(&[row(&clean, None), odd])
        .expect("appended");
    let back = stored(&[clean, dirty]);
    assert_eq!(back.len(), 2);
    assert!(back[1]
        .terms
        .contains(&"agent-name=nul in a name".to_string()));
}

/// Appends list their events' terms in the index's pending list; the sequencer merges
/// the list into the index. An event is found by its terms before and after the merge.
#[test]
fn new_events_are_found_by_their_terms_before_and_after_their_merge_into_the_index() {
    let practitioner = unique("Practitioner/merge");
    let ids: Vec<String> = (0..40).map(|_| unique("ae")).collect();
    let rows: Vec<AuditRow> = ids
        .iter()
        .map(|id| AuditRow {
            terms: vec![format!("agent={practitioner}")],
            ..row(id, Some("p-merge"))
        })
        .collect();
    store().append_audit_events(&rows).expect("appended");
    let term = format!("agent={practitioner}");
    let found = |what: &str| {
        let events = store().audit_events_with(&term).expect("searched");
        assert_eq!(events.len(), ids.len(), "{what}");
        assert!(
            events.iter().zip(&rows).all(|(e, r)| *e == r.content),
            "{what}"
        );
    };
    found("pending");
    #[derive(QueryableByName)]
    struct Options {
        #[diesel(sql_type = Array<Text>)]
        options: Vec<String>,
    }
    let mut conn = PgConnection::establish(database_url()).expect("a connection");
    let index = diesel::sql_query(
        "SELECT reloptions AS options FROM pg_class WHERE relname = 'audit_events_by_term'",
    )
    .get_result::<Options>(&mut conn)
    .expect("the index's options");
    assert!(index.options.contains(&"fastupdate=on".to_string()));
    store().merge_audit_terms().expect("merged");
    found("merged");
    // Nothing new since: a second merge finds nothing of these left to move.
    store().merge_audit_terms().expect("merged again");
    found("merged twice");
}
