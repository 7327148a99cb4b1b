//! The committed ABI and bytecode are what solc (the version pinned in
//! conformance/chain/package-lock.json) makes of the committed source.

mod common;

use std::process::Command;

#[test]
fn committed_artifacts_match_a_fresh_compilation() {
    let root = common::repo_root();
    assert!(
        root.join("conformance/chain/node_modules/solc").exists(),
        "solc-js missing: run `npm ci` in conformance/chain (./test.sh does)"
    );
    let node = std::env::var_os("FHIRLEDGER_NODE").unwrap_or_else(|| "node".into());
    let out = Command::new(node)
        .arg(root.join("conformance/chain/compile.mjs"))
        .arg("--check")
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "compile.mjs --check failed:\n{stdout}{stderr}"
    );
}

#[test]
fn bundled_bytecode_and_abi_are_the_committed_files() {
    let bin = fhirledger_chain::AUDIT_ANCHOR_BIN.trim();
    assert!(bin.len() > 100 && bin.len() % 2 == 0);
    assert!(bin.bytes().all(|b| b.is_ascii_hexdigit()));
    // paris: no PUSH0 (0x5f) needed by a pre-Shanghai Besu genesis. Checked
    // by walking the opcodes, skipping PUSH data.
    let code: Vec<u8> = (0..bin.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&bin[i..i + 2], 16).unwrap())
        .collect();
    let mut i = 0;
    // Up to the CBOR metadata tail, whose length is the last two bytes.
    let tail = usize::from(code[code.len() - 2]) << 8 | usize::from(code[code.len() - 1]);
    let end = code.len() - tail - 2;
    while i < end {
        let op = code[i];
        assert_ne!(op, 0x5f, "PUSH0 at {i}: not paris bytecode");
        i += 1 + if (0x60..=0x7f).contains(&op) {
            usize::from(op - 0x5f)
        } else {
            0
        };
    }
    for name in [
        "checkpoint",
        "latest",
        "rootAt",
        "isWriter",
        "addWriter",
        "removeWriter",
        "Checkpoint",
        "SizeNotIncreasing",
    ] {
        assert!(
            fhirledger_chain::AUDIT_ANCHOR_ABI.contains(&format!("\"{name}\"")),
            "{name}"
        );
    }
}
