//! Group commit of reads' AuditEvents against a real private PostgreSQL
//! cluster: every recorded event is durable when `record` returns, many
//! concurrent readers share commits, and a batch that cannot commit fails
//! every reader in it (fail closed) while the log goes on.

use std::sync::OnceLock;

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};
use fhirledger_postgres::cluster::disposable_store;
use fhirledger_postgres::{AuditRow, PgStore};
use fhirledger_service::AuditLog;

fn cluster() -> &'static (String, PgStore) {
    static STORE: OnceLock<(String, PgStore)> = OnceLock::new();
    STORE.get_or_init(|| disposable_store("audit-log-test").expect("a store on a private cluster"))
}

fn row(id: &str) -> AuditRow {
    AuditRow {
        id: id.to_string(),
        recorded: Utc::now(),
        patient_id: Some("p1".into()),
        terms: vec!["action=R".into()],
        client_recorded: false,
        content: format!(r#"{{"resourceType":"AuditEvent","id":"{id}"}}"#),
    }
}

#[derive(QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    events: i64,
    #[diesel(sql_type = BigInt)]
    transactions: i64,
}

/// How many of `ids` are stored, and by how many transactions.
fn stored(ids: &[String]) -> Counts {
    let mut conn = PgConnection::establish(&cluster().0).expect("a connection");
    diesel::sql_query(
        "SELECT count(*) AS events, count(DISTINCT xmin::text) AS transactions \
         FROM audit_events WHERE id = ANY($1)",
    )
    .bind::<Array<Text>, _>(ids)
    .get_result(&mut conn)
    .expect("counts")
}

fn log() -> AuditLog {
    AuditLog::start(
        2,
        512,
        std::time::Duration::ZERO,
        std::time::Duration::from_secs(30),
        || {
            cluster()
                .1
                .audit_appender(std::time::Duration::from_secs(30))
        },
    )
    .expect("writers started")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_share_commits_and_every_event_is_durable_on_return() {
    let log = log();
    let ids: Vec<String> = (0..400)
        .map(|_| format!("ae-{}", uuid::Uuid::new_v4()))
        .collect();
    let mut readers = Vec::new();
    for id in ids.clone() {
        let log = log.clone();
        readers.push(tokio::spawn(async move {
            log.record(vec![row(&id)]).await.map(|()| id)
        }));
    }
    for reader in readers {
        let id = reader.await.expect("the reader ran").expect("recorded");
        // Durable the moment `record` returned: visible to any other connection.
        assert_eq!(
            stored(std::slice::from_ref(&id)).events,
            1,
            "{id} is not stored"
        );
    }
    let counts = stored(&ids);
    assert_eq!(counts.events, 400);
    assert!(
        counts.transactions < 400,
        "400 concurrent reads took {} commits: none were shared",
        counts.transactions
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_cannot_commit_fails_its_readers_and_the_log_goes_on() {
    let log = log();
    let taken = format!("ae-{}", uuid::Uuid::new_v4());
    log.record(vec![row(&taken)]).await.expect("recorded");
    // The same id again violates the table's uniqueness: the batch cannot commit.
    let refused = log
        .record(vec![
            row(&format!("ae-{}", uuid::Uuid::new_v4())),
            row(&taken),
        ])
        .await
        .expect_err("a batch that cannot commit is refused");
    assert_eq!(refused.status.code(), 503);
    assert!(refused.to_string().contains("audit trail"), "{refused}");
    let next = format!("ae-{}", uuid::Uuid::new_v4());
    log.record(vec![row(&next)]).await.expect("the log goes on");
    assert_eq!(stored(&[next]).events, 1);
}
