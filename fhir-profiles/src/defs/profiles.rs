//! Trimmed StructureDefinition snapshots of the hosted types: cardinality, isSummary, types
//! with their allowed reference targets, required bindings.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

const PROFILES_JSON: &str = include_str!("../../data/profiles.json");

/// One element type, with the resource types a Reference may point to.
#[derive(Debug, Deserialize)]
pub(crate) struct TypeRef {
    pub code: String,
    #[serde(default)]
    pub targets: Vec<String>,
}

/// One ElementDefinition of a snapshot.
#[derive(Debug, Deserialize)]
pub(crate) struct ElementDef {
    pub path: String,
    pub min: u32,
    /// `*` or a number.
    pub max: String,
    #[serde(default)]
    pub summary: bool,
    #[serde(default)]
    pub types: Vec<TypeRef>,
    /// The value set of a `required` binding.
    pub binding: Option<String>,
    /// Path of the element whose children this one reuses (`Consent.provision.provision`).
    #[serde(rename = "contentReference")]
    pub content_reference: Option<String>,
}

impl ElementDef {
    /// The last path segment, e.g. `deceased[x]`.
    pub(crate) fn name(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }

    /// For a choice element `value[x]`, its base name `value`.
    pub(crate) fn choice_base(&self) -> Option<&str> {
        self.name().strip_suffix("[x]")
    }

    /// Maximum occurrences, `None` for unbounded.
    pub(crate) fn max_count(&self) -> Option<usize> {
        self.max.parse().ok()
    }

    /// The JSON property names this element may appear under (without `_`).
    pub(crate) fn matches_key(&self, key: &str) -> bool {
        match self.choice_base() {
            None => self.name() == key,
            Some(base) => key
                .strip_prefix(base)
                .is_some_and(|suffix| self.types.iter().any(|t| capitalised(&t.code) == suffix)),
        }
    }

    /// True for a backbone element, whose children are defined in this snapshot.
    pub(crate) fn is_backbone(&self) -> bool {
        self.content_reference.is_some()
            || self
                .types
                .iter()
                .any(|t| t.code == "BackboneElement" || t.code == "Element")
    }
}

/// The snapshot of one resource type, indexed by parent path.
#[derive(Debug, Default)]
pub(crate) struct Profile {
    elements: Vec<ElementDef>,
    children: HashMap<String, Vec<usize>>,
}

impl Profile {
    fn new(elements: Vec<ElementDef>) -> Self {
        let mut children: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in elements.iter().enumerate() {
            if let Some((parent, _)) = e.path.rsplit_once('.') {
                children.entry(parent.to_string()).or_default().push(i);
            }
        }
        Profile { elements, children }
    }

    /// The direct children of the element at `parent` (a path such as `Consent.provision`).
    pub(crate) fn children<'a>(&'a self, parent: &str) -> impl Iterator<Item = &'a ElementDef> {
        self.children
            .get(parent)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.elements.get(i))
    }

    /// The child of `parent` a JSON property (`status`, `_status`, `deceasedBoolean`) belongs to.
    pub(crate) fn child_for_key(&self, parent: &str, key: &str) -> Option<&ElementDef> {
        let key = key.strip_prefix('_').unwrap_or(key);
        self.children(parent).find(|e| e.matches_key(key))
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

static PROFILES: LazyLock<HashMap<String, Profile>> = LazyLock::new(|| {
    let raw: HashMap<String, Vec<ElementDef>> =
        serde_json::from_str(PROFILES_JSON).unwrap_or_default();
    raw.into_iter()
        .map(|(t, els)| (t, Profile::new(els)))
        .collect()
});

/// The snapshot of a hosted type.
pub(crate) fn profile(resource_type: &str) -> Option<&'static Profile> {
    PROFILES.get(resource_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource_types::HOSTED;

    #[test]
    fn every_hosted_type_has_a_snapshot() {
        for t in HOSTED {
            let p = profile(t);
            assert!(p.is_some_and(|p| p.children(t).count() > 3), "{t}");
        }
    }

    #[test]
    fn finds_children_by_json_key() {
        let Some(patient) = profile("Patient") else {
            panic!("no Patient profile");
        };
        let deceased = patient.child_for_key("Patient", "deceasedDateTime");
        assert_eq!(
            deceased.map(|e| e.path.as_str()),
            Some("Patient.deceased[x]")
        );
        assert!(patient.child_for_key("Patient", "deceasedString").is_none());
        let gender = patient.child_for_key("Patient", "_gender");
        assert!(gender.is_some_and(|e| e.binding.is_some()));
        let Some(consent) = profile("Consent") else {
            panic!("no Consent profile");
        };
        let nested = consent.child_for_key("Consent.provision", "provision");
        assert_eq!(
            nested.and_then(|e| e.content_reference.as_deref()),
            Some("Consent.provision")
        );
    }
}
