//! Granting: granted = requested ∩ what the client is registered for ∩ the
//! role's ceiling, and the check that a refresh never widens a grant.
//!
//! Intersection is computed on meaning, not on text: `patient/*.read`
//! intersected with `patient/Observation.rs` is `patient/Observation.rs`, so a
//! client asking broadly gets exactly what every party allows and nothing more.

use super::scope::{ResourceScope, Scope, ScopeSet};

/// The scopes allowed by both `requested` and `limit`. Apply twice for three
/// sets: `intersect(&intersect(&requested, &client), &role.ceiling())`.
///
/// - Non-resource scopes are kept when both sets hold them.
/// - Each requested resource scope is met with every limit scope of the same
///   context (contexts never mix): the more specific type, the common
///   permissions, and both sets of granular parameters (ANDed).
/// - A requested scope that survives unchanged keeps its original text (a
///   fully granted v1 request comes back as written); anything narrowed is
///   rendered in canonical v2 form.
/// - Duplicates, and results covered by another result, are dropped.
///
/// The result is always a subset of both inputs (see [`is_subset`]).
pub fn intersect(requested: &ScopeSet, limit: &ScopeSet) -> ScopeSet {
    let mut results: Vec<(Scope, String)> = Vec::new();
    for entry in requested.entries() {
        match entry.scope() {
            Scope::Resource(r) => {
                for l in limit.resource_scopes() {
                    let Some(met) = meet(r, l) else { continue };
                    if met.same_grant(r) {
                        results.push((entry.scope().clone(), entry.text().to_owned()));
                    } else {
                        let text = met.to_string();
                        results.push((Scope::Resource(met), text));
                    }
                }
            }
            other => {
                if limit.contains(other) {
                    results.push((other.clone(), entry.text().to_owned()));
                }
            }
        }
    }
    drop_covered(results)
}

/// True when every scope of `narrower` is covered by `wider`: a refresh or a
/// re-authorisation may ask for this and no more (otherwise `invalid_scope`).
///
/// A resource scope is covered by a scope of `wider` with the same context,
/// the same type or `*`, a superset of permissions and a subset of granular
/// parameters (fewer filters is wider). Other scopes must be in `wider`.
pub fn is_subset(narrower: &ScopeSet, wider: &ScopeSet) -> bool {
    narrower.iter().all(|scope| match scope {
        Scope::Resource(n) => wider.resource_scopes().any(|w| w.covers(n)),
        other => wider.contains(other),
    })
}

impl ResourceScope {
    /// True when everything `narrower` grants, `self` grants too.
    pub fn covers(&self, narrower: &ResourceScope) -> bool {
        self.context == narrower.context
            && (self.resource_type.is_none() || self.resource_type == narrower.resource_type)
            && self.permissions.contains(narrower.permissions)
            && self.query.iter().all(|p| narrower.query.contains(p))
    }
}

/// The largest scope both `r` and `l` grant, if they share anything.
fn meet(r: &ResourceScope, l: &ResourceScope) -> Option<ResourceScope> {
    if r.context != l.context {
        return None;
    }
    let resource_type = match (&r.resource_type, &l.resource_type) {
        (None, t) | (t, None) => t.clone(),
        (Some(a), Some(b)) if a == b => Some(a.clone()),
        _ => return None,
    };
    let permissions = r.permissions & l.permissions;
    if permissions.is_empty() {
        return None;
    }
    let mut query: Vec<(String, String)> = Vec::with_capacity(r.query.len() + l.query.len());
    for param in r.query.iter().chain(&l.query) {
        if !query.contains(param) {
            query.push(param.clone());
        }
    }
    Some(ResourceScope {
        context: r.context,
        resource_type,
        permissions,
        query,
        v1: false,
    })
}

