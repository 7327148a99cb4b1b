//! Scope enforcement on every FHIR interaction, with real tokens from the
//! authorization code flow: a patient's compartment (reads, searches,
//! totals, paging, `_include`/`_revinclude`, writes, Bundles, history,
//! Binary), the meaning of each v2 letter, v1 scopes, granular scopes, a
//! doctor's hospital, and the 401s for missing and bad tokens.

use std::sync::OnceLock;

use conformance::smart_flow::*;
use conformance::*;
use serde_json::{json, Value};

/// Two hospitals and their records, made once and never changed: tests that
/// write use patients of their own.
struct World {
    org_a: String,
    org_b: String,
    alice: TestUser,
    bob: TestUser,
    carol: String,
    /// Alice's documents: a note (authored by Bob) and an image.
    alice_note: String,
    alice_image: String,
    /// Bob's document (authored by Alice), its attachment at an absolute URL.
    bob_doc: String,
    carol_doc: String,
    /// Alice's note points at this Binary as `Binary/ID`.
    alice_binary: String,
    /// Bob's document points at this one as `{fhir base}/Binary/ID`.
    bob_binary: String,
    client: AppClient,
    alice_token: String,
    bob_token: String,
}

const CATEGORY: &str = "http://example.org/doc-category";

fn upload_binary(bytes: &[u8]) -> String {
    let resp = post("Binary")
        .content_type("application/pdf")
        .bytes(bytes.to_vec())
        .send();
    resp.assert_status(201);
    let location = resp.required_header("location");
    location
        .strip_prefix(&format!("{}/Binary/", base()))
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| resp.fail("no Binary id in Location"))
        .to_string()
}

fn doc_with(patient: &str, category: &str, author: Option<&str>, url: Option<&str>) -> String {
    let mut d = document(patient, category);
    if let Some(a) = author {
        d["author"] = json!([{ "reference": format!("Patient/{a}") }]);
    }
    if let Some(u) = url {
        d["content"] = json!([{ "attachment": { "contentType": "application/pdf", "url": u } }]);
    }
    id_of(&conformance::create(&d))
}

/// Everything a patient app may ask for.
const PATIENT_SCOPES: &str = "openid fhirUser patient/*.cruds";

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let s = server();
        let org_a = new_hospital();
        let org_b = new_hospital();
        let alice = new_patient_user(s, &org_a);
        let bob = new_patient_user(s, &org_a);
        let carol = new_patient_in(&org_b, "Carol");
        let alice_binary = upload_binary(b"%PDF-1.4 alice");
        let bob_binary = upload_binary(b"%PDF-1.4 bob");
        let alice_note = doc_with(
            alice.fhir_id(),
            "note",
            Some(bob.fhir_id()),
            Some(&format!("Binary/{alice_binary}")),
        );
        let alice_image = doc_with(alice.fhir_id(), "imaging", None, None);
        let bob_doc = doc_with(
            bob.fhir_id(),
            "note",
            Some(alice.fhir_id()),
            Some(&format!("{}/Binary/{bob_binary}", base())),
        );
        let carol_doc = doc_with(&carol, "note", None, None);
        let client = AppClient::register(s, "public", None);
        let alice_token = tokens_for(s, &client, &alice, PATIENT_SCOPES).access_token();
        let bob_token = tokens_for(s, &client, &bob, PATIENT_SCOPES).access_token();
        World {
            org_a,
            org_b,
            alice,
            bob,
            carol,
            alice_note,
            alice_image,
            bob_doc,
            carol_doc,
            alice_binary,
            bob_binary,
            client,
            alice_token,
            bob_token,
        }
    })
}

/// A token for `user` with `scope` through `client`.
fn app_token(client: &AppClient, user: &TestUser, scope: &str) -> String {
    tokens_for(server(), client, user, scope).access_token()
}

fn search(token: &str, query: &str) -> Value {
    let resp = get(query).bearer(token).send();
    resp.assert_status(200);
    resp.resource("Bundle")
}

