//! Stateless replicas: several `fhirledger serve` processes on one database
//! and one public base URL (a deployment behind a balancer) behave as one
//! server. Each test runs two replicas at once and checks, the way a user
//! would notice it, that what one process changed holds at the other on
//! the very next request: signing keys rotated while both run, a patient's
//! Consent granted and taken back, emergency access opened and switched
//! off, failed sign-ins and token requests counted once for the whole
//! deployment.
//!
//! Covered elsewhere: a token revoked at one replica is refused by another
//! (tests/deployment.rs), the anchoring worker's leadership
//! (tests/anchoring.rs), a process started after a rotation
//! (tests/smart_keys.rs).

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use conformance::consent_case::*;
use conformance::server::{fresh_database, start_server_on, start_server_with, TestServer};
use conformance::smart::{cli, BackendClient, SigningKey};
use conformance::smart_flow::*;
use conformance::*;
use serde_json::{json, Value};

fn leak(s: TestServer) -> &'static TestServer {
    Box::leak(Box::new(s))
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The shared server's second replica: the binary's database, the shared
/// server's public base URL. `server()` is replica A, this is B.
fn replica() -> &'static TestServer {
    static B: OnceLock<&'static TestServer> = OnceLock::new();
    B.get_or_init(|| {
        let base = server().public_base.clone();
        leak(start_server_with(move |_| {
            env(&[("FHIRLEDGER_BASE_URL", &base)])
        }))
    })
}

/// A URL the deployment (public base `deployment`) hands out, sent to the
/// replica `s` instead: what a balancer would do with it.
fn via(deployment: &str, s: &TestServer, url: &str) -> String {
    match url.strip_prefix(deployment) {
        Some(rest) => format!("{}{rest}", s.public_base),
        None => panic!("{url} is not on the deployment's public base {deployment}"),
    }
}

// --------------------------------------------------------- signing keys

fn kid(token: &str) -> String {
    jwt_header(token)["kid"]
        .as_str()
        .expect("every token names its key")
        .to_string()
}

/// Where replica `s` publishes its keys: the `jwks_uri` of its discovery
/// document (which names the deployment's public base), sent to `s`.
fn jwks_at(deployment: &str, s: &'static TestServer) -> String {
    let discovery = Request::on(s, "GET", ".well-known/smart-configuration")
        .no_auth()
        .send();
    discovery.assert_status(200);
    let jwks_uri = discovery.json()["jwks_uri"]
        .as_str()
        .unwrap_or_else(|| discovery.fail("no jwks_uri"))
        .to_string();
    via(deployment, s, &jwks_uri)
}

/// The kids published at `jwks` (of replica `s`).
fn published_kids(s: &'static TestServer, jwks: &str) -> Vec<String> {
    let resp = Request::on(s, "GET", jwks).no_auth().send();
    resp.assert_status(200);
    resp.json()["keys"]
        .as_array()
        .unwrap_or_else(|| resp.fail("no keys"))
        .iter()
        .map(|k| k["kid"].as_str().expect("a kid").to_string())
        .collect()
}

const PATIENTS: &str = "system/Patient.rs";

/// The status of a search with `token` at `s`.
fn status_with(s: &'static TestServer, token: &str) -> u16 {
    Request::on(s, "GET", "Patient?_count=1")
        .bearer(token)
        .send()
        .status
}

/// A token of `client` issued by replica `s`.
fn token_from(s: &TestServer, client: &BackendClient) -> String {
    let (status, body) =
        client.request_token_via(&format!("{}/auth/token", s.public_base), PATIENTS);
    assert_eq!(status, 200, "{} refused a token: {body}", s.public_base);
    body["access_token"]
        .as_str()
        .expect("an access_token")
        .to_string()
}

