//! The official FHIR R4 examples in `../shared/fhir-r4/examples`
//! (beside the repository).

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use crate::fhir::HOSTED_TYPES;
use crate::server::workspace_root;

/// An official example.
#[derive(Debug, Clone)]
pub struct Example {
    pub file: String,
    pub resource_type: String,
    pub id: String,
    pub resource: Value,
}

/// `shared/fhir-r4/examples`, beside the repository.
pub fn examples_dir() -> PathBuf {
    workspace_root()
        .join("..")
        .join("shared")
        .join("fhir-r4")
        .join("examples")
}

/// One example file by name, parsed (order of keys and decimals kept).
pub fn load(file: &str) -> Value {
    let path = examples_dir().join(file);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every example of a hosted type (`{Type}-{id}.json`), sorted so that
/// resources come after the ones they usually refer to.
pub fn hosted_examples() -> Vec<Example> {
    let dir = examples_dir();
    let listing = fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "cannot list the official examples in {} (the shared/ folder must sit beside the repository): {e}",
            dir.display()
        )
    });
    let mut out = Vec::new();
    for entry in listing.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix(".json") else {
            continue;
        };
        let Some((prefix, _)) = stem.split_once('-') else {
            continue;
        };
        if !HOSTED_TYPES.contains(&prefix) {
            continue;
        }
        let resource = load(&file);
        let resource_type = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            resource_type, prefix,
            "{file}: the resourceType does not match the file name"
        );
        let id = resource["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{file} has no id"))
            .to_string();
        out.push(Example {
            file,
            resource_type,
            id,
            resource,
        });
    }
    let rank = |t: &str| {
        [
            "Organization",
            "Practitioner",
            "PractitionerRole",
            "Patient",
            "Binary",
            "Consent",
            "DocumentReference",
            "AuditEvent",
        ]
        .iter()
        .position(|x| *x == t)
        .unwrap_or(99)
    };
    out.sort_by(|a, b| (rank(&a.resource_type), &a.file).cmp(&(rank(&b.resource_type), &b.file)));
    out
}
