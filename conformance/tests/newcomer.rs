//! What a newcomer following the README runs into: the page at the
//! server's root.

use conformance::*;

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
