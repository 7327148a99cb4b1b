//! Helpers shared by the integration tests: the official examples in ../shared.

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

/// `../shared/fhir-r4`, relative to this crate.
pub fn fhir_r4() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fhir-r4")
}

/// The official example files of the hosted types, subfolders included: (file name, bytes).
pub fn hosted_examples() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    collect(&fhir_r4().join("examples"), &mut out);
    out.sort();
    out
}

fn collect(dir: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        panic!("examples not found at {}", dir.display());
    };
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        if path.is_dir() {
            collect(&path, out);
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let t = name.split('-').next().unwrap_or_default();
        if name.ends_with(".json") && fhir_profiles::resource_types::is_hosted(t) {
            if let Ok(bytes) = std::fs::read(&path) {
                out.push((name.to_string(), bytes));
            }
        }
    }
}

/// Parses JSON keeping number text exactly (serde_json arbitrary_precision).
pub fn json(bytes: &[u8]) -> Value {
    match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => panic!("bad JSON: {e}"),
    }
}
