//! RFC 6962's SHA-256 test vectors (shared/merkle/rfc6962-vectors.json),
//! through the same generic code the Keccak-256 log runs.

use std::collections::HashMap;

use fhirledger_merkle::{
    frontier_nodes, range_hash, reference, Frontier, Hash, Hasher, NodeId, Sha256Hasher,
};

fn from_hex(text: &str) -> Vec<u8> {
    assert_eq!(text.len() % 2, 0, "odd hex length: {text}");
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex digit"))
        .collect()
}

/// The leaves' data and the roots over the first n leaves (n = 0, 1, …).
fn vectors() -> (Vec<Vec<u8>>, Vec<Hash>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/merkle/rfc6962-vectors.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}"));
    let json: serde_json::Value = serde_json::from_str(&text).expect("vectors are JSON");
    assert_eq!(json["hash"], "sha256");
    let strings = |key: &str| -> Vec<String> {
        json[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key} is an array"))
            .iter()
            .map(|value| value.as_str().expect("hex string").to_owned())
            .collect()
    };
    let leaves: Vec<Vec<u8>> = strings("leaves_hex")
        .iter()
        .map(|hex| from_hex(hex))
        .collect();
    let roots: Vec<Hash> = strings("roots_hex")
        .iter()
        .map(|hex| from_hex(hex).try_into().expect("32-byte root"))
        .collect();
    assert_eq!(
        roots.len(),
        leaves.len() + 1,
        "a root for every prefix, empty included"
    );
    (leaves, roots)
}

#[test]
fn reference_root_of_every_prefix_matches() {
    let (leaves, roots) = vectors();
    let leaf_hashes: Vec<Hash> = leaves
        .iter()
        .map(|data| Sha256Hasher.leaf_hash(data))
        .collect();
    for (size, expected) in roots.iter().enumerate() {
        assert_eq!(
            reference::root(&Sha256Hasher, &leaf_hashes[..size]),
            *expected,
            "root over the first {size} leaves"
        );
    }
}

#[test]
fn frontier_root_after_every_append_matches() {
    let (leaves, roots) = vectors();
    let mut frontier = Frontier::new(Sha256Hasher);
    assert_eq!(frontier.root(), roots[0]);
    let mut store: HashMap<NodeId, Hash> = HashMap::new();
    for (index, data) in leaves.iter().enumerate() {
        for node in frontier.append(Sha256Hasher.leaf_hash(data)).unwrap() {
            assert!(
                store.insert(node.id, node.hash).is_none(),
                "{:?} reported twice",
                node.id
            );
        }
        assert_eq!(
            frontier.root(),
            roots[index + 1],
            "root over the first {} leaves",
            index + 1
        );
    }

    // Every past root from the stored nodes alone: restored frontiers, and
    // the plain fold of the frontier's nodes.
    for (size, expected) in roots.iter().enumerate() {
        let hashes: Vec<Hash> = frontier_nodes(size as u64)
            .iter()
            .map(|id| store[id])
            .collect();
        let restored = Frontier::restore(Sha256Hasher, size as u64, hashes.clone()).unwrap();
        assert_eq!(
            restored.root(),
            *expected,
            "restored frontier of {size} leaves"
        );
        let folded = range_hash(&Sha256Hasher, &hashes).unwrap_or(Sha256Hasher.empty_root());
        assert_eq!(folded, *expected, "folded frontier of {size} leaves");
    }
}
