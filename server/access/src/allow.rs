//! What a granted scope set allows for one resource type and interaction.
//!
//! This is the scope half of the one access decision: it says which contexts
//! grant the interaction and with which granular filters. Confining each
//! context (the launch patient's compartment for `patient/`, the user's
//! organisation for `user/`) and applying Consent is the caller's job, done
//! in SQL for searches so that counts and pages never leak.

use super::scope::{Context, Permissions, ScopeSet};

/// A FHIR interaction, as far as SMART permissions tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    Create,
    /// read, vread and instance-level history.
    Read,
    Update,
    Delete,
    /// search, and type- or system-level history (which list resources the
    /// way a search does).
    Search,
}

impl Interaction {
    /// The permission letter a scope needs for this interaction.
    pub fn permission(self) -> Permissions {
        match self {
            Interaction::Create => Permissions::CREATE,
            Interaction::Read => Permissions::READ,
            Interaction::Update => Permissions::UPDATE,
            Interaction::Delete => Permissions::DELETE,
            Interaction::Search => Permissions::SEARCH,
        }
    }
}

/// Granular search parameters a resource must all match (AND).
pub type Filter = Vec<(String, String)>;

/// What one context grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextGrant {
    pub context: Context,
    /// `None`: no granular filter — every resource of the type within the
    /// context's confinement. `Some(alternatives)`: the resource must match
    /// at least one of the filters (OR of ANDs). Never `Some(vec![])`.
    pub alternatives: Option<Vec<Filter>>,
}

impl ContextGrant {
    /// True when no granular filter applies in this context.
    pub fn is_unrestricted(&self) -> bool {
        self.alternatives.is_none()
    }
}

/// The scopes' answer for one resource type and interaction.
///
/// A resource is allowed when, for at least one grant, it lies within that
/// grant's context (patient compartment, user's organisation, or anywhere for
/// `system/`) and matches the grant's alternatives. Grants are kept per
/// context because each context confines differently; merging them would
/// let a `user/` filter loosen a `patient/` confinement or the reverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowance {
    /// No granted scope permits the interaction on the type.
    Denied,
    Allowed(Allowed),
}

/// The contexts that permit an interaction. `grants` holds one entry per
/// matching context, in the order patient, user, system, and is never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub grants: Vec<ContextGrant>,
}

impl Allowed {
    pub fn contexts(&self) -> impl Iterator<Item = Context> + '_ {
        self.grants.iter().map(|g| g.context)
    }

    /// The grant of one context, if that context permits the interaction.
    pub fn grant(&self, context: Context) -> Option<&ContextGrant> {
        self.grants.iter().find(|g| g.context == context)
    }
}

impl Allowance {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Allowance::Allowed(_))
    }

    pub fn allowed(&self) -> Option<&Allowed> {
        match self {
            Allowance::Denied => None,
            Allowance::Allowed(a) => Some(a),
        }
    }
}

impl ScopeSet {
    /// What these (granted) scopes allow for `interaction` on resources of
    /// `resource_type`: every resource scope for that type or `*` whose
    /// permissions include the interaction's letter, grouped by context. In
    /// each context the scopes' filters are ORed; one scope without a filter
    /// makes the context unrestricted.
    pub fn allowance(&self, resource_type: &str, interaction: Interaction) -> Allowance {
        let needed = interaction.permission();
        let grants: Vec<ContextGrant> = Context::ALL
            .into_iter()
            .filter_map(|context| {
                let matching: Vec<&Filter> = self
                    .resource_scopes()
                    .filter(|s| {
                        s.context == context
                            && s.applies_to(resource_type)
                            && s.permissions.contains(needed)
                    })
                    .map(|s| &s.query)
                    .collect();
                if matching.is_empty() {
                    return None;
                }
                let alternatives = if matching.iter().any(|q| q.is_empty()) {
                    None
                } else {
                    Some(simplify(matching))
                };
                Some(ContextGrant {
                    context,
                    alternatives,
                })
            })
            .collect();
        if grants.is_empty() {
            Allowance::Denied
        } else {
            Allowance::Allowed(Allowed { grants })
        }
    }

    /// Shorthand for `allowance(..).is_allowed()`.
    pub fn allows(&self, resource_type: &str, interaction: Interaction) -> bool {
        self.allowance(resource_type, interaction).is_allowed()
    }
}

