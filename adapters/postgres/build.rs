//! Rebuild when a migration changes, because they are embedded in the binary.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
