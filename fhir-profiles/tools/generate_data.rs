//! Regenerates `fhir-profiles/data/` from the official FHIR R4 definitions.
//!
//! `cargo run -p fhir-profiles --example generate_data [path/to/shared/fhir-r4]`
//! (default: `../shared/fhir-r4` next to the workspace).

#[path = "generator.rs"]
mod generator;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let source = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../shared/fhir-r4"));
    let files = match generator::generate(&source) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("generate_data: {e}");
            return ExitCode::FAILURE;
        }
    };
    for file in files {
        let path = manifest.join("data").join(file.name);
        if let Err(e) = std::fs::write(&path, file.text) {
            eprintln!("generate_data: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
