//! Structural check of FHIR JSON against the official R4 JSON schema tables: unknown
//! elements, wrong JSON types, arrays where single values belong (and back), primitive
//! lexical forms, the schema's mandatory complex elements, narrative well-formedness.
//!
//! It runs before fhirbolt's strict parse because fhirbolt's errors do not say where in the
//! resource the problem is; every issue here carries a FHIRPath expression.

use serde_json::{Map, Number, Value};

use crate::defs::elements::{elements, ComplexType, Elements, JsonKind, Primitive};
use crate::outcome::{Issue, IssueType};
use crate::path;
use crate::resource_types::is_r4_resource_type;
use crate::xhtml;

/// Deepest nesting of JSON objects accepted. Real resources stay far below it; the limit keeps
/// the recursive parsers that run after this check (fhirbolt's) well within a thread's stack.
pub(crate) const MAX_DEPTH: usize = 48;

/// Stop collecting after this many issues; one hostile body should not produce megabytes.
const MAX_ISSUES: usize = 100;

/// Checks a whole resource (the top level of a request body).
pub(crate) fn check_resource(value: &Value) -> Vec<Issue> {
    let mut walker = Walker {
        defs: elements(),
        issues: Vec::new(),
    };
    walker.resource(value, "", 0);
    walker.issues
}

struct Walker {
    defs: &'static Elements,
    issues: Vec<Issue>,
}

impl Walker {
    fn report(&mut self, issue: Issue) {
        if self.issues.len() < MAX_ISSUES {
            self.issues.push(issue);
        }
    }

    /// A resource at `at` (empty for the top level, else e.g. `Bundle.entry[0].resource`).
    fn resource(&mut self, value: &Value, at: &str, depth: usize) {
        let Some(obj) = value.as_object() else {
            self.report(located(
                Issue::error(IssueType::Structure, "a resource must be a JSON object"),
                at,
            ));
            return;
        };
        let resource_type = match obj.get("resourceType") {
            None => {
                self.report(located(
                    Issue::error(IssueType::Required, "resourceType is missing"),
                    at,
                ));
                return;
            }
            Some(Value::String(t)) => t.as_str(),
            Some(_) => {
                self.report(
                    Issue::error(IssueType::Structure, "resourceType must be a string")
                        .at(path::child(at, "resourceType")),
                );
                return;
            }
        };
        let Some(def) = self
            .defs
            .complex(resource_type)
            .filter(|_| is_r4_resource_type(resource_type))
        else {
            self.report(
                Issue::error(
                    IssueType::NotSupported,
                    format!("'{resource_type}' is not an R4 resource type"),
                )
                .at(path::child(at, "resourceType")),
            );
            return;
        };
        let here = if at.is_empty() { resource_type } else { at };
        self.object(obj, def, resource_type, here, depth, true);
    }

    fn object(
        &mut self,
        obj: &Map<String, Value>,
        def: &'static ComplexType,
        type_name: &str,
        at: &str,
        depth: usize,
        is_resource: bool,
    ) {
        if depth > MAX_DEPTH {
            self.report(
                Issue::error(IssueType::TooCostly, "the resource is nested too deeply").at(at),
            );
            return;
        }
        for (key, value) in obj {
            if is_resource && key == "resourceType" {
                continue;
            }
            let here = path::child(at, key);
            match def.props.get(key) {
                None => self.report(
                    Issue::error(
                        IssueType::Structure,
                        format!("Unknown element '{key}' in {}", display_type(type_name)),
                    )
                    .at(here),
                ),
                Some(prop) if prop.array => self.array(value, &prop.ty, key, &here, depth),
                Some(prop) => {
                    if value.is_array() {
                        self.report(
                            Issue::error(
                                IssueType::Structure,
                                format!("'{key}' repeats but allows at most one value"),
                            )
                            .at(here),
                        );
                    } else {
                        self.value(value, &prop.ty, &here, depth);
                    }
                }
            }
        }
        self.primitive_arrays_align(obj, def, at);
        for required in &def.required {
            if !obj.contains_key(required) {
                self.report(
                    Issue::error(
                        IssueType::Required,
                        format!("'{required}' is mandatory in {}", display_type(type_name)),
                    )
                    .at(path::child(at, required)),
                );
            }
        }
    }