/// Keeps, in order, each result not covered by another; of several
/// equivalent results only the first. Coverage is transitive, so whatever a
/// dropped scope granted is still granted by a kept one.
fn drop_covered(results: Vec<(Scope, String)>) -> ScopeSet {
    let resource = |i: usize| results.get(i).and_then(|(s, _)| s.as_resource());
    let keep: Vec<bool> = (0..results.len())
        .map(|i| {
            let Some(a) = resource(i) else { return true };
            !(0..results.len()).any(|j| {
                j != i && resource(j).is_some_and(|b| b.covers(a) && (j < i || !a.covers(b)))
            })
        })
        .collect();
    let mut set = ScopeSet::new();
    for ((scope, text), keep) in results.into_iter().zip(keep) {
        if keep {
            set.insert_with_text(scope, text);
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::Role;

    fn set(text: &str) -> ScopeSet {
        ScopeSet::parse(text).unwrap()
    }

    fn granted(requested: &str, limit: &str) -> String {
        intersect(&set(requested), &set(limit)).to_string()
    }

    #[test]
    fn non_resource_scopes_need_both_sides() {
        assert_eq!(
            granted(
                "openid fhirUser offline_access fhirledger.admin launch/foo",
                "openid offline_access launch/foo"
            ),
            "openid offline_access launch/foo"
        );
        assert_eq!(granted("fhirledger.admin", "openid"), "");
    }

    #[test]
    fn fully_granted_scopes_keep_their_text() {
        assert_eq!(
            granted("patient/*.read", "patient/*.cruds"),
            "patient/*.read"
        );
        assert_eq!(granted("patient/*.read", "patient/*.rs"), "patient/*.read");
        assert_eq!(
            granted("user/Observation.rs?category=a", "user/*.read"),
            "user/Observation.rs?category=a"
        );
    }

    #[test]
    fn wildcard_types_take_the_more_specific_side() {
        assert_eq!(
            granted("patient/*.rs", "patient/Observation.cruds"),
            "patient/Observation.rs"
        );
        assert_eq!(
            granted("patient/Observation.rs", "patient/*.r"),
            "patient/Observation.r"
        );
        assert_eq!(granted("patient/*.rs", "patient/*.rs"), "patient/*.rs");
        assert_eq!(granted("patient/Observation.rs", "patient/Patient.rs"), "");
    }

    #[test]
    fn v1_request_against_the_patient_role_ceiling() {
        let got = intersect(
            &set("openid fhirUser launch/patient patient/*.read"),
            &Role::Patient.ceiling(),
        );
        assert_eq!(
            got.to_string(),
            "openid fhirUser launch/patient patient/DocumentReference.rs patient/Binary.rs \
             patient/Consent.rs patient/Patient.rs patient/AuditEvent.rs patient/Organization.rs \
             patient/Practitioner.rs patient/PractitionerRole.rs"
        );
        let got = intersect(&set("patient/*.write"), &Role::Patient.ceiling());
        assert_eq!(
            got.to_string(),
            "patient/DocumentReference.c patient/Binary.c patient/Consent.cu"
        );
        let got = intersect(&set("patient/*.*"), &Role::Patient.ceiling());
        assert_eq!(
            got,
            Role::Patient
                .ceiling()
                .resource_scopes()
                .cloned()
                .map(Scope::Resource)
                .collect()
        );
    }

    #[test]
    fn v2_request_against_v1_limit() {
        assert_eq!(
            granted("user/Patient.cruds", "user/*.read"),
            "user/Patient.rs"
        );
        assert_eq!(
            granted("user/Patient.cruds", "user/*.write"),
            "user/Patient.cud"
        );
    }

    #[test]
    fn contexts_never_mix() {
        assert_eq!(granted("patient/*.rs", "user/*.cruds system/*.cruds"), "");
        assert_eq!(
            granted("system/*.cruds user/*.cruds", "patient/*.cruds"),
            ""
        );
        assert_eq!(
            granted("patient/*.rs user/Patient.r", "user/*.rs patient/Consent.r"),
            "patient/Consent.r user/Patient.r"
        );
    }

    #[test]
    fn granular_parameters_are_anded() {
        assert_eq!(
            granted(
                "patient/Observation.rs",
                "patient/Observation.rs?category=a"
            ),
            "patient/Observation.rs?category=a"
        );
        assert_eq!(
            granted(
                "patient/Observation.rs?status=final",
                "patient/*.rs?category=a"
            ),
            "patient/Observation.rs?status=final&category=a"
        );
        assert_eq!(
            granted(
                "patient/Observation.rs?category=a",
                "patient/Observation.rs?category=a"
            ),
            "patient/Observation.rs?category=a"
        );
        // Two limit scopes with different filters give two alternatives.
        assert_eq!(
            granted(
                "patient/Observation.rs",
                "patient/*.rs?category=a patient/*.r?category=b"
            ),
            "patient/Observation.rs?category=a patient/Observation.r?category=b"
        );
    }

    #[test]
    fn requests_cannot_escalate() {
        // Asking for more than the ceiling gives only what the ceiling allows.
        assert_eq!(
            granted("user/*.cruds", "user/Patient.rs"),
            "user/Patient.rs"
        );
        // A specific type outside the ceiling gets nothing, even with `*` perms.
        assert_eq!(
            granted("user/DocumentReference.*", "user/Patient.cruds"),
            ""
        );
        // Dropping a filter does not escape the limit's filter.
        assert_eq!(
            granted("patient/*.cruds", "patient/Observation.rs?category=a"),
            "patient/Observation.rs?category=a"
        );
        // Admin-like opaque scopes are not implied by resource scopes.
        assert_eq!(granted("fhirledger.admin", "system/*.cruds"), "");
    }

    #[test]
    fn covered_results_are_dropped() {
        assert_eq!(
            granted("patient/*.rs patient/Observation.r", "patient/*.cruds"),
            "patient/*.rs"
        );
        assert_eq!(
            granted("patient/Observation.r patient/*.rs", "patient/*.cruds"),
            "patient/*.rs"
        );
        assert_eq!(
            granted("patient/*.rs?category=a patient/*.rs", "patient/*.rs"),
            "patient/*.rs"
        );
        // Two limits giving the same result yield it once.
        assert_eq!(
            granted("user/*.read", "user/Patient.rs user/Patient.r"),
            "user/Patient.rs"
        );
    }

    #[test]
    fn three_way_intersection() {
        let requested = set("openid fhirUser offline_access user/*.cruds");
        let client = set("openid fhirUser online_access user/*.rs user/DocumentReference.c");
        let got = intersect(&intersect(&requested, &client), &Role::Doctor.ceiling());
        assert_eq!(
            got.to_string(),
            "openid fhirUser user/DocumentReference.rs user/Binary.rs user/Patient.rs \
             user/Consent.rs user/Practitioner.rs user/PractitionerRole.rs user/Organization.rs \
             user/DocumentReference.c"
        );
    }

    #[test]
    fn subset_allows_narrowing() {
        let wide = set("openid offline_access patient/*.read user/Patient.cruds");
        assert!(is_subset(&set("openid patient/Observation.rs"), &wide));
        assert!(is_subset(&set("patient/*.r"), &wide));
        assert!(is_subset(&set("patient/*.rs"), &wide));
        assert!(is_subset(&set("user/Patient.write"), &wide));
        assert!(is_subset(&set(""), &wide));
        assert!(is_subset(&wide, &wide));
    }

    #[test]
    fn subset_refuses_widening() {
        let granted = set("openid patient/Observation.rs?category=a user/Patient.r");
        assert!(!is_subset(&set("offline_access"), &granted));
        assert!(!is_subset(&set("patient/*.rs"), &granted));
        assert!(!is_subset(&set("patient/Observation.rs"), &granted));
        assert!(!is_subset(
            &set("patient/Observation.crs?category=a"),
            &granted
        ));
        assert!(!is_subset(&set("user/Patient.rs"), &granted));
        assert!(!is_subset(&set("system/Patient.r"), &granted));
        assert!(!is_subset(
            &set("patient/Patient.r"),
            &set("user/Patient.r")
        ));
    }

    #[test]
    fn adding_a_filter_narrows() {
        let granted = set("patient/Observation.rs?category=a");
        assert!(is_subset(
            &set("patient/Observation.rs?category=a&status=final"),
            &granted
        ));
        assert!(is_subset(
            &set("patient/Observation.rs?status=final"),
            &set("patient/*.rs")
        ));
        assert!(!is_subset(
            &set("patient/Observation.rs?status=final"),
            &granted
        ));
    }

    mod properties {
        use super::super::*;
        use crate::strategies::scope_set;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn intersection_is_a_subset_of_both(r in scope_set(), l in scope_set()) {
                let got = intersect(&r, &l);
                prop_assert!(is_subset(&got, &r), "{} ⊄ {}", got, r);
                prop_assert!(is_subset(&got, &l), "{} ⊄ {}", got, l);
                // What was granted parses back to itself.
                prop_assert_eq!(ScopeSet::parse(&got.to_string()).map(|s| s.to_string()), Ok(got.to_string()));
            }

            #[test]
            fn intersecting_with_a_wider_set_changes_nothing(r in scope_set(), l in scope_set()) {
                let narrow = intersect(&r, &l);
                prop_assert!(is_subset(&intersect(&narrow, &l), &narrow));
                prop_assert!(is_subset(&narrow, &intersect(&narrow, &l)));
                let same = intersect(&r, &r);
                prop_assert!(is_subset(&same, &r) && is_subset(&r, &same));
                prop_assert!(intersect(&r, &ScopeSet::new()).is_empty());
            }

            #[test]
            fn everything_requested_within_the_limit_is_granted(r in scope_set(), l in scope_set()) {
                if is_subset(&r, &l) {
                    let got = intersect(&r, &l);
                    prop_assert!(is_subset(&r, &got), "{} not all granted from {}: {}", r, l, got);
                }
            }
        }
    }
}
