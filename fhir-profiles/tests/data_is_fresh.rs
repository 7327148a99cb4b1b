//! data/ is what tools/generator.rs makes from the official definitions in ../shared.

#[path = "../tools/generator.rs"]
mod generator;

mod common;

use std::path::PathBuf;

#[test]
fn embedded_data_matches_the_official_definitions() {
    let source = common::fhir_r4();
    if !source.join("fhir.schema.json").exists() {
        eprintln!("skipped: {} not present", source.display());
        return;
    }
    let files = match generator::generate(&source) {
        Ok(files) => files,
        Err(e) => panic!("generator failed: {e}"),
    };
    let names: Vec<&str> = files.iter().map(|f| f.name).collect();
    for expected in [
        "resource-types.txt",
        "elements.json",
        "profiles.json",
        "valuesets.json",
        "search-parameters.json",
    ] {
        assert!(
            names.contains(&expected),
            "generator no longer makes {expected}"
        );
    }
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data");
    for file in files {
        let stored = std::fs::read_to_string(data.join(file.name)).unwrap_or_default();
        assert!(
            stored == file.text,
            "data/{} is stale: run `cargo run -p fhir-profiles --example generate_data`",
            file.name
        );
    }
}
