//! Micro-benchmark of the per-request FHIR work on a create: strict parse (with the
//! structural checks), the server's rules, and serialisation, for the benchmark document.
//! `cargo run --release -p fhir-profiles --example prepare_cost`
use fhir_profiles::format::{parse_resource, to_json_bytes, FhirFormat};
use fhir_profiles::validate::{validate_parsed, validate_resource};
use std::time::Instant;
fn main() {
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../conformance/bench/document.json"
    ))
    .expect("the benchmark document");
    let n = 5000;
    let t = Instant::now();
    for _ in 0..n {
        let v = parse_resource(&body, FhirFormat::Json).expect("the document parses");
        std::hint::black_box(v);
    }
    let p = t.elapsed().as_micros() as f64 / n as f64;
    let v = parse_resource(&body, FhirFormat::Json).expect("the document parses");
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(validate_resource(&v));
    }
    let val = t.elapsed().as_micros() as f64 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(to_json_bytes(&v, false));
    }
    let ser = t.elapsed().as_micros() as f64 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(validate_parsed(&v));
    }
    let rules = t.elapsed().as_micros() as f64 / n as f64;
    println!("parse {p:.1} us, validate_resource {val:.1} us, validate_parsed {rules:.1} us, serialize {ser:.1} us");
}
