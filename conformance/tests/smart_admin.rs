//! Admin roles: hospital admins onboard and remove the doctors and patients
//! of their own hospital and read no clinical data; solution admins assign
//! hospital admins and register clients; deactivating an account revokes
//! its tokens at once, and deactivating a hospital those of its accounts.

use conformance::smart_flow::*;
use conformance::*;
use serde_json::{json, Value};

const ADMIN_APP: &str = "openid fhirUser fhirledger.admin user/*.cruds offline_access";

/// An admin-API call with `token`: status and JSON body.
fn admin(method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let s = server();
    let url = format!("{}/auth/admin/{path}", s.public_base);
    let mut req = client().request(method.parse().unwrap(), &url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// An admin app: registered for `fhirledger.admin` (apps are not, by default).
fn admin_app() -> AppClient {
    AppClient::register(server(), "public", Some(ADMIN_APP))
}

/// A hospital with its admin (and the admin's token), and an app.
struct Hospital {
    org: String,
    admin: TestUser,
    token: String,
    client: AppClient,
}

fn hospital() -> Hospital {
    let s = server();
    let org = new_hospital();
    let admin = TestUser::create(s, "hospital-admin", Some(&org), None);
    let client = admin_app();
    let token = tokens_for(s, &client, &admin, ADMIN_APP).access_token();
    Hospital {
        org,
        admin,
        token,
        client,
    }
}

#[test]
fn a_hospital_admin_reads_no_clinical_documents() {
    let h = hospital();
    let patient = new_patient_in(&h.org, "Admitted");
    let doc = id_of(&conformance::create(&document(&patient, "note")));
    get(&format!("DocumentReference/{doc}"))
        .bearer(&h.token)
        .send()
        .assert_outcome(403);
    get("DocumentReference")
        .bearer(&h.token)
        .send()
        .assert_outcome(403);
    get(&format!("DocumentReference?patient=Patient/{patient}"))
        .bearer(&h.token)
        .send()
        .assert_outcome(403);
    get("Binary").bearer(&h.token).send().assert_outcome(403);
    get("Consent").bearer(&h.token).send().assert_outcome(403);
    // Patients of the hospital, yes.
    get(&format!("Patient/{patient}"))
        .bearer(&h.token)
        .send()
        .assert_status(200);
}

#[test]
fn a_hospital_admin_cannot_reach_another_hospital() {
    let h = hospital();
    let other = hospital();
    let theirs = new_patient_in(&other.org, "Foreign");
    let ours = new_patient_in(&h.org, "Local");
    get(&format!("Patient/{theirs}"))
        .bearer(&h.token)
        .send()
        .assert_outcome(404);
    let found = get("Patient?_count=1000&_total=accurate")
        .bearer(&h.token)
        .send();
    found.assert_status(200);
    let ids: Vec<String> = entries(&found.json())
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, [ours.as_str()], "only the hospital's own patient");
    // Writing a patient into the other hospital is refused, and nothing is written.
    let identifier = uid();
    let mut foreign = conformance::patient(&identifier);
    foreign["managingOrganization"] = json!({ "reference": format!("Organization/{}", other.org) });
    post("Patient")
        .bearer(&h.token)
        .json(&foreign)
        .send()
        .assert_outcome(403);
    let check = get(&format!(
        "Patient?identifier={}&_total=accurate",
        url_encode(&conformance::token(&identifier))
    ))
    .send();
    assert_eq!(check.json()["total"], 0);
    // Nor by update-as-create with an id of its choosing.
    let new_id = uid();
    put(&format!("Patient/{new_id}"))
        .bearer(&h.token)
        .json(&{
            let mut p = foreign.clone();
            p["id"] = json!(new_id);
            p
        })
        .send()
        .assert_outcome(403);
    get(&format!("Patient/{new_id}")).send().assert_status(404);
    // A conditional delete matching the other hospital's patient leaves it alone.
    let their_identifier = read("Patient", &theirs)["identifier"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let conditional = format!(
        "Patient?identifier={}",
        url_encode(&conformance::token(&their_identifier))
    );
    let resp = delete(&conditional).bearer(&h.token).send();
    assert!(resp.status < 300 || resp.status == 404, "{resp:?}");
    read("Patient", &theirs);
    // Nor can it move its own patient there.
    let mut moved = read("Patient", &ours);
    moved["managingOrganization"] = json!({ "reference": format!("Organization/{}", other.org) });
    put(&format!("Patient/{ours}"))
        .bearer(&h.token)
        .json(&moved)
        .send()
        .assert_outcome(403);

    // Onboarding or removing people of the other hospital: 403.
    for role in ["doctor", "patient"] {
        let (status, body) = admin(
            "POST",
            "users",
            Some(&h.token),
            Some(&json!({ "role": role, "email": unique_email(role), "organization": other.org })),
        );
        assert_eq!(status, 403, "{role}: {body}");
    }
    let their_doctor = new_doctor(server(), &other.org);
    let (status, body) = admin(
        "DELETE",
        &format!("users/{}", their_doctor.user_id),
        Some(&h.token),
        None,
    );
    assert_eq!(status, 403, "{body}");
    // Nor hospital admins, even of its own hospital (that is the solution admin's).
    let (status, _) = admin(
        "POST",
        "users",
        Some(&h.token),
        Some(
            &json!({ "role": "hospital-admin", "email": unique_email("ha"), "organization": h.org }),
        ),
    );
    assert_eq!(status, 403);
    // The accounts it lists are its hospital's only.
    let (status, users) = admin("GET", "users", Some(&h.token), None);
    assert_eq!(status, 200, "{users}");
    for u in users.as_array().expect("a list") {
        assert_eq!(u["organization"], h.org.as_str(), "{u}");
    }
}

#[test]
fn a_hospital_admin_onboards_a_patient_who_redeems_the_invitation() {
    let s = server();
    let h = hospital();
    let email = unique_email("onboarded");
    let (status, created) = admin(
        "POST",
        "users",
        Some(&h.token),
        Some(&json!({
            "role": "patient",
            "email": email,
            "resource": { "resourceType": "Patient", "name": [{ "family": "Onboarded", "given": ["Olive"] }] }
        })),
    );
    assert_eq!(status, 201, "{created}");
    let reference = created["fhir_user"].as_str().expect("the new Patient");
    let patient_id = reference.strip_prefix("Patient/").expect("Patient/ID");
    let patient = read("Patient", patient_id);
    assert_eq!(
        patient["managingOrganization"]["reference"],
        format!("Organization/{}", h.org),
        "{patient}"
    );
    assert_eq!(created["organization"], h.org.as_str());

    // The person redeems the invitation with a password, then signs in to an app.
    let invitation = created["invitation"].as_str().expect("an invitation URL");
    assert!(invitation.starts_with(&format!("{}/auth/invite/", s.public_base)));
    let browser = Browser::new(s);
    let page = browser.get_page(invitation);
    assert_eq!(page.status, 200, "{page:?}");
    let password = "a-long-enough-password";
    let set = browser.post_page(&format!("{invitation}/password"), &[("password", password)]);
    assert_eq!(set.status, 200, "{set:?}");
    // The invitation is used up.
    assert_eq!(browser.get_page(invitation).status, 404);
    let user = TestUser {
        user_id: created["user_id"].as_str().unwrap().to_string(),
        email,
        password: password.to_string(),
        role: "patient".into(),
        fhir_user: Some(reference.to_string()),
        org: Some(h.org.clone()),
    };
    let app = AppClient::register(s, "public", None);
    let answer = tokens_for(s, &app, &user, "openid fhirUser patient/Patient.rs");
    assert_eq!(answer.ok()["patient"], patient_id);
    get(&format!("Patient/{patient_id}"))
        .bearer(&answer.access_token())
        .send()
        .assert_status(200);
}

#[test]
fn a_hospital_admin_onboards_a_doctor_of_their_hospital() {
    let h = hospital();
    let (status, created) = admin(
        "POST",
        "users",
        Some(&h.token),
        Some(&json!({
            "role": "doctor",
            "email": unique_email("doc"),
            "resource": { "resourceType": "Practitioner", "name": [{ "family": "Newdoc" }] }
        })),
    );
    assert_eq!(status, 201, "{created}");
    let practitioner = created["fhir_user"]
        .as_str()
        .and_then(|r| r.strip_prefix("Practitioner/"))
        .expect("the new Practitioner")
        .to_string();
    // Its PractitionerRole ties it to the hospital, and the admin sees both.
    get(&format!("Practitioner/{practitioner}"))
        .bearer(&h.token)
        .send()
        .assert_status(200);
    let roles = get(&format!(
        "PractitionerRole?practitioner=Practitioner/{practitioner}"
    ))
    .bearer(&h.token)
    .send();
    roles.assert_status(200);
    let roles = entries(&roles.json());
    assert_eq!(roles.len(), 1);
    assert_eq!(
        roles[0]["resource"]["organization"]["reference"],
        format!("Organization/{}", h.org)
    );
}

#[test]
fn a_solution_admin_assigns_a_hospital_admin_and_reads_no_patients() {
    let s = server();
    let sol = TestUser::create(s, "solution-admin", None, None);
    let client = admin_app();
    let token = tokens_for(s, &client, &sol, ADMIN_APP).access_token();
    // Hospitals are its to create.
    let org = post("Organization")
        .bearer(&token)
        .json(&conformance::organization(&uid()))
        .send();
    org.assert_status(201);
    let org = id_of(&org.json());
    let email = unique_email("new-hadmin");
    let (status, created) = admin(
        "POST",
        "users",
        Some(&token),
        Some(&json!({
            "role": "hospital-admin", "email": email, "organization": org,
            "password": "hospital-admin-password",
        })),
    );
    assert_eq!(status, 201, "{created}");
    // The new hospital admin can sign in and administer that hospital.
    let new_admin = TestUser {
        user_id: created["user_id"].as_str().unwrap().to_string(),
        email,
        password: "hospital-admin-password".into(),
        role: "hospital-admin".into(),
        fhir_user: None,
        org: Some(org.clone()),
    };
    let answer = tokens_for(s, &client, &new_admin, ADMIN_APP);
    assert!(
        answer.scopes().contains(&"fhirledger.admin".to_string()),
        "{answer:?}"
    );
    let (status, _) = admin(
        "POST",
        "users",
        Some(&answer.access_token()),
        Some(&json!({ "role": "doctor", "email": unique_email("d"), "organization": org })),
    );
    assert_eq!(status, 201);
    // No clinical data, and no patients, for the solution admin.
    let patient = new_patient_in(&org, "Private");
    get(&format!("Patient/{patient}"))
        .bearer(&token)
        .send()
        .assert_outcome(403);
    get("DocumentReference")
        .bearer(&token)
        .send()
        .assert_outcome(403);
    // Doctors and patients are the hospitals' to onboard.
    let (status, _) = admin(
        "POST",
        "users",
        Some(&token),
        Some(&json!({ "role": "doctor", "email": unique_email("d"), "organization": org })),
    );
    assert_eq!(status, 403);
    // Clients are the solution admin's to register, not a hospital admin's.
    let registration = json!({
        "name": "Registered over HTTP", "kind": "public",
        "redirect_uris": [REDIRECT_URI], "scope": "openid patient/Patient.rs"
    });
    let (status, registered) = admin("POST", "clients", Some(&token), Some(&registration));
    assert_eq!(status, 201, "{registered}");
    assert!(registered["client_id"].is_string() && registered.get("client_secret").is_none());
    let (status, _) = admin(
        "POST",
        "clients",
        Some(&answer.access_token()),
        Some(&registration),
    );
    assert_eq!(status, 403);
}

/// A doctor of the hospital, their tokens (with a refresh token), and the
/// path of a patient of the hospital they can read.
fn doctor_reading_a_patient(h: &Hospital) -> (TestUser, TokenAnswer, String) {
    let s = server();
    let doctor = new_doctor(s, &h.org);
    let patient = new_patient_in(&h.org, "Treated");
    let answer = tokens_for(
        s,
        &h.client,
        &doctor,
        "openid user/Patient.rs offline_access",
    );
    let path = format!("Patient/{patient}");
    get(&path)
        .bearer(&answer.access_token())
        .send()
        .assert_status(200);
    (doctor, answer, path)
}

#[test]
fn deactivating_a_user_revokes_their_tokens_at_once() {
    let s = server();
    let h = hospital();
    let (doctor, answer, path) = doctor_reading_a_patient(&h);
    let token = answer.access_token();

    let (status, body) = admin(
        "DELETE",
        &format!("users/{}", doctor.user_id),
        Some(&h.token),
        None,
    );
    assert_eq!(status, 204, "{body}");
    let resp = get(&path).bearer(&token).send();
    resp.assert_status(401);
    assert!(resp
        .required_header("www-authenticate")
        .contains("invalid_token"));
    h.client
        .refresh(&answer.field("refresh_token"), None)
        .assert_error(400, "invalid_grant");
    // Nor can they sign in again.
    let request = h.client.request("openid user/Patient.rs");
    let browser = Browser::new(s);
    let login = browser.authorize(&request).login();
    let again = browser.login(&login, &doctor);
    assert!(
        matches!(&again, Step::Login { .. } | Step::Other(_)),
        "a deactivated user signs in: {again:?}"
    );
    // The admin's own token is untouched.
    get(&path).bearer(&h.token).send().assert_status(200);
}

#[test]
fn the_admin_api_needs_an_admin_token() {
    let s = server();
    let h = hospital();
    let body = json!({ "role": "doctor", "email": unique_email("d"), "organization": h.org });
    let url = format!("{}/auth/admin/users", s.public_base);
    let resp = client().post(&url).json(&body).send().unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer")));
    let (status, _) = admin("POST", "users", Some("not-a-token"), Some(&body));
    assert_eq!(status, 401);
    // A doctor's or a patient's token: authenticated, not allowed.
    let doctor = new_doctor(s, &h.org);
    let t = tokens_for(s, &h.client, &doctor, ADMIN_APP);
    assert!(
        !t.scopes().contains(&"fhirledger.admin".to_string()),
        "{t:?}"
    );
    let (status, _) = admin("POST", "users", Some(&t.access_token()), Some(&body));
    assert_eq!(status, 403);
    // A hospital admin whose app was not granted fhirledger.admin: 403 too.
    let narrow = tokens_for(s, &h.client, &h.admin, "openid user/Patient.rs").access_token();
    let (status, _) = admin("POST", "users", Some(&narrow), Some(&body));
    assert_eq!(status, 403);
}

#[test]
fn a_compliance_officer_reads_the_audit_trail_and_no_clinical_content() {
    let s = server();
    let h = hospital();
    let patient = new_patient_in(&h.org, "Audited");
    let doc = id_of(&conformance::create(&document(&patient, "note")));
    let client = AppClient::register(s, "public", None);
    for org in [Some(h.org.as_str()), None] {
        let officer = TestUser::create(s, "compliance-officer", org, None);
        let answer = tokens_for(s, &client, &officer, "openid user/*.rs patient/*.rs");
        let granted = answer.scopes();
        assert!(
            granted.iter().any(|g| g.starts_with("user/AuditEvent")),
            "{granted:?}"
        );
        let t = answer.access_token();
        get("AuditEvent").bearer(&t).send().assert_status(200);
        get(&format!("DocumentReference/{doc}"))
            .bearer(&t)
            .send()
            .assert_outcome(403);
        get("DocumentReference")
            .bearer(&t)
            .send()
            .assert_outcome(403);
        get(&format!("Patient/{patient}"))
            .bearer(&t)
            .send()
            .assert_outcome(403);
        get("Binary").bearer(&t).send().assert_outcome(403);
        get("Consent").bearer(&t).send().assert_outcome(403);
    }
}

#[test]
fn deactivating_a_hospital_ends_its_accounts_access() {
    let s = server();
    let h = hospital();
    let (doctor, answer, path) = doctor_reading_a_patient(&h);
    let token = answer.access_token();

    // A solution admin deactivates the hospital: an ordinary FHIR update.
    let sol = TestUser::create(s, "solution-admin", None, None);
    let sol_token = tokens_for(s, &admin_app(), &sol, ADMIN_APP).access_token();
    let org_path = format!("Organization/{}", h.org);
    let read = get(&org_path).bearer(&sol_token).send();
    read.assert_status(200);
    let mut org = read.json();
    org["active"] = json!(false);
    put(&org_path)
        .bearer(&sol_token)
        .json(&org)
        .send()
        .assert_status(200);

    // Every process revokes the hospital's tokens within a second (its
    // upkeep thread looks for deactivated hospitals); wait for that here.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let revoked = loop {
        let resp = get(&path).bearer(&token).send();
        if resp.status == 401 || std::time::Instant::now() > deadline {
            break resp;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    revoked.assert_status(401);
    get(&path).bearer(&h.token).send().assert_status(401);
    h.client
        .refresh(&answer.field("refresh_token"), None)
        .assert_error(400, "invalid_grant");
    // Nobody of the hospital gets a new token: the sign-in ends at the app
    // with access_denied.
    let request = h.client.request("openid user/Patient.rs");
    let browser = Browser::new(s);
    let login = browser.authorize(&request).login();
    match browser.login(&login, &doctor) {
        Step::Callback(cb) => assert_eq!(cb.get("error"), Some("access_denied"), "{cb:?}"),
        other => panic!("a deactivated hospital's doctor signs in: {other:?}"),
    }
    // The solution admin, of no hospital, is untouched.
    get(&org_path).bearer(&sol_token).send().assert_status(200);
}