#[test]
fn a_signing_key_rotated_while_replicas_run_is_published_and_accepted_by_each_at_once() {
    // A database of its own: the rotation and the time shift below must not
    // reach the other tests' servers.
    let url = fresh_database(&format!("replicas_keys_{}", &uid()[..12]));
    let b = leak(start_server_on(&url, |_| Vec::new()));
    let deployment = b.public_base.clone();
    let client = BackendClient::register(b, PATIENTS, SigningKey::es384());
    let base = deployment.clone();
    let a = leak(start_server_on(&url, move |_| {
        env(&[("FHIRLEDGER_BASE_URL", &base)])
    }));

    // B has validated a token of A's (its keys and checked tokens warm).
    let before = token_from(a, &client);
    let old_kid = kid(&before);
    assert_eq!(status_with(b, &before), 200);
    assert_eq!(status_with(b, &before), 200);
    assert_eq!(status_with(a, &before), 200);
    // One more token from before the rotation, which no process has checked yet.
    let unseen = token_from(b, &client);
    assert_eq!(kid(&unseen), old_kid);

    let rotated = cli(a, &["keys", "rotate"]);
    let new_kid = rotated["kid"].as_str().expect("the new kid").to_string();
    assert_ne!(new_kid, old_kid, "a rotation makes a new key");
    let rotated_at = Instant::now();

    // A new key is published before it signs: for now both replicas still
    // sign with the old one, and each accepts the other's tokens.
    let from_a = token_from(a, &client);
    let from_b = token_from(b, &client);
    assert_eq!(
        (kid(&from_a), kid(&from_b)),
        (old_kid.clone(), old_kid.clone())
    );
    assert_eq!(status_with(b, &from_a), 200);
    assert_eq!(status_with(a, &from_b), 200);

    // Each process reads the key set again every 30 s (keys.rs,
    // RELOAD_EVERY): B publishes the new key within that, keeping the old.
    let b_jwks = jwks_at(&deployment, b);
    let mut conn = {
        use diesel::Connection;
        diesel::PgConnection::establish(&url).expect("a connection")
    };
    let deadline = rotated_at + Duration::from_secs(45);
    loop {
        let kids = published_kids(b, &b_jwks);
        if kids.contains(&new_kid) {
            assert!(kids.contains(&old_kid), "the old key is dropped: {kids:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B does not publish the rotated key {new_kid} {:?} after the rotation: {kids:?}",
            rotated_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "B published the new key {:?} after the rotation",
        rotated_at.elapsed()
    );

    // The new key signs once it has been published for 90 s (PUBLISH_AHEAD).
    // Every key is moved 91 s back in time, as if that time had passed, now
    // that B has published the new key (what those 90 s guarantee of every
    // replica). A, started after B, reloads its keys after B does: from then
    // on it signs with the new key (or from its reload after that, 30 s
    // later, when it already reloaded in between).
    {
        use diesel::connection::SimpleConnection;
        conn.batch_execute(
            "UPDATE auth_signing_keys SET created_at = created_at - interval '91 seconds', \
             retired_at = retired_at - interval '91 seconds'",
        )
        .expect("the keys moved back in time");
    }
    // A signs with the new key from its next reload of the set (at most 30 s).
    let shifted_at = Instant::now();
    let deadline = shifted_at + Duration::from_secs(40);
    let after = loop {
        let token = token_from(a, &client);
        if kid(&token) == new_kid {
            break token;
        }
        assert_eq!(kid(&token), old_kid);
        assert!(
            Instant::now() < deadline,
            "A does not sign with the new key {:?} after it was due (two reloads)",
            shifted_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!(
        "A signed with the new key {:?} after it was due",
        shifted_at.elapsed()
    );

    // B accepts A's first token under the new key on the very first request,
    // and both replicas publish both keys.
    assert_eq!(status_with(b, &after), 200, "B refuses A's new-key token");
    assert_eq!(status_with(a, &after), 200);
    for s in [a, b] {
        let kids = published_kids(s, &jwks_at(&deployment, s));
        assert!(
            kids.contains(&old_kid) && kids.contains(&new_kid),
            "{}: {kids:?}",
            s.public_base
        );
    }
    // The tokens from before the rotation still work at both: the one B
    // checked before, and one neither had checked.
    for s in [a, b] {
        assert_eq!(status_with(s, &before), 200);
        assert_eq!(status_with(s, &unseen), 200);
    }
    assert_eq!(a.stop(), "exit status: 0", "{}", a.log_tail(40));
    assert_eq!(b.stop(), "exit status: 0", "{}", b.log_tail(40));
}

// ------------------------------------------------------------- Consent

const DOCTOR_SCOPES: &str = "openid fhirUser user/*.cruds";
const PATIENT_SCOPES: &str = "openid fhirUser patient/*.cruds";

/// Two hospitals and an app, made once on replica A.
struct World {
    org_a: String,
    org_b: String,
    client: AppClient,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World {
        org_a: new_hospital(),
        org_b: new_hospital(),
        client: AppClient::register(server(), "public", None),
    })
}

/// A doctor of hospital B (the patients are A's) and their token, signed
/// in at replica A.
struct Doctor {
    user: TestUser,
    token: String,
}

impl Doctor {
    fn new() -> Doctor {
        let w = world();
        let user = new_doctor(server(), &w.org_b);
        let token = tokens_for(server(), &w.client, &user, DOCTOR_SCOPES).access_token();
        Doctor { user, token }
    }

    fn practitioner(&self) -> String {
        format!("Practitioner/{}", self.user.fhir_id())
    }
}

/// A patient of hospital A with three documents (a note, a restricted lab
/// report, an image with its Binary), and the patient's own token.
struct Case {
    documents: PatientDocuments,
    token: String,
}

impl std::ops::Deref for Case {
    type Target = PatientDocuments;

    fn deref(&self) -> &PatientDocuments {
        &self.documents
    }
}

fn new_case() -> Case {
    let w = world();
    let documents = PatientDocuments::create(&w.org_a, "Replicated");
    let user = TestUser::create(
        server(),
        "patient",
        Some(&w.org_a),
        Some(&format!("Patient/{}", documents.patient)),
    );
    let token = tokens_for(server(), &w.client, &user, PATIENT_SCOPES).access_token();
    Case { documents, token }
}

/// The patient records a Consent with this provision at replica `s`;
/// returns it as stored.
fn patient_records(s: &'static TestServer, case: &Case, provision: Value) -> Value {
    let mut consent = conformance::consent(&case.patient, &uid());
    consent["provision"] = provision;
    let resp = Request::on(s, "POST", "Consent")
        .bearer(&case.token)
        .json(&consent)
        .send();
    resp.assert_status(201);
    resp.resource("Consent")
}

/// Which of the case's documents `token` reads at replica `s`: direct reads
/// first (the very first request is a read of the note), then a search with
/// its accurate total, and the image's Binary, which must all agree.
#[track_caller]
fn sees_at(s: &'static TestServer, token: &str, case: &Case) -> BTreeSet<&'static str> {
    let by_read: BTreeSet<&'static str> = case
        .documents()
        .into_iter()
        .filter(|(_, id)| {
            status_of(
                &Request::on(s, "GET", &format!("DocumentReference/{id}"))
                    .bearer(token)
                    .send(),
            )
        })
        .map(|(name, _)| name)
        .collect();
    let resp = Request::on(
        s,
        "GET",
        &format!(
            "DocumentReference?patient=Patient/{}&_total=accurate",
            case.patient
        ),
    )
    .bearer(token)
    .send();
    resp.assert_status(200);
    let bundle = resp.resource("Bundle");
    if bundle["total"] != by_read.len() {
        resp.fail(&format!(
            "the total at {} counts other than the {by_read:?} that read",
            s.public_base
        ));
    }
    if case.names(&doc_ids(&bundle)) != by_read {
        resp.fail(&format!(
            "the search at {} disagrees with the reads {by_read:?}",
            s.public_base
        ));
    }
    let binary = Request::on(s, "GET", &format!("Binary/{}", case.binary))
        .bearer(token)
        .send();
    assert_eq!(
        status_of(&binary),
        by_read.contains("img"),
        "the Binary at {}",
        s.public_base
    );
    by_read
}

/// A search one document a page started at replica `first` and continued
/// at `then` (its `next` links, which name the deployment's base, sent to
/// `then`): every page's total, and the documents found.
fn paged(
    first: &'static TestServer,
    then: &'static TestServer,
    token: &str,
    case: &Case,
) -> (Vec<u64>, BTreeSet<&'static str>) {
    let mut totals = Vec::new();
    let mut found = BTreeSet::new();
    let mut next = Some(first.url(&format!(
        "DocumentReference?patient=Patient/{}&_count=1&_total=accurate&_sort=date",
        case.patient
    )));
    while let Some(u) = next {
        assert!(totals.len() <= 3, "more pages than documents");
        let resp = Request::on(first, "GET", &u).bearer(token).send();
        resp.assert_status(200);
        let page = resp.resource("Bundle");
        totals.push(page["total"].as_u64().unwrap_or(99));
        found.extend(case.names(&doc_ids(&page)));
        next = link(&page, "next").map(|l| via(&server().public_base, then, &l));
    }
    (totals, found)
}

fn set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

const ALL: [&str; 3] = ["img", "lab", "note"];
const NONE: [&str; 0] = [];

#[test]
fn a_consent_recorded_or_taken_back_at_one_replica_decides_at_the_other_on_the_next_request() {
    let (a, b) = (server(), replica());
    let doctor = Doctor::new();
    let case = new_case();
    // B has served the doctor (token checked and kept) and shows nothing.
    assert_eq!(sees_at(b, &doctor.token, &case), set(&NONE));
    assert_eq!(sees_at(b, &doctor.token, &case), set(&NONE));

    // The patient grants the doctor everything, at A.
    let permit = patient_records(
        a,
        &case,
        json!({ "type": "permit", "actor": [actor(&doctor.practitioner())] }),
    );
    assert_eq!(sees_at(b, &doctor.token, &case), set(&ALL));
    assert_eq!(sees_at(a, &doctor.token, &case), set(&ALL));
    // A search's pages and totals are the same whichever replica serves
    // them, and a page's cursor from A continues at B.
    let (totals, found) = paged(a, b, &doctor.token, &case);
    assert_eq!((totals, found), (vec![3, 3, 3], set(&ALL)));
    let (totals, found) = paged(b, a, &doctor.token, &case);
    assert_eq!((totals, found), (vec![3, 3, 3], set(&ALL)));

    // The patient takes it back, at A: hidden at B on the next request.
    let mut revoked = permit.clone();
    revoked["status"] = json!("inactive");
    Request::on(a, "PUT", &format!("Consent/{}", id_of(&permit)))
        .bearer(&case.token)
        .json(&revoked)
        .send()
        .assert_status(200);
    assert_eq!(sees_at(b, &doctor.token, &case), set(&NONE));
    Request::on(b, "GET", &format!("DocumentReference/{}", case.note))
        .bearer(&doctor.token)
        .send()
        .assert_outcome(404);
    assert_eq!(sees_at(a, &doctor.token, &case), set(&NONE));
    let (totals, found) = paged(a, b, &doctor.token, &case);
    assert_eq!((totals, found), (vec![0], set(&NONE)));

    // Granted again at B, then the restricted report denied at A.
    patient_records(
        b,
        &case,
        json!({ "type": "permit", "actor": [actor(&doctor.practitioner())] }),
    );
    assert_eq!(sees_at(a, &doctor.token, &case), set(&ALL));
    assert_eq!(sees_at(b, &doctor.token, &case), set(&ALL));
    patient_records(
        a,
        &case,
        json!({ "type": "deny", "actor": [actor(&doctor.practitioner())],
                "securityLabel": [{ "system": CONFIDENTIALITY, "code": "R" }] }),
    );
    Request::on(b, "GET", &format!("DocumentReference/{}", case.lab))
        .bearer(&doctor.token)
        .send()
        .assert_outcome(404);
    assert_eq!(sees_at(b, &doctor.token, &case), set(&["img", "note"]));
    assert_eq!(sees_at(a, &doctor.token, &case), set(&["img", "note"]));
    let (totals, found) = paged(b, a, &doctor.token, &case);
    assert_eq!((totals, found), (vec![2, 2], set(&["img", "note"])));
}

// ----------------------------------------------------- emergency access

fn break_glass(s: &'static TestServer, token: &str, patient: &str, reason: &str) -> Response {
    Request::on(s, "POST", &format!("Patient/{patient}/$emergency-access"))
        .bearer(token)
        .json(&json!({ "resourceType": "Parameters",
            "parameter": [{ "name": "reason", "valueString": reason }] }))
        .send()
}

/// The one AuditEvent of request `request_id`.
#[track_caller]
fn only_event(request_id: &str) -> Value {
    let events = conformance::balp::recorded_events(request_id);
    assert_eq!(events.len(), 1, "{events:#?}");
    events.into_iter().next().unwrap_or_default()
}

#[test]
fn emergency_access_opened_at_one_replica_holds_at_the_other_and_is_in_its_trail() {
    let (a, b) = (server(), replica());
    let (doctor, colleague) = (Doctor::new(), Doctor::new());
    let case = new_case();
    assert_eq!(sees_at(b, &doctor.token, &case), set(&NONE));

    // The doctor breaks the glass at A; B opens the patient at once.
    break_glass(a, &doctor.token, &case.patient, "unconscious in the ER").assert_status(200);
    let read = Request::on(b, "GET", &format!("DocumentReference/{}", case.note))
        .bearer(&doctor.token)
        .send();
    read.assert_status(200);
    Request::on(b, "GET", &format!("Patient/{}", case.patient))
        .bearer(&doctor.token)
        .send()
        .assert_status(200);
    assert_eq!(sees_at(b, &doctor.token, &case), set(&ALL));
    // Only that doctor.
    assert_eq!(sees_at(b, &colleague.token, &case), set(&NONE));

    // B's AuditEvent of the read says the emergency access allowed it.
    let event = only_event(&read.required_header("x-request-id"));
    assert_eq!(event["outcome"], "0", "{event:#}");
    let who = &event["agent"][0];
    assert_eq!(who["who"]["reference"], doctor.practitioner(), "{event:#}");
    assert!(
        who["policy"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p == "urn:fhirledger:access:emergency-access"),
        "the read's event does not name the emergency access: {event:#}"
    );
    assert_eq!(
        conformance::balp::entity_refs(&event, "1"),
        [format!("Patient/{}", case.patient)]
    );
    assert_eq!(
        conformance::balp::entity_refs(&event, "4")
            .iter()
            .filter(|r| r.starts_with(&format!("DocumentReference/{}", case.note)))
            .count(),
        1,
        "{event:#}"
    );

    // The patient switches emergency access off at A: the colleague's
    // break-the-glass at B is refused on the next request.
    patient_records(
        a,
        &case,
        json!({ "type": "deny", "purpose": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG" }] }),
    );
    let refused = break_glass(b, &colleague.token, &case.patient, "trauma");
    let outcome = refused.assert_outcome(403);
    assert!(
        outcome.to_string().contains("emergency access off"),
        "{outcome}"
    );
    assert_eq!(sees_at(b, &colleague.token, &case), set(&NONE));
    // Whatever the switch does to the grant already given, both replicas
    // say the same.
    assert_eq!(
        sees_at(b, &doctor.token, &case),
        sees_at(a, &doctor.token, &case)
    );
}

// ------------------------------------------------------------ sign-ins

#[test]
fn failed_sign_ins_are_counted_across_replicas_and_the_lock_holds_at_each() {
    let (a, b) = (server(), replica());
    let w = world();
    let patient = new_patient_user(a, &w.org_a);
    let mut wrong = patient.clone();
    wrong.password = "not-the-password".into();
    // One browser, sent by the balancer to either replica: the pending
    // authorization request is in the database, so either signs in.
    let browser = Browser::new(a);
    let login = browser
        .authorize(&w.client.request("openid fhirUser patient/*.rs"))
        .login();
    let sign_in_at = |s: &TestServer, user: &TestUser| {
        browser.post_page(
            &format!("{}/auth/login", s.public_base),
            &[
                ("request", login.as_str()),
                ("email", user.email.as_str()),
                ("password", user.password.as_str()),
            ],
        )
    };
    // Four wrong passwords, two at each replica: each answered as wrong.
    for s in [a, b, a, b] {
        let page = sign_in_at(s, &wrong);
        assert_eq!(page.status, 401, "at {}: {}", s.public_base, page.body);
        assert!(page.body.contains("The email or password is wrong."));
    }
    // The fifth (B's third) locks the account.
    let locked = sign_in_at(b, &wrong);
    assert_eq!(
        locked.status, 429,
        "failed sign-ins are counted per replica: {}",
        locked.body
    );
    let retry: i64 = locked
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    // The right password is refused at both replicas now.
    for s in [a, b] {
        let refused = sign_in_at(s, &patient);
        assert_eq!(
            refused.status, 429,
            "at {}: {}",
            s.public_base, refused.body
        );
        assert!(refused.body.contains("Too many failed sign-ins"));
        assert!(refused.header("retry-after").is_some());
    }
}

// ------------------------------------------------------- token requests

#[test]
fn a_clients_token_requests_are_counted_once_for_all_replicas() {
    let limit = [("FHIRLEDGER_TOKEN_REQUESTS_PER_CLIENT_PER_MINUTE", "4")];
    let a = leak(start_server_with(|_| env(&limit)));
    let base = a.public_base.clone();
    let b = leak(start_server_with(move |_| {
        let mut e = env(&limit);
        e.extend(env(&[("FHIRLEDGER_BASE_URL", &base)]));
        e
    }));
    let client = BackendClient::register(a, PATIENTS, SigningKey::es384());
    // Two tokens at each replica, all within the minute the first starts.
    for s in [a, b, a, b] {
        let token = token_from(s, &client);
        assert_eq!(status_with(a, &token), 200);
    }
    // The fifth request is one too many, wherever it goes.
    for s in [b, a] {
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", PATIENTS),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &client.assertion()),
        ];
        let refused = form_post(&format!("{}/auth/token", s.public_base), &form, None);
        assert_eq!(
            refused.status, 429,
            "at {}: token requests are counted per replica: {refused:?}",
            s.public_base
        );
        refused.assert_error(429, "temporarily_unavailable");
        let retry: i64 = refused
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("a Retry-After in seconds");
        assert!((1..=60).contains(&retry), "{retry}");
    }
    assert_eq!(a.stop(), "exit status: 0", "{}", a.log_tail(40));
    assert_eq!(b.stop(), "exit status: 0", "{}", b.log_tail(40));
}
