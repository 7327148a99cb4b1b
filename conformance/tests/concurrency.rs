//! Concurrent writers: optimistic locking, no lost updates, one resource per
//! conditional create.

use std::sync::{Arc, Barrier};
use std::thread;

use conformance::*;
use serde_json::{json, Value};

const THREADS: usize = 16;

/// Runs `work(i)` on THREADS threads released together; returns the results in order.
fn race<T: Send + 'static>(work: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(THREADS));
    let work = Arc::new(work);
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let work = Arc::clone(&work);
            thread::spawn(move || {
                barrier.wait();
                work(i)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
        .collect()
}

#[test]
fn racing_updates_with_the_same_if_match_let_exactly_one_win() {
    let created = create(&patient(&uid()));
    let id = id_of(&created);
    let results = race({
        let (id, created) = (id.clone(), created.clone());
        move |i| {
            let mut body = created.clone();
            body["name"] = json!([{"family": format!("Writer{i}")}]);
            let resp = put(&format!("Patient/{id}"))
                .if_match("W/\"1\"")
                .json(&body)
                .send();
            if resp.status >= 400 {
                resp.assert_outcome(resp.status);
            }
            (i, resp.status)
        }
    });
    let winners: Vec<usize> = results
        .iter()
        .filter(|(_, s)| *s == 200)
        .map(|(i, _)| *i)
        .collect();
    let refused = results.iter().filter(|(_, s)| *s == 412).count();
    assert_eq!(winners.len(), 1, "exactly one update may win: {results:?}");
    assert_eq!(refused, THREADS - 1, "the others must be 412: {results:?}");
    let now = get(&format!("Patient/{id}")).send();
    now.assert_status(200);
    assert_eq!(now.required_header("etag"), "W/\"2\"");
    assert_eq!(
        now.resource("Patient")["name"][0]["family"],
        format!("Writer{}", winners[0]).as_str(),
        "the stored version is the winner's"
    );
}

#[test]
fn concurrent_updates_without_if_match_lose_nothing() {
    const UPDATES: usize = 10;
    let created = create(&patient(&uid()));
    let id = id_of(&created);
    let statuses = race({
        let (id, created) = (id.clone(), created.clone());
        move |i| {
            (0..UPDATES)
                .map(|n| {
                    let mut body = created.clone();
                    body["name"] = json!([{"family": format!("T{i}U{n}")}]);
                    let resp = put(&format!("Patient/{id}")).json(&body).send();
                    if resp.status != 200 {
                        resp.fail("every unconditional update must succeed");
                    }
                    resp.etag_version()
                })
                .collect::<Vec<u64>>()
        }
    });
    // Each writer saw its own versions increase.
    for versions in &statuses {
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    }
    let mut all: Vec<u64> = statuses.into_iter().flatten().collect();
    all.sort_unstable();
    let expected: Vec<u64> = (2..=(1 + THREADS * UPDATES) as u64).collect();
    assert_eq!(all, expected, "every update got its own version");

    let total = 1 + THREADS * UPDATES;
    let now = get(&format!("Patient/{id}")).send();
    now.assert_status(200);
    assert_eq!(now.etag_version(), total as u64);
    let history = all_pages(&format!("Patient/{id}/_history?_count=50"));
    assert_eq!(history.len(), total, "history must hold every version");
    let versions: Vec<u64> = history
        .iter()
        .map(|e| parse_weak_etag(e["response"]["etag"].as_str().unwrap_or_default()).unwrap_or(0))
        .collect();
    let descending: Vec<u64> = (1..=total as u64).rev().collect();
    assert_eq!(versions, descending);
}

#[test]
fn concurrent_conditional_creates_make_one_resource() {
    let ident = uid();
    let results = race({
        let ident = ident.clone();
        move |_| {
            let resp = post("Patient")
                .header("If-None-Exist", format!("identifier={}", token(&ident)))
                .json(&patient(&ident))
                .send();
            let id = if resp.body.is_empty() {
                None
            } else {
                resp.json()["id"].as_str().map(str::to_string)
            };
            (resp.status, id)
        }
    });
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let existing = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(created, 1, "exactly one create: {results:?}");
    assert_eq!(existing, THREADS - 1, "the others find it: {results:?}");
    let ids: Vec<&String> = results.iter().filter_map(|(_, id)| id.as_ref()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "all answers name one resource: {ids:?}"
    );
    // And a later conditional create still finds exactly one.
    post("Patient")
        .header("If-None-Exist", format!("identifier={}", token(&ident)))
        .json(&patient(&ident))
        .send()
        .assert_status(200);
}

#[test]
fn concurrent_conditional_updates_make_one_resource() {
    let ident = uid();
    let results = race({
        let ident = ident.clone();
        move |i| {
            let mut body = patient(&ident);
            body["name"] = json!([{"family": format!("Writer{i}")}]);
            let resp = put(&format!("Patient?identifier={}", token(&ident)))
                .json(&body)
                .send();
            let id = resp.json()["id"].as_str().map(str::to_string);
            (resp.status, id)
        }
    });
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let updated = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(created, 1, "exactly one create: {results:?}");
    assert_eq!(updated, THREADS - 1, "the others update it: {results:?}");
    let ids: Vec<&String> = results.iter().filter_map(|(_, id)| id.as_ref()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one resource: {ids:?}"
    );
    let id = ids
        .first()
        .map(|s| s.to_string())
        .expect("some answer names the resource");
    let now = get(&format!("Patient/{id}")).send();
    assert_eq!(now.etag_version(), THREADS as u64);
}

#[test]
fn concurrent_creates_and_reads_of_many_resources() {
    let results: Vec<Vec<(String, Value)>> = race(|_| {
        (0..5)
            .map(|_| {
                let created = create(&patient(&uid()));
                (id_of(&created), created)
            })
            .collect()
    });
    let all: Vec<(String, Value)> = results.into_iter().flatten().collect();
    let mut ids: Vec<&String> = all.iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), THREADS * 5, "every create got its own id");
    for (id, created) in &all {
        assert_eq!(&read("Patient", id), created);
    }
}
