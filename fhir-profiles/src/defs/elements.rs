//! Every R4 type's JSON properties (from fhir.schema.json): which type each has, whether it
//! repeats, and the primitive types' JSON kinds and patterns.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

const ELEMENTS_JSON: &str = include_str!("../../data/elements.json");

/// How a primitive is written in FHIR JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JsonKind {
    String,
    Number,
    Boolean,
}

/// A JSON property of a complex type.
#[derive(Debug, Deserialize)]
pub(crate) struct Prop {
    /// Type name: a primitive, a complex type, a backbone (`Patient_Contact`), or `Resource`.
    #[serde(rename = "t")]
    pub ty: String,
    /// Whether the property is an array.
    #[serde(rename = "a", default)]
    pub array: bool,
    /// Allowed codes, where the schema enumerates a required binding.
    #[serde(rename = "e", default)]
    pub codes: Vec<String>,
}

/// A complex type, backbone element or resource.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ComplexType {
    pub props: HashMap<String, Prop>,
    /// Complex children the schema marks mandatory.
    #[serde(default)]
    pub required: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawPrimitive {
    json: JsonKind,
    pattern: Option<String>,
}

/// A primitive type with its compiled lexical pattern.
#[derive(Debug)]
pub(crate) struct Primitive {
    pub json: JsonKind,
    pub pattern: Option<Regex>,
}

#[derive(Debug, Default, Deserialize)]
struct RawTables {
    primitives: HashMap<String, RawPrimitive>,
    types: HashMap<String, ComplexType>,
}

/// The loaded tables.
#[derive(Debug, Default)]
pub(crate) struct Elements {
    primitives: HashMap<String, Primitive>,
    types: HashMap<String, ComplexType>,
}

impl Elements {
    fn load() -> Self {
        let raw: RawTables = serde_json::from_str(ELEMENTS_JSON).unwrap_or_default();
        let primitives = raw
            .primitives
            .into_iter()
            .map(|(name, p)| {
                // Anchored as a whole: some schema patterns (`^true|false$`) anchor only one branch.
                let pattern = p
                    .pattern
                    .and_then(|re| Regex::new(&format!("^(?:{re})$")).ok());
                (
                    name,
                    Primitive {
                        json: p.json,
                        pattern,
                    },
                )
            })
            .collect();
        Elements {
            primitives,
            types: raw.types,
        }
    }

    pub(crate) fn complex(&self, name: &str) -> Option<&ComplexType> {
        self.types.get(name)
    }

    pub(crate) fn primitive(&self, name: &str) -> Option<&Primitive> {
        self.primitives.get(name)
    }

    /// A complex type with its name as stored in the tables (so `'static` for the loaded
    /// tables), for code that keeps type names.
    pub(crate) fn complex_entry(&self, name: &str) -> Option<(&str, &ComplexType)> {
        self.types.get_key_value(name).map(|(k, v)| (k.as_str(), v))
    }

    /// A primitive type with its name as stored in the tables.
    pub(crate) fn primitive_entry(&self, name: &str) -> Option<(&str, &Primitive)> {
        self.primitives
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
    }

    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let patterns = self
            .primitives
            .values()
            .filter(|p| p.pattern.is_some())
            .count();
        (self.primitives.len(), patterns, self.types.len())
    }
}

static ELEMENTS: LazyLock<Elements> = LazyLock::new(Elements::load);

/// The embedded schema tables.
pub(crate) fn elements() -> &'static Elements {
    &ELEMENTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_load_and_every_pattern_compiles() {
        let (primitives, patterns, types) = elements().counts();
        assert_eq!(primitives, 20);
        // every primitive but xhtml has a pattern (base64Binary's comes from Extension.valueBase64Binary)
        assert_eq!(patterns, 19);
        assert!(types > 600);
        let attachment = elements().complex("Attachment").map(|t| &t.props);
        assert_eq!(
            attachment
                .and_then(|p| p.get("size"))
                .map(|p| p.ty.as_str()),
            Some("unsignedInt")
        );
        let contained = elements()
            .complex("DocumentReference")
            .and_then(|t| t.props.get("contained"));
        assert!(contained.is_some_and(|p| p.array && p.ty == "Resource"));
    }

    #[test]
    fn patterns_are_anchored_as_a_whole() {
        let boolean = elements()
            .primitive("boolean")
            .and_then(|p| p.pattern.as_ref());
        assert!(boolean.is_some_and(|re| re.is_match("true")
            && !re.is_match("truex")
            && !re.is_match("xfalse")));
    }
}
