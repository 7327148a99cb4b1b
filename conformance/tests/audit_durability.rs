//! A kill -9 of the server at full load loses no AuditEvent of an answer a
//! client received: reads' events are committed before the first byte of
//! their answer leaves, writes' in the write's own transaction. Clients
//! hammer a server of its own (on the binary's database) with reads and
//! creates, each with its own `X-Request-Id`; once they have received a few
//! hundred answers the server is killed outright, and every answer that
//! arrived must have its events in the trail, every acknowledged create its
//! resource.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use conformance::balp::recorded_events;
use conformance::server::{start_server_with, TestServer};
use conformance::*;

/// Answers received before the kill.
const KILL_AFTER: usize = 400;
const CLIENTS: usize = 8;

fn victim() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| start_server_with(|_| Vec::new()))
}

/// What one answered request was.
#[derive(Debug, Clone)]
struct Answered {
    request_id: String,
    status: u16,
    /// `Type/id` of what a create made.
    created: Option<String>,
}

#[test]
fn every_answer_a_client_received_survives_a_kill_9() {
    let s = victim();
    // Something to read, written through the shared server (same database).
    let patient = new_patient();
    let documents: Vec<String> = (0..20)
        .map(|_| id_of(&create(&document_reference(&patient, &uid()))))
        .collect();
    let documents = Arc::new(documents);
    let answered = Arc::new(Mutex::new(Vec::<Answered>::new()));
    let received = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let pid = s.pid();

    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (documents, answered, received, killed) = (
                documents.clone(),
                answered.clone(),
                received.clone(),
                killed.clone(),
            );
            let patient = patient.clone();
            std::thread::spawn(move || {
                let mut n = 0usize;
                loop {
                    n += 1;
                    let request_id = format!("kill9-{c}-{n}-{}", uid());
                    let creating = n.is_multiple_of(4);
                    let request = if creating {
                        Request::on(s, "POST", "DocumentReference")
                            .json(&document_reference(&patient, &uid()))
                    } else {
                        let id = &documents[n % documents.len()];
                        Request::on(s, "GET", &format!("DocumentReference/{id}"))
                    };
                    match request.header("X-Request-Id", &request_id).try_send() {
                        Ok(resp) => {
                            let created = (resp.status == 201)
                                .then(|| format!("DocumentReference/{}", id_of(&resp.json())));
                            answered
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(Answered {
                                    request_id,
                                    status: resp.status,
                                    created,
                                });
                            if received.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                                // SAFETY: SIGKILL to the server this test started.
                                unsafe {
                                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                                }
                                killed.store(true, Ordering::SeqCst);
                            }
                        }
                        // The server is gone: requests in flight get no answer.
                        Err(_) if killed.load(Ordering::SeqCst) => return,
                        Err(e) => panic!("request failed before the kill: {e}"),
                    }
                }
            })
        })
        .collect();
    // Every client ends on the first request the dead server does not answer.
    for client in clients {
        client.join().expect("a client thread");
    }

    let answered = answered.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(answered.len() >= KILL_AFTER, "{}", answered.len());
    let mut missing = Vec::new();
    for a in &answered {
        assert!(a.status < 500, "{a:?}");
        let events = recorded_events(&a.request_id);
        if events.is_empty() {
            missing.push(a.clone());
            continue;
        }
        if let Some(created) = &a.created {
            // The version exists, and its event names it.
            get(created).send().assert_status(200);
            assert_eq!(
                conformance::balp::entity_refs(&events[0], "4"),
                [format!("{created}/_history/1")]
            );
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} answers have no AuditEvent: {:#?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(5)]
    );
}