    fn array(&mut self, value: &Value, ty: &str, key: &str, at: &str, depth: usize) {
        let Some(items) = value.as_array() else {
            self.report(
                Issue::error(
                    IssueType::Structure,
                    format!("'{key}' repeats, so it must be a JSON array"),
                )
                .at(at),
            );
            return;
        };
        if items.is_empty() {
            self.report(Issue::error(IssueType::Structure, "arrays must not be empty").at(at));
        }
        // `null` keeps a primitive array aligned with its `_x` twin.
        let nulls_allowed = key.starts_with('_') || self.defs.primitive(ty).is_some();
        for (i, item) in items.iter().enumerate() {
            if item.is_null() && nulls_allowed {
                continue;
            }
            self.value(item, ty, &path::index(at, i), depth);
        }
    }

    fn value(&mut self, value: &Value, ty: &str, at: &str, depth: usize) {
        if ty == "Resource" {
            self.resource(value, at, depth + 1);
        } else if let Some(primitive) = self.defs.primitive(ty) {
            self.primitive(value, ty, primitive, at);
        } else if let Some(def) = self.defs.complex(ty) {
            match value.as_object() {
                Some(obj) => self.object(obj, def, ty, at, depth + 1, false),
                None => self.report(
                    Issue::error(
                        IssueType::Structure,
                        format!(
                            "expected a JSON object ({}), found {}",
                            display_type(ty),
                            json_kind(value)
                        ),
                    )
                    .at(at),
                ),
            }
        } else {
            // Not reachable with the generated tables; report rather than guess.
            self.report(
                Issue::error(IssueType::Structure, format!("no definition for type {ty}")).at(at),
            );
        }
    }

    fn primitive(&mut self, value: &Value, ty: &str, primitive: &Primitive, at: &str) {
        let issue = match (primitive.json, value) {
            (JsonKind::String, Value::String(s)) => {
                if ty == "xhtml" {
                    xhtml::inspect(s).err().map(|why| {
                        Issue::error(
                            IssueType::Value,
                            format!("narrative is not valid XHTML: {why}"),
                        )
                    })
                } else {
                    lexical(primitive, ty, s)
                }
            }
            (JsonKind::Number, Value::Number(n)) => number(primitive, ty, n),
            (JsonKind::Boolean, Value::Bool(_)) => None,
            (kind, other) => Some(Issue::error(
                IssueType::Structure,
                format!(
                    "expected a JSON {} ({ty}), found {}",
                    match kind {
                        JsonKind::String => "string",
                        JsonKind::Number => "number",
                        JsonKind::Boolean => "boolean",
                    },
                    json_kind(other)
                ),
            )),
        };
        if let Some(issue) = issue {
            self.report(issue.at(at));
        }
    }

    /// A repeating primitive and its `_x` extensions must line up item by item.
    fn primitive_arrays_align(&mut self, obj: &Map<String, Value>, def: &ComplexType, at: &str) {
        for (key, value) in obj {
            let Some(base) = key.strip_prefix('_') else {
                continue;
            };
            let (Some(Value::Array(exts)), Some(Value::Array(values))) =
                (Some(value), obj.get(base))
            else {
                continue;
            };
            if def.props.get(base).is_some_and(|p| p.array) && exts.len() != values.len() {
                self.report(
                    Issue::error(
                        IssueType::Structure,
                        format!("'{base}' and '{key}' must have the same number of items"),
                    )
                    .at(path::child(at, base)),
                );
            }
        }
    }
}

fn lexical(primitive: &Primitive, ty: &str, s: &str) -> Option<Issue> {
    // R4 (datatypes, string): no characters below U+0020 except tab, CR and LF, in any
    // string-based primitive. The schema's patterns (`\S`) would let them through.
    if let Some(c) = s
        .chars()
        .find(|c| (*c as u32) < 0x20 && !matches!(c, '\t' | '\r' | '\n'))
    {
        return Some(Issue::error(
            IssueType::Value,
            format!(
                "a {ty} must not contain the control character U+{:04X}",
                c as u32
            ),
        ));
    }
    let ok = primitive.pattern.as_ref().is_none_or(|re| re.is_match(s));
    (!ok).then(|| {
        let shown: String = s.chars().take(64).collect();
        Issue::error(IssueType::Value, format!("'{shown}' is not a valid {ty}"))
    })
}

