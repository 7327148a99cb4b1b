//! What a newcomer following the README runs into: the page at the
//! server's root, answers in the format a client wrote in, and an approval
//! page that promises only what the server does.

use conformance::raw::{Framing, RawRequest, RawResponse};
use conformance::smart_flow::*;
use conformance::*;
use serde_json::json;

// ------------------------------------------------------------ landing page

/// Asserts the landing page: HTML about this server, with its addresses.
#[track_caller]
fn assert_landing_page(resp: &Response, s: &TestServer) {
    resp.assert_status(200);
    assert_eq!(resp.media_type(), "text/html", "{resp:?}");
    let html = resp.text();
    for expected in [
        format!("href=\"{}\"", s.fhir_base),
        format!("href=\"{}/.well-known/smart-configuration\"", s.fhir_base),
        format!("href=\"{}/metadata\"", s.fhir_base),
        format!("{}/auth/authorize", s.public_base),
    ] {
        assert!(
            html.contains(&expected),
            "the landing page names {expected}: {html}"
        );
    }
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    assert!(html.contains("<title>"), "{html}");
    assert!(html.contains("<h1>"), "{html}");
    assert!(!html.contains("<script"), "no JavaScript: {html}");
    let csp = resp.required_header("content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(resp.header("x-frame-options").as_deref(), Some("DENY"));
}

#[test]
fn the_root_says_what_this_server_is_and_where_its_api_is() {
    let s = server();
    let root = format!("{}/", s.public_base);
    assert_landing_page(&Request::on(s, "GET", &root).send(), s);

    let head = Request::on(s, "HEAD", &root).send();
    head.assert_status(200);
    assert_eq!(head.media_type(), "text/html", "{head:?}");
    assert!(head.body.is_empty(), "HEAD has no body: {head:?}");

    // The discovery document the page points at is there, without a token.
    let smart = Request::on(
        s,
        "GET",
        &format!("{}/.well-known/smart-configuration", s.fhir_base),
    )
    .no_auth()
    .send();
    smart.assert_status(200);
    assert_eq!(
        smart.json()["authorization_endpoint"],
        format!("{}/auth/authorize", s.public_base)
    );
}

#[test]
fn the_sign_in_address_fhirledger_dev_prints_leads_to_the_landing_page() {
    let s = server();
    for path in ["/auth", "/auth/"] {
        let url = format!("{}{path}", s.public_base);
        let resp = Request::on(s, "GET", &url).send();
        assert!(
            (300..400).contains(&resp.status),
            "GET {path} redirects: {resp:?}"
        );
        let location = resp.required_header("location");
        assert_eq!(location, format!("{}/", s.public_base), "{resp:?}");
        assert_landing_page(&Request::on(s, "GET", &location).send(), s);

        let head = Request::on(s, "HEAD", &url).send();
        assert!((300..400).contains(&head.status), "HEAD {path}: {head:?}");
    }
}

// ------------------------------------------------ the format of the answer

fn patient_xml(ident: &str) -> String {
    format!(
        r#"<Patient xmlns="http://hl7.org/fhir"><identifier><system value="{ID_SYSTEM}"/><value value="{ident}"/></identifier><active value="true"/></Patient>"#
    )
}

/// Asserts an XML body whose root is `root`, in the FHIR namespace.
#[track_caller]
fn assert_xml_of(media_type: &str, body: &str, root: &str, what: &str) {
    assert_eq!(media_type, FHIR_XML, "{what}: {body}");
    assert!(
        body.contains(&format!("<{root} xmlns=\"http://hl7.org/fhir\"")),
        "{what}: expected an XML {root}: {body}"
    );
}

fn raw(req: RawRequest) -> RawResponse {
    req.send(server()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn an_xml_create_is_answered_in_xml_unless_accept_chooses() {
    // Accept: */*, and browser-like Accept headers naming no FHIR format.
    for accept in ["*/*", "text/html, application/xhtml+xml, */*;q=0.8"] {
        let ident = uid();
        let resp = post("Patient")
            .accept(accept)
            .xml(patient_xml(&ident))
            .send();
        resp.assert_status(201);
        assert_xml_of(&resp.media_type(), &resp.text(), "Patient", accept);
        assert!(resp.text().contains(&ident), "{resp:?}");
    }

    // No Accept header at all.
    let ident = uid();
    let resp = raw(RawRequest::new("POST", "Patient")
        .header("Content-Type", "application/fhir+xml")
        .body(patient_xml(&ident).into_bytes(), Framing::Length));
    assert_eq!(resp.status, 201, "{resp:?}");
    let body = String::from_utf8_lossy(&resp.body).into_owned();
    assert_xml_of(&resp.media_type(), &body, "Patient", "no Accept");
    assert!(body.contains(&ident), "{resp:?}");

    // Accept chooses: JSON, whatever the body was.
    let resp = post("Patient")
        .accept(FHIR_JSON)
        .xml(patient_xml(&uid()))
        .send();
    resp.assert_status(201);
    resp.resource("Patient");
    // And a JSON body stays JSON under */*.
    let resp = post("Patient").accept("*/*").json(&patient(&uid())).send();
    resp.assert_status(201);
    resp.resource("Patient");
}

#[test]
fn updates_bundles_and_errors_follow_the_request_format_too() {
    let id = new_patient();
    let ident = uid();
    let xml = format!(
        r#"<Patient xmlns="http://hl7.org/fhir"><id value="{id}"/><identifier><system value="{ID_SYSTEM}"/><value value="{ident}"/></identifier><active value="false"/></Patient>"#
    );
    let resp = put(&format!("Patient/{id}")).accept("*/*").xml(xml).send();
    resp.assert_status(200);
    assert_xml_of(&resp.media_type(), &resp.text(), "Patient", "PUT");
    assert!(resp.text().contains(&ident), "{resp:?}");

    let bundle = format!(
        r#"<Bundle xmlns="http://hl7.org/fhir"><type value="batch"/><entry><resource>{}</resource><request><method value="POST"/><url value="Patient"/></request></entry></Bundle>"#,
        patient_xml(&uid())
    );
    let resp = post(&base()).accept("*/*").xml(bundle).send();
    resp.assert_status(200);
    assert_xml_of(&resp.media_type(), &resp.text(), "Bundle", "batch");
    assert!(resp.text().contains("<status value=\"201"), "{resp:?}");

    // A body the server refuses: the OperationOutcome is XML as well...
    let resp = post("Patient")
        .accept("*/*")
        .xml("<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"maybe\"/></Patient>")
        .send();
    resp.assert_status(400);
    assert_xml_of(&resp.media_type(), &resp.text(), "OperationOutcome", "400");
    // ...and so is a refusal for want of a token.
    let resp = post("Patient")
        .no_auth()
        .accept("*/*")
        .xml(patient_xml(&uid()))
        .send();
    resp.assert_status(401);
    assert_xml_of(&resp.media_type(), &resp.text(), "OperationOutcome", "401");
    // JSON bodies keep getting JSON outcomes.
    post("Patient")
        .accept("*/*")
        .json(&json!({"resourceType": "Patient", "active": "maybe"}))
        .send()
        .assert_outcome(400);
}

#[test]
fn raw_xml_content_uploaded_to_binary_is_not_a_fhir_body() {
    // `application/xml` sent to Binary is the document's own content: the
    // answer is not turned into XML because of it.
    let resp = post("Binary")
        .accept("*/*")
        .content_type("application/xml")
        .prefer("return=representation")
        .bytes(b"<note>hello</note>".to_vec())
        .send();
    resp.assert_status(201);
    assert_eq!(resp.resource("Binary")["contentType"], "application/xml");
}

// ---------------------------------------------------------- approval page

#[test]
fn the_approval_page_promises_only_what_the_server_does() {
    let s = server();
    let org = new_hospital();
    let user = new_patient_user(s, &org);
    let client = AppClient::register(s, "public", None);
    let request = client.request(
        "openid fhirUser launch/patient patient/DocumentReference.rs patient/AuditEvent.rs offline_access",
    );
    let browser = Browser::new(s);
    let login = browser.authorize(&request).login();
    let (_, _, page) = browser.login(&login, &user).approval();
    let text = decode_entities(&page.body);
    // A patient cannot revoke an app's access anywhere yet, and no access
    // is recorded yet (audit comes later).
    for claim in ["revoke", "access history"] {
        assert!(
            !text.to_lowercase().contains(claim),
            "the approval page says {claim:?}: {text}"
        );
    }
    for line in [
        "Read and search your documents",
        "Read and search your audit records",
        "Stay connected after you close the app, even when you are not signed in",
    ] {
        assert!(
            text.contains(line),
            "the approval page offers {line:?}: {text}"
        );
    }
}
