//! Which resource types exist in R4, and which of them this server hosts.

use std::collections::HashSet;
use std::sync::LazyLock;

/// Types this server hosts, in CapabilityStatement order.
pub const HOSTED: &[&str] = &[
    "DocumentReference",
    "Consent",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Binary",
    "AuditEvent",
];

/// Concrete R4 resource types, one per line (generated; see data/README.md).
const R4_RESOURCE_TYPES: &str = include_str!("../data/resource-types.txt");

/// True for the types this server stores and serves.
pub fn is_hosted(t: &str) -> bool {
    HOSTED.contains(&t)
}

/// Every R4 resource type name (generated from CodeSystem-resource-types.json), to tell
/// "unknown type" (404) from "not hosted" (also 404 but different message).
pub fn is_r4_resource_type(t: &str) -> bool {
    // Asked for every reference and contained resource: a set, not a scan.
    static TYPES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
        R4_RESOURCE_TYPES
            .lines()
            .filter(|l| !l.is_empty())
            .collect()
    });
    TYPES.contains(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosted_types_are_r4_types() {
        for t in HOSTED {
            assert!(is_hosted(t));
            assert!(is_r4_resource_type(t));
        }
    }

    #[test]
    fn tells_unknown_from_not_hosted() {
        assert!(is_r4_resource_type("Encounter"));
        assert!(!is_hosted("Encounter"));
        assert!(is_r4_resource_type("CapabilityStatement"));
        for bad in [
            "",
            "Foo",
            "patient",
            "Resource",
            "DomainResource",
            "Patient ",
        ] {
            assert!(!is_r4_resource_type(bad), "{bad:?}");
        }
        assert_eq!(R4_RESOURCE_TYPES.lines().count(), 146);
    }
}
