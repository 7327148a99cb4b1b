//! Binary: raw uploads and downloads, and the Binary resource view.

use base64::Engine;
use conformance::raw::RawRequest;
use conformance::*;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::json;
use sha2::{Digest, Sha256};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = vec![0u8; len];
    rng.fill_bytes(&mut out);
    out
}

fn fake_pdf(len: usize) -> Vec<u8> {
    let mut bytes = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    bytes.extend(random_bytes(len, rand::thread_rng().gen()));
    bytes
}

/// POSTs raw bytes; returns the new id.
fn upload(content_type: &str, bytes: &[u8]) -> String {
    let resp = post("Binary")
        .content_type(content_type)
        .bytes(bytes.to_vec())
        .send();
    resp.assert_status(201);
    assert_eq!(resp.required_header("etag"), "W/\"1\"");
    let location = resp.required_header("location");
    let prefix = format!("{}/Binary/", base());
    let id = location
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix("/_history/1"))
        .unwrap_or_else(|| {
            resp.fail(&format!(
                "Location {location:?} is not {prefix}<id>/_history/1"
            ))
        });
    id.to_string()
}

fn assert_raw(resp: &Response, content_type: &str, bytes: &[u8]) {
    resp.assert_status(200);
    if resp.media_type() != content_type {
        resp.fail(&format!("expected the stored Content-Type {content_type}"));
    }
    if resp.body != bytes {
        resp.fail(&format!(
            "the bytes differ from the upload ({} bytes sent, {} received)",
            bytes.len(),
            resp.body.len()
        ));
    }
    let digest = format!("sha-256=:{}:", b64(&Sha256::digest(bytes)));
    assert_eq!(resp.required_header("repr-digest"), digest, "Repr-Digest");
    resp.required_header("etag");
}

#[test]
fn raw_upload_reads_back_exactly() {
    let bytes = fake_pdf(4096);
    let id = upload("application/pdf", &bytes);
    let path = format!("Binary/{id}");
    assert_raw(
        &get(&path).accept("application/pdf").send(),
        "application/pdf",
        &bytes,
    );
    assert_raw(&get(&path).accept("*/*").send(), "application/pdf", &bytes);
    assert_raw(
        &get(&path).accept("application/*").send(),
        "application/pdf",
        &bytes,
    );

    // With no Accept header at all (reqwest always sends one, so by hand).
    let resp = RawRequest::new("GET", &path)
        .send(server())
        .unwrap_or_else(|e| panic!("GET {path} without Accept: {e}"));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.media_type(), "application/pdf");
    assert!(
        resp.body == bytes,
        "the bytes differ when no Accept is sent"
    );
    assert_eq!(
        resp.header("repr-digest").unwrap_or_default(),
        format!("sha-256=:{}:", b64(&Sha256::digest(&bytes)))
    );
}

#[test]
fn binary_resource_view_in_json() {
    let bytes = fake_pdf(1000);
    let id = upload("application/pdf", &bytes);
    for req in [
        get(&format!("Binary/{id}")).accept("application/fhir+json"),
        get(&format!("Binary/{id}?_format=json")),
    ] {
        let resp = req.send();
        resp.assert_status(200);
        let body = resp.resource("Binary");
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["contentType"], "application/pdf");
        assert_eq!(body["data"], b64(&bytes).as_str());
        assert_eq!(body["meta"]["versionId"], "1");
        assert_eq!(resp.required_header("etag"), "W/\"1\"");
    }
}

#[test]
fn binary_resource_view_in_xml() {
    let bytes = fake_pdf(500);
    let id = upload("application/pdf", &bytes);
    let resp = get(&format!("Binary/{id}"))
        .accept("application/fhir+xml")
        .send();
    resp.assert_status(200);
    assert_eq!(resp.media_type(), FHIR_XML);
    let text = resp.text();
    assert!(
        text.contains("<Binary xmlns=\"http://hl7.org/fhir\""),
        "{text}"
    );
    assert!(
        text.contains("<contentType value=\"application/pdf\"/>"),
        "{text}"
    );
    assert!(
        text.contains(&format!("<data value=\"{}\"/>", b64(&bytes))),
        "{text}"
    );
}

