//! EHR launch (a `launch` value made by the CLI or by an integration through
//! `POST /auth/launch`) and the standalone patient picker for doctors.

use conformance::smart::cli;
use conformance::smart_flow::*;
use conformance::*;
use serde_json::json;

const EHR_APP: &str = "launch openid fhirUser patient/Patient.rs patient/DocumentReference.rs";

/// A hospital with a doctor and one of its patients.
struct Ward {
    org: String,
    doctor: TestUser,
    patient: String,
    client: AppClient,
}

fn ward() -> Ward {
    let s = server();
    let org = new_hospital();
    Ward {
        doctor: new_doctor(s, &org),
        patient: new_patient_in(&org, "Launched"),
        client: AppClient::register(s, "public", None),
        org,
    }
}

/// `POST /auth/launch` with `token`.
fn api_launch(token: Option<&str>, patient: &str, user: &str) -> (u16, serde_json::Value) {
    let s = server();
    let mut req = client()
        .post(format!("{}/auth/launch", s.public_base))
        .json(&json!({ "patient": patient, "user": user }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().expect("POST /auth/launch");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or_default())
}

/// The app's EHR launch as `user`, up to the token endpoint's answer.
fn ehr_launch(w: &Ward, launch: &str, user: &TestUser) -> TokenAnswer {
    let request = w.client.request(EHR_APP).set("launch", launch);
    let callback = Browser::new(server()).sign_in_and_approve(&request, user);
    w.client.exchange(&callback.code(), request.verifier())
}

#[track_caller]
fn assert_launched(w: &Ward, answer: &TokenAnswer) {
    let body = answer.ok();
    assert_eq!(body["patient"], w.patient.as_str(), "{body}");
    assert_eq!(
        body["need_patient_banner"], false,
        "the EHR shows the patient already: {body}"
    );
    let token = answer.access_token();
    get(&format!("Patient/{}", w.patient))
        .bearer(&token)
        .send()
        .assert_status(200);
    // Confined to the launch patient, even within the doctor's hospital.
    let neighbour = new_patient_in(&w.org, "Neighbour");
    get(&format!("Patient/{neighbour}"))
        .bearer(&token)
        .send()
        .assert_status(404);
}

#[test]
fn ehr_launch_with_a_launch_from_the_cli() {
    let w = ward();
    let out = cli(
        server(),
        &[
            "launch",
            "--patient",
            &w.patient,
            "--user",
            &w.doctor.user_id,
        ],
    );
    let launch = out["launch"].as_str().expect("a launch value").to_string();
    let answer = ehr_launch(&w, &launch, &w.doctor);
    assert_launched(&w, &answer);
    assert!(
        answer.scopes().contains(&"launch".to_string()),
        "{answer:?}"
    );
}

#[test]
fn ehr_launch_with_a_launch_from_the_api() {
    let w = ward();
    let (status, body) = api_launch(Some(server().token()), &w.patient, &w.doctor.user_id);
    assert_eq!(status, 201, "{body}");
    let launch = body["launch"].as_str().expect("a launch value").to_string();
    assert_launched(&w, &ehr_launch(&w, &launch, &w.doctor));
}

#[test]
fn creating_a_launch_needs_the_launch_scope() {
    let w = ward();
    let (status, _) = api_launch(None, &w.patient, &w.doctor.user_id);
    assert_eq!(status, 401);
    let (status, _) = api_launch(Some("not-a-token"), &w.patient, &w.doctor.user_id);
    assert_eq!(status, 401);
    // A doctor's own app token does not carry fhirledger.launch.
    let doctor_token =
        tokens_for(server(), &w.client, &w.doctor, "openid user/Patient.rs").access_token();
    let (status, _) = api_launch(Some(&doctor_token), &w.patient, &w.doctor.user_id);
    assert_eq!(status, 403);
    let backend = conformance::smart::BackendClient::register(
        server(),
        "system/Patient.rs",
        conformance::smart::SigningKey::rs384(),
    );
    let (status, _) = api_launch(
        Some(&backend.token("system/Patient.rs")),
        &w.patient,
        &w.doctor.user_id,
    );
    assert_eq!(status, 403);
}

#[test]
fn a_launch_value_is_single_use() {
    let w = ward();
    let (_, body) = api_launch(Some(server().token()), &w.patient, &w.doctor.user_id);
    let launch = body["launch"].as_str().unwrap().to_string();
    ehr_launch(&w, &launch, &w.doctor).ok();
    let again = w.client.request(EHR_APP).set("launch", &launch);
    Browser::new(server())
        .authorize(&again)
        .callback()
        .assert_error("invalid_request", again.state());
    // A launch value nobody made is refused the same way.
    let made_up = w.client.request(EHR_APP).set("launch", "made-up-launch");
    Browser::new(server())
        .authorize(&made_up)
        .callback()
        .assert_error("invalid_request", made_up.state());
}

#[test]
fn a_launch_made_for_another_user_is_denied() {
    let w = ward();
    let colleague = new_doctor(server(), &w.org);
    let (_, body) = api_launch(Some(server().token()), &w.patient, &w.doctor.user_id);
    let launch = body["launch"].as_str().unwrap().to_string();
    let request = w.client.request(EHR_APP).set("launch", &launch);
    let browser = Browser::new(server());
    let login = browser.authorize(&request).login();
    browser
        .login(&login, &colleague)
        .callback()
        .assert_error("access_denied", request.state());
    // Posting the approval form directly, without the page, is refused too.
    assert_direct_approval_denied(&w, &launch_for(&w.patient, &w.doctor), &colleague);
}

/// A launch value made through the API for `patient` and `user`.
fn launch_for(patient: &str, user: &TestUser) -> String {
    let (status, body) = api_launch(Some(server().token()), patient, &user.user_id);
    assert_eq!(status, 201, "{body}");
    body["launch"].as_str().unwrap().to_string()
}

/// Signs `user` in without following the server's redirect, then posts
/// the approval form straight away: the app must get access_denied.
#[track_caller]
fn assert_direct_approval_denied(w: &Ward, launch: &str, user: &TestUser) {
    let s = server();
    let request = w.client.request(EHR_APP).set("launch", launch);
    let browser = Browser::new(s);
    let id = browser.authorize(&request).login();
    let signed_in = browser.post_page(
        &format!("{}/auth/login", s.public_base),
        &[
            ("request", id.as_str()),
            ("email", &user.email),
            ("password", &user.password),
        ],
    );
    assert_eq!(signed_in.status, 303, "{signed_in:?}");
    let scopes: Vec<String> = EHR_APP.split(' ').map(str::to_string).collect();
    browser
        .approve(&id, &scopes)
        .callback()
        .assert_error("access_denied", request.state());
}

#[test]
fn a_launch_about_a_patient_the_user_may_not_open_is_denied() {
    let s = server();
    let w = ward();
    // A patient of another hospital, launched for this hospital's doctor.
    let elsewhere = new_patient_in(&new_hospital(), "Elsewhere");
    let launch = launch_for(&elsewhere, &w.doctor);
    let request = w.client.request(EHR_APP).set("launch", &launch);
    let browser = Browser::new(s);
    let login = browser.authorize(&request).login();
    browser
        .login(&login, &w.doctor)
        .callback()
        .assert_error("access_denied", request.state());
    assert_direct_approval_denied(&w, &launch_for(&elsewhere, &w.doctor), &w.doctor);
    // A patient launched into someone else's record.
    let patient_user = new_patient_user(s, &w.org);
    let launch = launch_for(&w.patient, &patient_user);
    let request = w.client.request(EHR_APP).set("launch", &launch);
    let browser = Browser::new(s);
    let login = browser.authorize(&request).login();
    browser
        .login(&login, &patient_user)
        .callback()
        .assert_error("access_denied", request.state());
    assert_direct_approval_denied(&w, &launch_for(&w.patient, &patient_user), &patient_user);
}

#[test]
fn a_doctor_picks_a_patient_of_their_own_hospital() {
    let s = server();
    let w = ward();
    let second = new_patient_in(&w.org, "Second");
    let other_org = new_hospital();
    let elsewhere = new_patient_in(&other_org, "Elsewhere");
    let request = w
        .client
        .request("launch/patient openid fhirUser patient/Patient.rs patient/DocumentReference.rs");
    let browser = Browser::new(s);
    let login = browser.authorize(&request).login();
    let (req, offered, page) = browser.login(&login, &w.doctor).picker();
    let mut offered_sorted = offered.clone();
    offered_sorted.sort();
    let mut expected = vec![w.patient.clone(), second.clone()];
    expected.sort();
    assert_eq!(
        offered_sorted, expected,
        "the picker lists the hospital's patients only"
    );
    assert!(!page.body.contains(&elsewhere));
    assert!(page.body.contains("Second") && page.body.contains("Launched"));

    // Another hospital's patient cannot be slipped in.
    let refused = browser.pick(&req, &elsewhere);
    assert!(
        matches!(&refused, Step::Other(p) if p.status == 403),
        "{refused:?}"
    );

    let (req, scopes, page) = browser.pick(&req, &second).approval();
    assert!(
        page.body.contains("Second"),
        "the approval page names the patient"
    );
    let callback = browser.approve(&req, &scopes).callback();
    let answer = w.client.exchange(&callback.code(), request.verifier());
    let body = answer.ok();
    assert_eq!(body["patient"], second.as_str(), "{body}");
    assert_eq!(body["need_patient_banner"], true, "{body}");
    let token = answer.access_token();
    get(&format!("Patient/{second}"))
        .bearer(&token)
        .send()
        .assert_status(200);
    get(&format!("Patient/{}", w.patient))
        .bearer(&token)
        .send()
        .assert_status(404);
}

#[test]
fn the_picker_searches_by_name() {
    let s = server();
    let w = ward();
    let findable = new_patient_in(&w.org, "Zebedee");
    let request = w.client.request("launch/patient openid patient/Patient.rs");
    let browser = Browser::new(s);
    let login = browser.authorize(&request).login();
    let (req, _, _) = browser.login(&login, &w.doctor).picker();
    let page = browser.get_page(&format!(
        "{}/auth/continue?request={}&q=Zebedee",
        s.public_base,
        url_encode(&req)
    ));
    let (_, offered, _) = browser.follow(page).picker();
    assert_eq!(offered, [findable]);
}