/// `(resourceType/id, search mode)` of each entry.
fn entry_refs(bundle: &Value) -> Vec<(String, String)> {
    entries(bundle)
        .iter()
        .map(|e| {
            (
                format!(
                    "{}/{}",
                    e["resource"]["resourceType"].as_str().unwrap_or("?"),
                    e["resource"]["id"].as_str().unwrap_or("?")
                ),
                e["search"]["mode"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn ids_of(bundle: &Value, resource_type: &str) -> Vec<String> {
    let mut ids: Vec<String> = entry_refs(bundle)
        .into_iter()
        .filter_map(|(r, _)| {
            r.strip_prefix(&format!("{resource_type}/"))
                .map(str::to_string)
        })
        .collect();
    ids.sort();
    ids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// How many DocumentReferences carry this identifier (asked with the system token).
fn documents_with(identifier: &str) -> u64 {
    let resp = get(&format!(
        "DocumentReference?identifier={}&_total=accurate",
        url_encode(&conformance::token(identifier))
    ))
    .send();
    resp.assert_status(200);
    resp.json()["total"].as_u64().expect("a total")
}

fn identifier_of(d: &Value) -> String {
    d["identifier"][0]["value"].as_str().unwrap().to_string()
}

// ------------------------------------------------------------ a patient

#[test]
fn a_patient_reads_only_their_own_documents() {
    let w = world();
    for id in [&w.alice_note, &w.alice_image] {
        get(&format!("DocumentReference/{id}"))
            .bearer(&w.alice_token)
            .send()
            .assert_status(200);
    }
    // Another patient's, in the same hospital or another: as if absent.
    for id in [&w.bob_doc, &w.carol_doc] {
        get(&format!("DocumentReference/{id}"))
            .bearer(&w.alice_token)
            .send()
            .assert_outcome(404);
    }
    get(&format!("Patient/{}", w.bob.fhir_id()))
        .bearer(&w.alice_token)
        .send()
        .assert_outcome(404);
    get(&format!("Patient/{}", w.alice.fhir_id()))
        .bearer(&w.alice_token)
        .send()
        .assert_status(200);
}

#[test]
fn a_patient_search_counts_and_pages_only_their_own_documents() {
    let w = world();
    let mine = sorted(vec![w.alice_note.clone(), w.alice_image.clone()]);
    let all = search(&w.alice_token, "DocumentReference?_total=accurate");
    assert_eq!(all["total"], 2, "{all}");
    assert_eq!(ids_of(&all, "DocumentReference"), mine);
    // Asking for someone else's documents explicitly finds nothing.
    for other in [w.bob.fhir_id(), w.carol.as_str()] {
        let b = search(
            &w.alice_token,
            &format!("DocumentReference?patient=Patient/{other}&_total=accurate"),
        );
        assert_eq!(b["total"], 0, "{b}");
        assert!(entries(&b).is_empty());
    }
    // Page by page: the total and every page stay within her documents.
    let mut seen = Vec::new();
    let mut next = Some(url("DocumentReference?_count=1&_total=accurate"));
    while let Some(u) = next {
        let page = search(&w.alice_token, &u);
        assert_eq!(page["total"], 2, "{page}");
        seen.extend(ids_of(&page, "DocumentReference"));
        next = link(&page, "next");
        assert!(seen.len() <= 2, "more pages than documents: {seen:?}");
    }
    assert_eq!(sorted(seen), mine);
}

#[test]
fn includes_never_bring_in_other_patients() {
    let w = world();
    // Alice's note names Bob as author: the system token would include him.
    let q = format!(
        "DocumentReference?_id={}&_include=DocumentReference:author&_include=DocumentReference:subject",
        w.alice_note
    );
    let unrestricted = search(server().token(), &q);
    assert!(ids_of(&unrestricted, "Patient").contains(&w.bob.fhir_id().to_string()));
    let bundle = search(&w.alice_token, &q);
    assert_eq!(ids_of(&bundle, "Patient"), [w.alice.fhir_id()], "{bundle}");

    // Bob's document names Alice as author: never revincluded for her.
    let q = format!(
        "Patient?_id={}&_revinclude=DocumentReference:author&_revinclude=DocumentReference:subject",
        w.alice.fhir_id()
    );
    let unrestricted = search(server().token(), &q);
    assert!(ids_of(&unrestricted, "DocumentReference").contains(&w.bob_doc));
    let bundle = search(&w.alice_token, &q);
    assert_eq!(
        ids_of(&bundle, "DocumentReference"),
        sorted(vec![w.alice_note.clone(), w.alice_image.clone()]),
        "{bundle}"
    );
    // Nothing of a type the token may not read is ever included.
    let patient_only = app_token(&w.client, &w.alice, "openid patient/Patient.rs");
    let bundle = search(
        &patient_only,
        &format!(
            "Patient?_id={}&_revinclude=DocumentReference:subject",
            w.alice.fhir_id()
        ),
    );
    assert_eq!(
        ids_of(&bundle, "DocumentReference"),
        Vec::<String>::new(),
        "{bundle}"
    );
    assert_eq!(ids_of(&bundle, "Patient"), [w.alice.fhir_id()]);
    // Searching Patients reveals no one else either.
    let patients = search(&w.alice_token, "Patient?_total=accurate");
    assert_eq!(patients["total"], 1);
    assert_eq!(ids_of(&patients, "Patient"), [w.alice.fhir_id()]);
}

/// A fresh patient of hospital A, with a token.
fn fresh_patient() -> (TestUser, String) {
    let w = world();
    let user = new_patient_user(server(), &w.org_a);
    let t = app_token(&w.client, &user, PATIENT_SCOPES);
    (user, t)
}

#[test]
fn a_patient_cannot_write_for_another_patient() {
    let w = world();
    let (me, t) = fresh_patient();
    let theirs = document(w.bob.fhir_id(), "note");
    post("DocumentReference")
        .bearer(&t)
        .json(&theirs)
        .send()
        .assert_outcome(403);
    assert_eq!(
        documents_with(&identifier_of(&theirs)),
        0,
        "nothing was written"
    );
    // Their own is fine.
    let mine = document(me.fhir_id(), "note");
    post("DocumentReference")
        .bearer(&t)
        .json(&mine)
        .send()
        .assert_status(201);
    assert_eq!(documents_with(&identifier_of(&mine)), 1);
}

fn bundle_of(kind: &str, resources: &[Value]) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": kind,
        "entry": resources.iter().map(|r| json!({
            "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
            "resource": r,
            "request": { "method": "POST", "url": "DocumentReference" }
        })).collect::<Vec<_>>()
    })
}

#[test]
fn a_transaction_with_one_forbidden_entry_fails_whole() {
    let w = world();
    let (me, t) = fresh_patient();
    let mine = document(me.fhir_id(), "note");
    let theirs = document(w.bob.fhir_id(), "note");
    let resp = post(&base())
        .bearer(&t)
        .json(&bundle_of("transaction", &[mine.clone(), theirs.clone()]))
        .send();
    resp.assert_outcome(403);
    assert_eq!(documents_with(&identifier_of(&mine)), 0, "rolled back");
    assert_eq!(documents_with(&identifier_of(&theirs)), 0);
}

#[test]
fn a_batch_entry_that_is_forbidden_fails_alone() {
    let w = world();
    let (me, t) = fresh_patient();
    let mine = document(me.fhir_id(), "note");
    let theirs = document(w.bob.fhir_id(), "note");
    let mut batch = bundle_of("batch", &[mine.clone(), theirs.clone()]);
    batch["entry"].as_array_mut().unwrap().push(json!({
        "request": { "method": "GET", "url": format!("DocumentReference/{}", w.bob_doc) }
    }));
    batch["entry"].as_array_mut().unwrap().push(json!({
        "request": { "method": "GET", "url": "DocumentReference?_total=accurate" }
    }));
    let resp = post(&base()).bearer(&t).json(&batch).send();
    resp.assert_status(200);
    let out = resp.resource("Bundle");
    let statuses: Vec<String> = entries(&out)
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(statuses[0].starts_with("201"), "{statuses:?}");
    assert!(statuses[1].starts_with("403"), "{statuses:?}");
    assert!(statuses[2].starts_with("404"), "{statuses:?}");
    assert!(statuses[3].starts_with("200"), "{statuses:?}");
    // The search entry sees only the new document of this patient.
    assert_eq!(entries(&out)[3]["resource"]["total"], 1, "{out}");
    assert_eq!(documents_with(&identifier_of(&mine)), 1);
    assert_eq!(documents_with(&identifier_of(&theirs)), 0);
}

#[test]
fn history_needs_access_to_what_it_lists() {
    let w = world();
    let own = search(
        &w.alice_token,
        &format!("DocumentReference/{}/_history", w.alice_note),
    );
    assert_eq!(own["type"], "history");
    assert!(!entries(&own).is_empty());
    get(&format!("DocumentReference/{}/_history", w.bob_doc))
        .bearer(&w.alice_token)
        .send()
        .assert_outcome(404);
    get(&format!("DocumentReference/{}/_history/1", w.bob_doc))
        .bearer(&w.alice_token)
        .send()
        .assert_outcome(404);
    for path in ["DocumentReference/_history", "Patient/_history", "_history"] {
        get(path).bearer(&w.alice_token).send().assert_outcome(403);
    }
}

#[test]
fn binary_is_reached_through_the_patients_documents() {
    let w = world();
    let mine = get(&format!("Binary/{}", w.alice_binary))
        .bearer(&w.alice_token)
        .accept("application/pdf")
        .send();
    mine.assert_status(200);
    assert_eq!(mine.body, b"%PDF-1.4 alice");
    // Bob's document names his Binary by absolute URL: he reads it, Alice does not.
    let his = get(&format!("Binary/{}", w.bob_binary))
        .bearer(&w.bob_token)
        .accept("application/pdf")
        .send();
    his.assert_status(200);
    assert_eq!(his.body, b"%PDF-1.4 bob");
    get(&format!("Binary/{}", w.bob_binary))
        .bearer(&w.alice_token)
        .send()
        .assert_status(404);
    // A Binary no document points at is nobody's to read.
    let orphan = upload_binary(b"%PDF-1.4 orphan");
    get(&format!("Binary/{orphan}"))
        .bearer(&w.alice_token)
        .send()
        .assert_status(404);
    get("Binary")
        .bearer(&w.alice_token)
        .send()
        .assert_outcome(403);
}

// ------------------------------------------------------ scope semantics

#[test]
fn each_v2_letter_grants_exactly_its_interaction() {
    let w = world();
    let doc = format!("DocumentReference/{}", w.alice_note);
    // Read by id only.
    let r_only = AppClient::register(
        server(),
        "public",
        Some("openid patient/DocumentReference.r"),
    );
    let t = app_token(&r_only, &w.alice, "openid patient/DocumentReference.rs");
    get(&doc).bearer(&t).send().assert_status(200);
    get("DocumentReference")
        .bearer(&t)
        .send()
        .assert_outcome(403);
    get(&format!("DocumentReference?_id={}", w.alice_note))
        .bearer(&t)
        .send()
        .assert_outcome(403);
    // Search only.
    let t = app_token(&w.client, &w.alice, "openid patient/DocumentReference.s");
    let found = search(&t, "DocumentReference?_total=accurate");
    assert_eq!(found["total"], 2);
    get(&doc).bearer(&t).send().assert_outcome(403);
    // Create only.
    let (me, _) = fresh_patient();
    let t = app_token(&w.client, &me, "openid patient/DocumentReference.c");
    let created = post("DocumentReference")
        .bearer(&t)
        .json(&document(me.fhir_id(), "note"))
        .send();
    created.assert_status(201);
    let id = id_of(&created.json());
    get(&format!("DocumentReference/{id}"))
        .bearer(&t)
        .send()
        .assert_outcome(403);
    get("DocumentReference")
        .bearer(&t)
        .send()
        .assert_outcome(403);
}

#[test]
fn v1_scopes_are_accepted() {
    let w = world();
    let t = app_token(&w.client, &w.alice, "openid patient/*.read");
    get(&format!("DocumentReference/{}", w.alice_note))
        .bearer(&t)
        .send()
        .assert_status(200);
    assert_eq!(search(&t, "DocumentReference?_total=accurate")["total"], 2);
    get(&format!("DocumentReference/{}", w.bob_doc))
        .bearer(&t)
        .send()
        .assert_outcome(404);
    post("DocumentReference")
        .bearer(&t)
        .json(&document(w.alice.fhir_id(), "note"))
        .send()
        .assert_outcome(403);
    // `write` and `*` cover create.
    let (me, _) = fresh_patient();
    for scope in [
        "openid patient/DocumentReference.write",
        "openid patient/DocumentReference.*",
    ] {
        let t = app_token(&w.client, &me, scope);
        post("DocumentReference")
            .bearer(&t)
            .json(&document(me.fhir_id(), "note"))
            .send()
            .assert_status(201);
    }
}

#[test]
fn granular_scopes_filter_reads_and_searches() {
    let w = world();
    let scope = format!("openid patient/DocumentReference.rs?category={CATEGORY}|imaging");
    let answer = tokens_for(server(), &w.client, &w.alice, &scope);
    assert!(
        answer.scopes().iter().any(|s| s.contains("category=")),
        "the filter survives the grant: {answer:?}"
    );
    let t = answer.access_token();
    get(&format!("DocumentReference/{}", w.alice_image))
        .bearer(&t)
        .send()
        .assert_status(200);
    get(&format!("DocumentReference/{}", w.alice_note))
        .bearer(&t)
        .send()
        .assert_outcome(404);
    let found = search(&t, "DocumentReference?_total=accurate");
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(
        ids_of(&found, "DocumentReference"),
        [w.alice_image.as_str()]
    );
    // Asking for the other category explicitly still finds nothing.
    let found = search(&t, "DocumentReference?category=note&_total=accurate");
    assert_eq!(found["total"], 0, "{found}");
    // The filter narrows the patient's compartment; it never widens it.
    let other_image = doc_with(w.bob.fhir_id(), "imaging", None, None);
    get(&format!("DocumentReference/{other_image}"))
        .bearer(&t)
        .send()
        .assert_outcome(404);
}

// ------------------------------------------------------------ a doctor

/// A doctor reads the demographics of their hospital's patients; documents
/// only as their patients' Consents allow (tests/consent.rs has the rest).
#[test]
fn a_doctor_sees_their_own_hospital_only() {
    let w = world();
    let s = server();
    let doctor = new_doctor(s, &w.org_a);
    let t = app_token(&w.client, &doctor, "openid fhirUser user/*.cruds");
    let patients = search(&t, "Patient?_count=1000");
    let ids = ids_of(&patients, "Patient");
    assert!(
        ids.contains(&w.alice.fhir_id().to_string()) && ids.contains(&w.bob.fhir_id().to_string())
    );
    assert!(!ids.contains(&w.carol));
    for e in entries(&patients) {
        assert_eq!(
            e["resource"]["managingOrganization"]["reference"],
            format!("Organization/{}", w.org_a),
            "{e}"
        );
    }
    // No Consent yet: under the opt-in default, no document.
    let docs = search(&t, "DocumentReference?_count=1000&_total=accurate");
    assert_eq!(docs["total"], 0, "{docs}");
    get(&format!("DocumentReference/{}", w.alice_note))
        .bearer(&t)
        .send()
        .assert_outcome(404);
    get(&format!("Binary/{}", w.alice_binary))
        .bearer(&t)
        .send()
        .assert_outcome(404);
    // Alice shares her documents with this doctor: hers only.
    let mut share = conformance::consent(w.alice.fhir_id(), &uid());
    share["provision"] = json!({ "type": "permit", "actor": [{
        "role": { "text": "reader" },
        "reference": { "reference": format!("Practitioner/{}", doctor.fhir_id()) } }] });
    conformance::create(&share);
    let docs = search(&t, "DocumentReference?_count=1000");
    let doc_ids = ids_of(&docs, "DocumentReference");
    for hers in [&w.alice_note, &w.alice_image] {
        assert!(doc_ids.contains(hers), "{doc_ids:?}");
    }
    for e in entries(&docs) {
        assert_eq!(
            e["resource"]["subject"]["reference"],
            format!("Patient/{}", w.alice.fhir_id()),
            "only Alice's: {e}"
        );
    }
    get(&format!("DocumentReference/{}", w.alice_note))
        .bearer(&t)
        .send()
        .assert_status(200);
    get(&format!("DocumentReference/{}", w.carol_doc))
        .bearer(&t)
        .send()
        .assert_outcome(404);
    get(&format!("Patient/{}", w.carol))
        .bearer(&t)
        .send()
        .assert_outcome(404);
    get(&format!("Binary/{}", w.alice_binary))
        .bearer(&t)
        .send()
        .assert_status(200);
    // Uploading for the hospital's patients, not for another hospital's.
    let patient = new_patient_in(&w.org_a, "Uploaded");
    post("DocumentReference")
        .bearer(&t)
        .json(&document(&patient, "note"))
        .send()
        .assert_status(201);
    let foreign = document(&w.carol, "note");
    post("DocumentReference")
        .bearer(&t)
        .json(&foreign)
        .send()
        .assert_outcome(403);
    assert_eq!(documents_with(&identifier_of(&foreign)), 0);
    // Doctors hold no delete or update on documents, whatever they ask.
    delete(&format!("DocumentReference/{}", w.alice_note))
        .bearer(&t)
        .send()
        .assert_outcome(403);
    // Nor anything in hospital B through the organization itself.
    get(&format!("Organization/{}", w.org_b))
        .bearer(&t)
        .send()
        .assert_outcome(404);
}

// ------------------------------------------------- missing and bad tokens

#[test]
fn no_token_is_401_with_a_bare_bearer_challenge() {
    let w = world();
    for req in [
        get(&format!("DocumentReference/{}", w.alice_note)),
        get("Patient"),
        post("Patient").json(&conformance::patient(&uid())),
        post(&base()).json(&bundle_of("batch", &[])),
        get("_history"),
    ] {
        let resp = req.no_auth().send();
        resp.assert_status(401);
        let challenge = resp.required_header("www-authenticate");
        assert!(challenge.starts_with("Bearer "), "{resp:?}");
        assert!(challenge.contains("realm="), "{resp:?}");
        assert!(
            !challenge.contains("error="),
            "no error without a token (RFC 6750 §3.1): {resp:?}"
        );
    }
}

fn b64(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[test]
fn bad_tokens_are_401_invalid_token() {
    let w = world();
    let s = server();
    let path = format!("DocumentReference/{}", w.alice_note);
    let live = &w.alice_token;
    let claims = access_claims_like(s, live);
    // The forging itself is sound: a well-formed forged token works.
    get(&path)
        .bearer(&forge_token(s, &claims))
        .send()
        .assert_status(200);

    let parts: Vec<&str> = live.split('.').collect();
    let header = jwt_header(live);
    let now = conformance::smart::chrono_now();
    let spoiled = |f: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        f(&mut c);
        forge_token(s, &c)
    };
    let mut hs = header.clone();
    hs["alg"] = json!("HS256");
    let cases: Vec<(&str, String)> = vec![
        // Another patient's id in a genuine token's payload.
        ("tampered payload", {
            let mut c = jwt_claims(live);
            c["patient"] = json!(w.bob.fhir_id());
            format!("{}.{}.{}", parts[0], b64(&c), parts[2])
        }),
        ("tampered signature", {
            let mut sig = parts[2].to_string();
            let last = if sig.ends_with('A') { 'B' } else { 'A' };
            sig.replace_range(sig.len() - 2.., &format!("{last}{last}"));
            format!("{}.{}.{sig}", parts[0], parts[1])
        }),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                parts[1]
            ),
        ),
        ("alg none with kid", {
            let mut h = header.clone();
            h["alg"] = json!("none");
            format!("{}.{}.", b64(&h), parts[1])
        }),
        (
            "HS256 under our kid",
            format!("{}.{}.{}", b64(&hs), parts[1], parts[2]),
        ),
        (
            "expired",
            spoiled(&|c| {
                c["iat"] = json!(now - 3600);
                c["exp"] = json!(now - 60);
            }),
        ),
        (
            "wrong issuer",
            spoiled(&|c| c["iss"] = json!("https://issuer.example.org/auth")),
        ),
        (
            "wrong audience",
            spoiled(&|c| c["aud"] = json!("https://other.example.org/fhir")),
        ),
        (
            "no audience",
            spoiled(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
        ),
        ("a stranger's key", {
            let stranger = conformance::smart::SigningKey::rs384();
            stranger.sign(&claims)
        }),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (what, bad) in cases {
        let resp = get(&path).bearer(&bad).send();
        if resp.status != 401 {
            resp.fail(&format!("{what}: expected 401"));
        }
        let challenge = resp.required_header("www-authenticate");
        if !(challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\"")) {
            resp.fail(&format!(
                "{what}: expected a Bearer invalid_token challenge"
            ));
        }
    }
    // A scheme other than Bearer.
    let resp = get(&path)
        .header("Authorization", format!("Basic {}", b64(&json!("x"))))
        .send();
    resp.assert_status(401);
}

#[test]
fn metadata_and_discovery_stay_public() {
    get("metadata").no_auth().send().assert_status(200);
    get(".well-known/smart-configuration")
        .no_auth()
        .send()
        .assert_status(200);
}

#[test]
fn a_patient_manages_their_own_consents_only() {
    let w = world();
    let (me, t) = fresh_patient();
    let created = post("Consent")
        .bearer(&t)
        .json(&conformance::consent(me.fhir_id(), &uid()))
        .send();
    created.assert_status(201);
    let mut consent = created.resource("Consent");
    let id = id_of(&consent);
    consent["status"] = json!("inactive");
    put(&format!("Consent/{id}"))
        .bearer(&t)
        .json(&consent)
        .send()
        .assert_status(200);
    let mine = search(&t, "Consent?_total=accurate");
    assert_eq!(mine["total"], 1, "{mine}");
    // Not for someone else (422 naming the patient), and someone else's is not there.
    post("Consent")
        .bearer(&t)
        .json(&conformance::consent(w.bob.fhir_id(), &uid()))
        .send()
        .assert_outcome(422);
    get(&format!("Consent/{id}"))
        .bearer(&w.alice_token)
        .send()
        .assert_outcome(404);
    // Revoking is done by updating; deleting is not a patient's.
    delete(&format!("Consent/{id}"))
        .bearer(&t)
        .send()
        .assert_outcome(403);
    // A doctor of the hospital reads it, but may not change it.
    let doctor = new_doctor(server(), &w.org_a);
    let dt = app_token(&w.client, &doctor, "openid user/*.cruds");
    get(&format!("Consent/{id}"))
        .bearer(&dt)
        .send()
        .assert_status(200);
    put(&format!("Consent/{id}"))
        .bearer(&dt)
        .json(&consent)
        .send()
        .assert_outcome(403);
}

/// A Binary is visible through any visible DocumentReference pointing at
/// it, so pointing a document of one's own at another patient's Binary must
/// not be allowed to open it.
#[test]
fn pointing_a_document_at_someone_elses_binary_does_not_open_it() {
    let w = world();
    let (me, t) = fresh_patient();
    let path = format!("Binary/{}", w.bob_binary);
    get(&path).bearer(&t).send().assert_status(404);
    let mut claim = document(me.fhir_id(), "note");
    claim["content"] = json!([{ "attachment": { "contentType": "application/pdf", "url": path } }]);
    let created = post("DocumentReference").bearer(&t).json(&claim).send();
    // Either the document is refused, or it does not open Bob's Binary.
    if created.status == 201 {
        get(&path).bearer(&t).send().assert_status(404);
    } else {
        created.assert_outcome(403);
    }
}