#[test]
fn fhir_json_binary_can_be_posted_and_read_raw() {
    let bytes = random_bytes(3000, 7);
    let resource =
        json!({"resourceType": "Binary", "contentType": "image/png", "data": b64(&bytes)});
    let created = create(&resource);
    let id = id_of(&created);
    assert_eq!(created["contentType"], "image/png");
    assert_raw(
        &get(&format!("Binary/{id}")).accept("image/png").send(),
        "image/png",
        &bytes,
    );
    assert_raw(
        &get(&format!("Binary/{id}")).accept("*/*").send(),
        "image/png",
        &bytes,
    );
    let as_resource = get(&format!("Binary/{id}"))
        .accept("application/fhir+json")
        .send();
    assert_eq!(as_resource.resource("Binary")["data"], b64(&bytes).as_str());
}

#[test]
fn fhir_xml_binary_can_be_posted_and_read_raw() {
    let bytes = b"hello, binary world".to_vec();
    let xml = format!(
        "<Binary xmlns=\"http://hl7.org/fhir\"><contentType value=\"text/plain\"/><data value=\"{}\"/></Binary>",
        b64(&bytes)
    );
    let resp = post("Binary").xml(xml).accept(FHIR_JSON).send();
    resp.assert_status(201);
    let id = id_of(&resp.resource("Binary"));
    assert_raw(
        &get(&format!("Binary/{id}")).accept("text/plain").send(),
        "text/plain",
        &bytes,
    );
}

#[test]
fn a_five_megabyte_upload_round_trips() {
    let bytes = random_bytes(5 * 1024 * 1024 + 123, 42);
    let id = upload("application/octet-stream", &bytes);
    assert_raw(
        &get(&format!("Binary/{id}"))
            .accept("application/octet-stream")
            .send(),
        "application/octet-stream",
        &bytes,
    );
    let json_view = get(&format!("Binary/{id}"))
        .accept("application/fhir+json")
        .send();
    let data = json_view.resource("Binary")["data"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data.as_bytes())
        .expect("Binary.data is base64");
    assert!(decoded == bytes, "the base64 data differs from the upload");
}

#[test]
fn raw_update_makes_a_new_version_and_old_bytes_stay() {
    let v1 = fake_pdf(2000);
    let id = upload("application/pdf", &v1);
    let v2 = b"just text now".to_vec();
    let resp = put(&format!("Binary/{id}"))
        .content_type("text/plain")
        .bytes(v2.clone())
        .send();
    resp.assert_status(200);
    assert_eq!(resp.required_header("etag"), "W/\"2\"");
    assert_raw(
        &get(&format!("Binary/{id}")).accept("*/*").send(),
        "text/plain",
        &v2,
    );
    assert_raw(
        &get(&format!("Binary/{id}/_history/1")).accept("*/*").send(),
        "application/pdf",
        &v1,
    );
}

#[test]
fn binaries_can_be_deleted() {
    let id = upload("application/pdf", &fake_pdf(100));
    delete(&format!("Binary/{id}")).send().assert_status(204);
    get(&format!("Binary/{id}"))
        .accept("application/fhir+json")
        .send()
        .assert_outcome(410);
    let old = get(&format!("Binary/{id}/_history/1")).accept("*/*").send();
    old.assert_status(200);
}

#[test]
fn binary_with_bad_base64_is_rejected() {
    let resource =
        json!({"resourceType": "Binary", "contentType": "text/plain", "data": "***not base64***"});
    let resp = post("Binary").json(&resource).send();
    if resp.status != 400 && resp.status != 422 {
        resp.fail("invalid base64 in Binary.data must be refused (400 or 422)");
    }
    resp.assert_outcome(resp.status);
}