/// Deduplicates each filter's parameters and drops filters that are stricter
/// than another (A OR (A AND B) is A), keeping the first of equal ones, so
/// the caller builds the smallest SQL.
fn simplify(filters: Vec<&Filter>) -> Vec<Filter> {
    let filters: Vec<Filter> = filters
        .into_iter()
        .map(|f| {
            let mut unique: Filter = Vec::with_capacity(f.len());
            for p in f {
                if !unique.contains(p) {
                    unique.push(p.clone());
                }
            }
            unique
        })
        .collect();
    let looser = |a: &Filter, b: &Filter| a.iter().all(|p| b.contains(p));
    filters
        .iter()
        .enumerate()
        .filter(|(i, f)| {
            !filters
                .iter()
                .enumerate()
                .any(|(j, g)| j != *i && looser(g, f) && (j < *i || !looser(f, g)))
        })
        .map(|(_, f)| f.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> ScopeSet {
        ScopeSet::parse(text).unwrap()
    }

    fn filter(pairs: &[(&str, &str)]) -> Filter {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn unrestricted(context: Context) -> ContextGrant {
        ContextGrant {
            context,
            alternatives: None,
        }
    }

    fn allowed(grants: Vec<ContextGrant>) -> Allowance {
        Allowance::Allowed(Allowed { grants })
    }

    #[test]
    fn read_alone_cannot_search_and_search_alone_cannot_read() {
        let r = set("patient/Observation.r");
        assert!(r.allows("Observation", Interaction::Read));
        assert!(!r.allows("Observation", Interaction::Search));
        let s = set("patient/Observation.s");
        assert!(s.allows("Observation", Interaction::Search));
        assert!(!s.allows("Observation", Interaction::Read));
    }

    #[test]
    fn v1_suffixes() {
        let read = set("patient/*.read");
        for (i, ok) in [
            (Interaction::Read, true),
            (Interaction::Search, true),
            (Interaction::Create, false),
            (Interaction::Update, false),
            (Interaction::Delete, false),
        ] {
            assert_eq!(read.allows("Patient", i), ok, "{i:?}");
        }
        let write = set("patient/*.write");
        for (i, ok) in [
            (Interaction::Read, false),
            (Interaction::Search, false),
            (Interaction::Create, true),
            (Interaction::Update, true),
            (Interaction::Delete, true),
        ] {
            assert_eq!(write.allows("Patient", i), ok, "{i:?}");
        }
        let all = set("user/Patient.*");
        for i in [
            Interaction::Read,
            Interaction::Search,
            Interaction::Create,
            Interaction::Update,
            Interaction::Delete,
        ] {
            assert!(all.allows("Patient", i), "{i:?}");
            assert!(!all.allows("Observation", i), "{i:?}");
        }
    }

    #[test]
    fn denied_without_a_matching_scope() {
        let scopes = set("openid fhirUser fhirledger.admin patient/Observation.rs");
        assert_eq!(
            scopes.allowance("Patient", Interaction::Read),
            Allowance::Denied
        );
        assert_eq!(
            ScopeSet::new().allowance("Patient", Interaction::Read),
            Allowance::Denied
        );
        assert_eq!(
            scopes.allowance("Observation", Interaction::Update),
            Allowance::Denied
        );
    }

    #[test]
    fn unrestricted_scope() {
        assert_eq!(
            set("patient/*.rs").allowance("Observation", Interaction::Search),
            allowed(vec![unrestricted(Context::Patient)])
        );
    }

    #[test]
    fn granular_filters_are_ored() {
        let scopes = set(
            "patient/Observation.rs?category=a patient/Observation.rs?category=b&status=final patient/*.c",
        );
        assert_eq!(
            scopes.allowance("Observation", Interaction::Search),
            allowed(vec![ContextGrant {
                context: Context::Patient,
                alternatives: Some(vec![
                    filter(&[("category", "a")]),
                    filter(&[("category", "b"), ("status", "final")]),
                ]),
            }])
        );
    }

    #[test]
    fn one_unrestricted_scope_makes_the_context_unrestricted() {
        let scopes = set("patient/Observation.rs?category=a patient/*.read");
        assert_eq!(
            scopes.allowance("Observation", Interaction::Read),
            allowed(vec![unrestricted(Context::Patient)])
        );
        // ...but only for the interactions that scope grants.
        let scopes = set("patient/Observation.rs?category=a patient/*.r");
        assert_eq!(
            scopes.allowance("Observation", Interaction::Search),
            allowed(vec![ContextGrant {
                context: Context::Patient,
                alternatives: Some(vec![filter(&[("category", "a")])]),
            }])
        );
    }

    #[test]
    fn redundant_filters_are_simplified() {
        let scopes = set(
            "user/Observation.rs?category=a&status=final user/Observation.rs?category=a user/*.r?category=a&category=a",
        );
        assert_eq!(
            scopes.allowance("Observation", Interaction::Read),
            allowed(vec![ContextGrant {
                context: Context::User,
                alternatives: Some(vec![filter(&[("category", "a")])]),
            }])
        );
    }

    #[test]
    fn contexts_are_reported_separately() {
        let scopes = set("system/Patient.r?active=true patient/*.rs user/Patient.read");
        let allowance = scopes.allowance("Patient", Interaction::Read);
        assert_eq!(
            allowance,
            allowed(vec![
                unrestricted(Context::Patient),
                unrestricted(Context::User),
                ContextGrant {
                    context: Context::System,
                    alternatives: Some(vec![filter(&[("active", "true")])]),
                },
            ])
        );
        let a = allowance.allowed().unwrap();
        assert_eq!(
            a.contexts().collect::<Vec<_>>(),
            vec![Context::Patient, Context::User, Context::System]
        );
        assert!(a.grant(Context::User).unwrap().is_unrestricted());
        assert!(!a.grant(Context::System).unwrap().is_unrestricted());
        assert_eq!(
            scopes.allowance("Patient", Interaction::Search),
            allowed(vec![
                unrestricted(Context::Patient),
                unrestricted(Context::User)
            ])
        );
    }
}