fn number(primitive: &Primitive, ty: &str, n: &Number) -> Option<Issue> {
    let text = n.to_string();
    let fits = match ty {
        "integer" => text.parse::<i32>().is_ok(),
        "positiveInt" => text.parse::<i32>().is_ok_and(|v| v > 0),
        "unsignedInt" => text.parse::<i32>().is_ok_and(|v| v >= 0),
        _ => primitive
            .pattern
            .as_ref()
            .is_none_or(|re| re.is_match(&text)),
    };
    if !fits {
        return Some(Issue::error(
            IssueType::Value,
            format!("{text} is not a valid {ty}"),
        ));
    }
    // A decimal written as an integer outside the 64-bit range: the FHIR
    // model underneath (fhirbolt) reads integer literals as 64-bit numbers
    // and would store another number, or fail to render it in XML. Refused
    // rather than changed; with a decimal point it is kept as written.
    let integer_literal = !text.contains(['.', 'e', 'E']);
    if integer_literal && text.parse::<i64>().is_err() {
        let shown: String = text.chars().take(64).collect();
        return Some(Issue::error(
            IssueType::Value,
            format!(
                "{shown} is too large a whole number to keep exactly as a {ty}; \
                 write it with a decimal point ({shown}.0)"
            ),
        ));
    }
    None
}

fn located(issue: Issue, at: &str) -> Issue {
    if at.is_empty() {
        issue
    } else {
        issue.at(at)
    }
}

/// `DocumentReference_Content` is `DocumentReference.content` to a reader.
fn display_type(ty: &str) -> String {
    ty.replace('_', ".")
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expressions(v: &Value) -> Vec<String> {
        check_resource(v)
            .into_iter()
            .flat_map(|i| i.expression)
            .collect()
    }

    #[test]
    fn clean_resource_has_no_issues() {
        let v = json!({"resourceType": "Patient", "id": "a", "active": true,
            "name": [{"given": ["A", null], "_given": [null, {"extension": [{"url": "u", "valueString": "x"}]}]}],
            "multipleBirthInteger": 2, "birthDate": "2001-02"});
        assert_eq!(check_resource(&v), vec![]);
    }

    #[test]
    fn locates_unknown_elements() {
        let v = json!({"resourceType": "DocumentReference", "status": "current",
            "content": [{"attachment": {"foo": 1}}], "_status": {"bar": 1}});
        assert_eq!(
            expressions(&v),
            vec![
                "DocumentReference.content[0].attachment.foo",
                "DocumentReference.status.bar"
            ]
        );
    }

    #[test]
    fn locates_type_errors() {
        let v = json!({"resourceType": "Patient", "active": "yes", "name": "Bob",
            "birthDate": "yesterday", "multipleBirthInteger": 1.5, "gender": ["male"],
            "contact": [{"name": "x"}], "text": {"status": "generated", "div": "<p>x</p>"}});
        let issues = check_resource(&v);
        let got: Vec<&str> = issues.iter().map(|i| i.expression[0].as_str()).collect();
        assert_eq!(
            got,
            vec![
                "Patient.active",
                "Patient.name",
                "Patient.birthDate",
                "Patient.multipleBirthInteger",
                "Patient.gender",
                "Patient.contact[0].name",
                "Patient.text.div"
            ]
        );
    }

    #[test]
    fn checks_contained_and_resource_type() {
        let v = json!({"resourceType": "Consent", "contained": [{"resourceType": "Nope"}, {"id": "x"}]});
        let ex = expressions(&v);
        assert!(ex.contains(&"Consent.contained[0].resourceType".to_string()));
        assert!(ex.contains(&"Consent.contained[1]".to_string()));
        assert_eq!(check_resource(&json!([1]))[0].code, IssueType::Structure);
        assert_eq!(check_resource(&json!({}))[0].code, IssueType::Required);
        assert_eq!(
            check_resource(&json!({"resourceType": "Resource"}))[0].code,
            IssueType::NotSupported
        );
    }

    #[test]
    fn rejects_deep_nesting() {
        let mut ext = json!({"url": "u", "valueString": "x"});
        for _ in 0..60 {
            ext = json!({"url": "u", "extension": [ext]});
        }
        let v = json!({"resourceType": "Patient", "extension": [ext]});
        assert!(check_resource(&v)
            .iter()
            .any(|i| i.code == IssueType::TooCostly));
    }
}
