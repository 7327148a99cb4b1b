//! Token signing keys across a deployment: rotation (`fhirledger keys
//! rotate`) breaks no live token, and every server process on the same
//! database publishes and accepts the same keys. In a binary of its own, so
//! that no other test sees the rotation.

use conformance::server::start_server_with;
use conformance::smart::{cli, BackendClient, SigningKey};
use conformance::smart_flow::jwt_header;
use conformance::*;

fn kid(token: &str) -> String {
    jwt_header(token)["kid"]
        .as_str()
        .expect("every token names its key")
        .to_string()
}

fn published_kids(server: &conformance::server::TestServer) -> Vec<String> {
    let jwks = get(&format!("{}/auth/jwks", server.public_base))
        .no_auth()
        .send();
    jwks.assert_status(200);
    jwks.json()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("a kid").to_string())
        .collect()
}

#[test]
fn rotating_the_signing_key_breaks_no_live_token() {
    let first = server();
    let live = first.token().to_string();
    let old_kid = kid(&live);

    let rotated = cli(first, &["keys", "rotate"]);
    let new_kid = rotated["kid"].as_str().expect("the new kid").to_string();
    assert_ne!(new_kid, old_kid, "a rotation makes a new key");

    // Another process of the same deployment (same database, same public
    // URL), started after the rotation, publishes both keys and accepts the
    // token the first process signed before it.
    let second =
        start_server_with(|_| vec![("FHIRLEDGER_BASE_URL".to_string(), first.public_base.clone())]);
    let kids = published_kids(&second);
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "the old key stays published until its tokens expire, the new one is \
         published before it signs: {kids:?}"
    );
    get(&second.url("Patient?_count=1"))
        .bearer(&live)
        .send()
        .assert_status(200);

    // The new key is not used before clients and other processes can know
    // it: tokens are still signed with the old key, and the first process
    // (which has not reloaded its keys yet) accepts the second's tokens.
    let client = BackendClient::register(first, "system/Patient.rs", SigningKey::es384());
    let (status, body) = client.request_token_via(
        &format!("{}/auth/token", second.public_base),
        "system/Patient.rs",
    );
    assert_eq!(status, 200, "{body}");
    let fresh = body["access_token"].as_str().expect("a token").to_string();
    assert_eq!(kid(&fresh), old_kid);
    get(&first.url("Patient?_count=1"))
        .bearer(&fresh)
        .send()
        .assert_status(200);
    get(&first.url("Patient?_count=1"))
        .bearer(&live)
        .send()
        .assert_status(200);
}
