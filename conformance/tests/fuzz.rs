//! A bounded, seeded fuzz run: random and mutated bodies, hostile headers and
//! odd paths at every endpoint and method. Every answer must be below 500,
//! every error must carry an OperationOutcome, and the server must still
//! answer afterwards.
//!
//! `FHIRLEDGER_FUZZ_SEED` and `FHIRLEDGER_FUZZ_REQUESTS` change the run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use conformance::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const DEFAULT_REQUESTS: usize = 2000;
const TIME_BUDGET: Duration = Duration::from_secs(100);

struct Targets {
    patient: String,
    document: String,
    binary: String,
    practitioner: String,
}

fn setup() -> Targets {
    let patient = new_patient();
    let document = id_of(&create(&document_reference(&patient, &uid())));
    let practitioner = id_of(&create(&practitioner(&uid())));
    let resp = post("Binary")
        .content_type("application/pdf")
        .bytes(b"%PDF-1.4 fuzz".to_vec())
        .send();
    resp.assert_status(201);
    let binary = resp
        .required_header("location")
        .rsplit("/Binary/")
        .next()
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_string();
    Targets {
        patient,
        document,
        binary,
        practitioner,
    }
}

fn pick<'a, T: ?Sized>(rng: &mut StdRng, items: &'a [&'a T]) -> &'a T {
    items.choose(rng).copied().expect("non-empty choice")
}

fn enc(s: &str) -> String {
    url_encode(s)
}

fn random_type(rng: &mut StdRng) -> String {
    if rng.gen_bool(0.85) {
        HOSTED_TYPES.choose(rng).expect("types").to_string()
    } else {
        pick(
            rng,
            &[
                "Observation",
                "Foo",
                "patient",
                "Patient%00",
                "%00",
                "%FF%FE",
                "Bundle",
                "metadata",
            ],
        )
        .to_string()
    }
}

fn random_id(rng: &mut StdRng, t: &Targets) -> String {
    match rng.gen_range(0..14) {
        0..=3 => pick(rng, &[&t.patient, &t.document, &t.binary, &t.practitioner]).to_string(),
        4 => uid(),
        5 => "a".repeat(65),
        6 => "a_b".into(),
        7 => "x%00y".into(),
        8 => "%00".into(),
        9 => "%FF%FE%FD".into(),
        10 => "..".into(),
        11 => "%C3%A9".into(),
        12 => "x".repeat(rng.gen_range(64..5000)),
        _ => enc(&random_text(rng, 20)),
    }
}

fn random_text(rng: &mut StdRng, max: usize) -> String {
    let len = rng.gen_range(0..=max);
    (0..len)
        .map(|_| match rng.gen_range(0..10) {
            0 => '\0',
            1 => char::from_u32(rng.gen_range(0x80..0x2FFF)).unwrap_or('?'),
            2 => *['|', ',', '&', '=', '?', '/', '%', '"', '\\', '<', '>']
                .choose(rng)
                .unwrap_or(&'|'),
            _ => rng.gen_range(b'a'..=b'z') as char,
        })
        .collect()
}

fn random_query(rng: &mut StdRng) -> String {
    let n = rng.gen_range(0..4);
    let mut parts = Vec::new();
    for _ in 0..n {
        let p = match rng.gen_range(0..12) {
            0 => format!(
                "_format={}",
                pick(
                    rng,
                    &[
                        "json",
                        "xml",
                        "html",
                        "application%2Ffhir%2Bxml",
                        "%00",
                        "",
                        "text/turtle"
                    ]
                )
            ),
            1 => format!("_pretty={}", pick(rng, &["true", "false", "maybe", ""])),
            2 => format!(
                "_summary={}",
                pick(rng, &["true", "text", "data", "count", "false", "foo", ""])
            ),
            3 => format!(
                "_elements={}",
                pick(rng, &["status,subject", "", ",,,", "foo.bar", "%00", "id"])
            ),
            4 => format!(
                "_count={}",
                pick(
                    rng,
                    &["2", "0", "-1", "abc", "99999999999999999999", "1001"]
                )
            ),
            5 => format!(
                "_since={}",
                pick(
                    rng,
                    &[
                        "2020-01-01",
                        "2020-01-01T00:00:00Z",
                        "garbage",
                        "9999-99-99",
                        "%00"
                    ]
                )
            ),
            6 => format!(
                "_cursor={}",
                pick(rng, &["1", "-5", "abc", "99999999999999999999", "0"])
            ),
            7 => format!(
                "identifier={}",
                enc(&format!("{ID_SYSTEM}|{}", random_text(rng, 12)))
            ),
            8 => format!("_id={}", enc(&random_text(rng, 10))),
            9 => format!(
                "{}={}",
                enc(&random_text(rng, 6)),
                enc(&random_text(rng, 6))
            ),
            10 => "identifier=%00".to_string(),
            _ => format!(
                "identifier={}",
                pick(rng, &["a,b", "|", "|x", "x|", "", "%7C%7C"])
            ),
        };
        parts.push(p);
    }
    parts.join("&")
}

fn random_criteria(rng: &mut StdRng) -> String {
    match rng.gen_range(0..10) {
        0 | 1 => format!("identifier={}", enc(&token(&uid()))),
        2 => format!(
            "identifier={}",
            enc(&format!("{ID_SYSTEM}|{}", random_text(rng, 12)))
        ),
        3 => "identifier=%00".to_string(),
        4 => format!("_id={}", enc(&random_text(rng, 10))),
        5 => "identifier=a,b".to_string(),
        6 => String::new(),
        7 => format!(
            "{}={}",
            enc(&random_text(rng, 6)),
            enc(&random_text(rng, 6))
        ),
        8 => format!("identifier={}&_id={}", enc(&random_text(rng, 8)), uid()),
        _ => format!("identifier=%7C{}", "x".repeat(rng.gen_range(1..3000))),
    }
}

fn random_path(rng: &mut StdRng, t: &Targets) -> String {
    let ty = random_type(rng);
    let path = match rng.gen_range(0..11) {
        0 => "metadata".to_string(),
        1 => "_history".to_string(),
        2 => ty,
        3 => format!("{ty}/_history"),
        4..=6 => format!("{ty}/{}", random_id(rng, t)),
        7 => format!("{ty}/{}/_history", random_id(rng, t)),
        8 => format!(
            "{ty}/{}/_history/{}",
            random_id(rng, t),
            pick(
                rng,
                &["1", "0", "-1", "99999999999999999999999", "abc", "%00", "2"]
            )
        ),
        9 => String::new(),
        _ => (0..rng.gen_range(1..6))
            .map(|_| enc(&random_text(rng, 8)))
            .collect::<Vec<_>>()
            .join("/"),
    };
    let query = if rng.gen_bool(0.4) {
        random_query(rng)
    } else {
        String::new()
    };
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// A valid resource of `ty` (a random hosted type when `None`), with `id`
/// when given.
fn valid_resource(rng: &mut StdRng, t: &Targets, ty: Option<&str>, id: Option<&str>) -> Value {
    let ty = ty
        .map(str::to_string)
        .unwrap_or_else(|| HOSTED_TYPES.choose(rng).expect("types").to_string());
    let mut v = match ty.as_str() {
        "Patient" => patient(&uid()),
        "DocumentReference" => document_reference(&t.patient, &uid()),
        "Consent" => consent(&t.patient, &uid()),
        "Practitioner" => practitioner(&uid()),
        "Organization" => organization(&uid()),
        "PractitionerRole" => json!({
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": format!("Practitioner/{}", t.practitioner)},
            "active": true
        }),
        "Binary" => {
            json!({"resourceType": "Binary", "contentType": "text/plain", "data": "aGVsbG8="})
        }
        "AuditEvent" => conformance::examples::load("AuditEvent-example.json"),
        _ => patient(&uid()),
    };
    if let (Some(id), Some(obj)) = (id, v.as_object_mut()) {
        obj.insert("id".into(), json!(id));
    } else if let Some(obj) = v.as_object_mut() {
        obj.remove("id");
    }
    v
}

/// Replaces one random value somewhere in `v` with a value of another type.
fn confuse(rng: &mut StdRng, v: &mut Value) {
    let replacement = match rng.gen_range(0..8) {
        0 => json!([]),
        1 => json!({}),
        2 => Value::Null,
        3 => json!(true),
        4 => json!(-12.5),
        5 => json!("\u{0}"),
        6 => json!([[{"x": null}]]),
        _ => json!("9".repeat(400)),
    };
    replace_somewhere(rng, v, replacement, 0.35);
}

fn mutate_bytes(rng: &mut StdRng, mut bytes: Vec<u8>) -> Vec<u8> {
    match rng.gen_range(0..5) {
        0 => {
            let cut = rng.gen_range(0..=bytes.len());
            bytes.truncate(cut);
        }
        1 => {
            for _ in 0..rng.gen_range(1..8) {
                if !bytes.is_empty() {
                    let i = rng.gen_range(0..bytes.len());
                    bytes[i] = rng.gen();
                }
            }
        }
        2 => {
            let i = rng.gen_range(0..=bytes.len());
            let junk: Vec<u8> = (0..rng.gen_range(1..50)).map(|_| rng.gen()).collect();
            bytes.splice(i..i, junk);
        }
        3 => {
            let i = rng.gen_range(0..=bytes.len());
            bytes.splice(i..i, [0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
        }
        _ => {
            let i = rng.gen_range(0..=bytes.len());
            bytes.splice(i..i, *b"\\u0000");
        }
    }
    bytes
}

fn xml_patient(ident: &str) -> String {
    format!(
        "<Patient xmlns=\"http://hl7.org/fhir\"><identifier><system value=\"{ID_SYSTEM}\"/><value value=\"{ident}\"/></identifier><active value=\"true\"/></Patient>"
    )
}

/// A body and the Content-Type it pretends to be.
fn random_body(
    rng: &mut StdRng,
    t: &Targets,
    ty: Option<&str>,
    id: Option<&str>,
) -> (Option<Vec<u8>>, &'static str) {
    const JSON: &str = "application/fhir+json";
    const XML: &str = "application/fhir+xml";
    match rng.gen_range(0..20) {
        0 => (None, JSON),
        1 | 2 => (
            Some(valid_resource(rng, t, ty, id).to_string().into_bytes()),
            JSON,
        ),
        3..=5 => {
            let valid = valid_resource(rng, t, ty, id).to_string().into_bytes();
            (Some(mutate_bytes(rng, valid)), JSON)
        }
        6 | 7 => {
            let mut v = valid_resource(rng, t, ty, id);
            confuse(rng, &mut v);
            (Some(v.to_string().into_bytes()), JSON)
        }
        8 => {
            let depth = 10_000;
            let body = match rng.gen_range(0..3) {
                0 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
                1 => format!(
                    "{{\"resourceType\":\"Patient\",\"extension\":{}{}}}",
                    "[".repeat(depth),
                    "]".repeat(depth)
                ),
                _ => format!(
                    "{{\"resourceType\":\"Patient\",\"a\":{}1{}}}",
                    "{\"a\":".repeat(depth),
                    "}".repeat(depth)
                ),
            };
            (Some(body.into_bytes()), JSON)
        }
        9 => {
            let depth = 10_000;
            let body = format!(
                "<Patient xmlns=\"http://hl7.org/fhir\">{}{}</Patient>",
                "<extension url=\"http://x\">".repeat(depth),
                "</extension>".repeat(depth)
            );
            (Some(body.into_bytes()), XML)
        }
        10 => {
            let huge = pick(
                rng,
                &[
                    "1e999999",
                    "-1e999999",
                    "1e-999999",
                    "-0",
                    "123456789012345678901234567890123456789012345678901234567890",
                ],
            );
            let body = match rng.gen_range(0..3) {
                0 => format!("{{\"resourceType\":\"Patient\",\"multipleBirthInteger\":{huge}}}"),
                1 => format!(
                    "{{\"resourceType\":\"DocumentReference\",\"status\":\"current\",\"subject\":{{\"reference\":\"Patient/{}\"}},\"content\":[{{\"attachment\":{{\"contentType\":\"text/plain\",\"data\":\"aGk=\",\"size\":{huge}}}}}]}}",
                    t.patient
                ),
                _ => format!(
                    "{{\"resourceType\":\"Patient\",\"extension\":[{{\"url\":\"http://x\",\"valueDecimal\":{huge}}}]}}"
                ),
            };
            (Some(body.into_bytes()), JSON)
        }
        11 => {
            let mut p = valid_resource(rng, t, ty, id);
            p["identifier"] = json!([{"system": ID_SYSTEM, "value": format!("nul\u{0}{}", uid())}]);
            if rng.gen_bool(0.5) {
                p["id"] = json!(format!("a\u{0}b{}", rng.gen::<u16>()));
            }
            if rng.gen_bool(0.3) {
                p["identifier"][0]["system"] = json!("urn:\u{0}");
            }
            (Some(p.to_string().into_bytes()), JSON)
        }
        12 => {
            let len = rng.gen_range(0..4000);
            (Some((0..len).map(|_| rng.gen()).collect()), JSON)
        }
        13 => (Some(xml_patient(&uid()).into_bytes()), XML),
        14 => (
            Some(mutate_bytes(rng, xml_patient(&uid()).into_bytes())),
            XML,
        ),
        15 => {
            let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\"><!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\"><!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">]><Patient xmlns=\"http://hl7.org/fhir\"><name><family value=\"&lol4;\"/></name></Patient>";
            let xxe = "<?xml version=\"1.0\"?><!DOCTYPE p [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><Patient xmlns=\"http://hl7.org/fhir\"><name><family value=\"&xxe;\"/></name></Patient>";
            (Some(pick(rng, &[bomb, xxe]).as_bytes().to_vec()), XML)
        }
        16 => {
            let s = "x".repeat(rng.gen_range(100_000..1_000_000));
            (
                Some(
                    json!({"resourceType": "Patient", "name": [{"family": s}]})
                        .to_string()
                        .into_bytes(),
                ),
                JSON,
            )
        }
        17 => {
            let data = base64::engine::general_purpose::STANDARD.encode(random_text(rng, 200));
            let body = json!({"resourceType": "Binary", "contentType": random_text(rng, 12), "data": data});
            (Some(body.to_string().into_bytes()), JSON)
        }
        18 => (
            Some(valid_resource(rng, t, ty, id).to_string().into_bytes()),
            XML,
        ),
        _ => (Some(xml_patient(&uid()).into_bytes()), JSON),
    }
}

fn random_header_value(rng: &mut StdRng, name: &str) -> String {
    match name {
        "Content-Type" => pick(
            rng,
            &[
                "application/fhir+json",
                "application/fhir+xml",
                "application/json",
                "application/xml",
                "text/plain",
                "a/b/c",
                "",
                ";;;",
                "application/fhir+json; charset=latin1",
                "application/fhir+json; fhirVersion=3.0",
                "multipart/form-data; boundary=x",
                "application/pdf",
                "*/*",
                "application/x-www-form-urlencoded",
            ],
        )
        .to_string(),
        "Accept" => pick(
            rng,
            &[
                "application/fhir+json",
                "application/fhir+xml",
                "text/html",
                "*/*",
                "application/pdf",
                "image/*",
                "garbage",
                "application/fhir+xml;q=0, application/fhir+json;q=0",
                "application/json;q=abc",
                ",,,",
                "",
            ],
        )
        .to_string(),
        "If-Match" => pick(
            rng,
            &[
                "W/\"1\"",
                "W/\"999\"",
                "*",
                "garbage",
                "W/\"\"",
                "\"1\"",
                "W/\"99999999999999999999999\"",
                "W/\"-1\"",
                "W/\"1\", W/\"2\"",
            ],
        )
        .to_string(),
        "If-None-Exist" => match rng.gen_range(0..10) {
            0 => format!("identifier={}", token(&uid())),
            1 => "identifier=%00".to_string(),
            2 => "_id=".to_string(),
            3 => String::new(),
            4 => "foo=bar".to_string(),
            5 => "identifier=a,b".to_string(),
            6 => "identifier=|".to_string(),
            7 => "&&&==".to_string(),
            8 => format!("identifier={}", "x".repeat(5000)),
            _ => format!("_id={}&identifier=%FF%FE", uid()),
        },
        _ => pick(
            rng,
            &[
                "return=minimal",
                "return=OperationOutcome",
                "return=representation",
                "handling=lenient",
                "handling=strict",
                "return=garbage",
                "=;,",
                "respond-async",
                "return=minimal, handling=lenient",
            ],
        )
        .to_string(),
    }
}

#[derive(Default)]
struct Findings {
    /// signature → (count, first example)
    by_kind: BTreeMap<String, (usize, String)>,
}

impl Findings {
    fn add(&mut self, kind: String, detail: String) {
        let entry = self.by_kind.entry(kind).or_insert((0, detail));
        entry.0 += 1;
    }
}

/// `Patient/abc?x` → `Patient/{id}` style signature for grouping findings.
fn shape(method: &str, path: &str) -> String {
    let path = path.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.split('/').collect();
    let shaped: Vec<String> = segs
        .iter()
        .enumerate()
        .map(|(i, s)| match i {
            0 => s.to_string(),
            _ if *s == "_history" => "_history".into(),
            _ => "*".into(),
        })
        .collect();
    format!("{method} {}", shaped.join("/"))
}

#[test]
fn fuzzed_requests_never_fail_the_server() {
    let seed: u64 = std::env::var("FHIRLEDGER_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_F41E);
    let requests: usize = std::env::var("FHIRLEDGER_FUZZ_REQUESTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_REQUESTS);
    let targets = setup();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut findings = Findings::default();
    let started = Instant::now();
    let mut sent = 0;
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();

    for _ in 0..requests {
        if started.elapsed() > TIME_BUDGET {
            break;
        }
        let ty = HOSTED_TYPES.choose(&mut rng).expect("types").to_string();
        let (method, path, body_type, body_id) = match rng.gen_range(0..12) {
            // create, sometimes conditional
            0..=2 => ("POST", ty.clone(), Some(ty), None),
            // update (as create when the id is new)
            3..=5 => {
                let id = match (ty.as_str(), rng.gen_range(0..4)) {
                    ("Patient", 0) => targets.patient.clone(),
                    ("DocumentReference", 0) => targets.document.clone(),
                    ("Binary", 0) => targets.binary.clone(),
                    ("Practitioner", 0) => targets.practitioner.clone(),
                    (_, 3) => random_id(&mut rng, &targets),
                    _ => uid(),
                };
                let body_id = if rng.gen_bool(0.85) {
                    Some(id.clone())
                } else {
                    None
                };
                ("PUT", format!("{ty}/{id}"), Some(ty), body_id)
            }
            // conditional update
            6 => (
                "PUT",
                format!("{ty}?{}", random_criteria(&mut rng)),
                Some(ty),
                None,
            ),
            // delete, plain or conditional
            7 => {
                let path = if rng.gen_bool(0.5) {
                    format!("{ty}/{}", random_id(&mut rng, &targets))
                } else {
                    format!("{ty}?{}", random_criteria(&mut rng))
                };
                ("DELETE", path, None, None)
            }
            // reads
            8 | 9 => (
                *["GET", "GET", "GET", "HEAD"]
                    .choose(&mut rng)
                    .expect("methods"),
                random_path(&mut rng, &targets),
                None,
                None,
            ),
            // anything at all
            _ => (
                *["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]
                    .choose(&mut rng)
                    .expect("methods"),
                random_path(&mut rng, &targets),
                None,
                None,
            ),
        };
        let full = server().url(&path);
        if reqwest::Url::parse(&full).is_err() {
            continue;
        }
        let mut req = request(method, &path);
        let mut described = format!("{method} /fhir/{path}");
        let with_body = matches!(method, "POST" | "PUT" | "PATCH") || rng.gen_bool(0.05);
        let (body, natural_ct) = if with_body {
            random_body(&mut rng, &targets, body_type.as_deref(), body_id.as_deref())
        } else {
            (None, "")
        };
        if body.is_some() {
            let ct = if rng.gen_bool(0.75) {
                natural_ct.to_string()
            } else {
                random_header_value(&mut rng, "Content-Type")
            };
            described.push_str(&format!(" [Content-Type: {ct}]"));
            req = req.content_type(&ct);
        }
        for name in ["Accept", "If-Match", "If-None-Exist", "Prefer"] {
            let p = if name == "If-None-Exist" && method == "POST" {
                0.5
            } else {
                0.2
            };
            if rng.gen_bool(p) {
                let value = random_header_value(&mut rng, name);
                described.push_str(&format!(
                    " [{name}: {}]",
                    value.chars().take(80).collect::<String>()
                ));
                req = req.header(name, value);
            }
        }
        if let Some(body) = body {
            described.push_str(&format!(
                " body {} bytes: {}",
                body.len(),
                snippet(&body, 160)
            ));
            req = req.bytes(body);
        }
        sent += 1;
        let resp = match req.try_send() {
            Ok(resp) => resp,
            Err(e) => {
                if !server().is_running() {
                    panic!(
                        "the server died after {sent} fuzzed requests; last request: {described}\n{e}"
                    );
                }
                findings.add(
                    format!("transport error on {}", shape(method, &path)),
                    format!("{described}\n{e}"),
                );
                continue;
            }
        };
        *statuses.entry(resp.status).or_default() += 1;
        if resp.status >= 500 {
            findings.add(
                format!("{} on {}", resp.status, shape(method, &path)),
                format!("{described}\n=> {}", snippet(&resp.body, 600)),
            );
            continue;
        }
        if resp.status >= 400 && method != "HEAD" {
            let is_outcome = match resp.media_type().as_str() {
                "application/fhir+json" => serde_json::from_slice::<Value>(&resp.body)
                    .ok()
                    .is_some_and(|v| v["resourceType"] == "OperationOutcome"),
                "application/fhir+xml" => {
                    String::from_utf8_lossy(&resp.body).contains("<OperationOutcome")
                }
                _ => false,
            };
            if !is_outcome {
                findings.add(
                    format!(
                        "{} without an OperationOutcome on {}",
                        resp.status,
                        shape(method, &path)
                    ),
                    format!(
                        "{described}\n=> Content-Type {:?}: {}",
                        resp.header("content-type"),
                        snippet(&resp.body, 300)
                    ),
                );
            }
        }
    }

    // The server is still there and still answers.
    assert!(
        server().is_running(),
        "the server process died during the fuzz run"
    );
    let meta = get("metadata").send();
    meta.assert_status(200);
    meta.resource("CapabilityStatement");
    // Writes and reads still work (the fuzz run may have deleted the targets).
    let fresh = create(&patient(&uid()));
    assert_eq!(read("Patient", &id_of(&fresh)), fresh);

    eprintln!(
        "fuzz: seed {seed:#x}, {sent} requests in {:?}, statuses {statuses:?}",
        started.elapsed()
    );
    assert!(
        sent >= requests.min(200),
        "the fuzz run sent only {sent} requests"
    );
    if !findings.by_kind.is_empty() {
        let report: Vec<String> = findings
            .by_kind
            .iter()
            .map(|(kind, (n, example))| format!("- {kind} (x{n}), e.g.\n    {example}"))
            .collect();
        panic!(
            "{} kinds of bad answers in {sent} fuzzed requests (seed {seed:#x}):\n{}\n--- server log ---\n{}",
            findings.by_kind.len(),
            report.join("\n"),
            server().log_tail(20)
        );
    }
}
