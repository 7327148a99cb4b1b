//! Walks a resource with two maps at once: the schema tables say what type every JSON
//! property has (so Attachments and data type codes are found anywhere), and, for the hosted
//! types, the snapshot says each element's cardinality, binding and reference targets.

use serde_json::{Map, Value};

use super::references::{self, Container};
use super::{attachment, bindings, rules};
use crate::defs::elements::{elements, ComplexType};
use crate::defs::profiles::{profile, ElementDef, Profile};
use crate::outcome::{Issue, IssueType};
use crate::path;
use crate::structure::MAX_DEPTH;
use crate::xhtml;

/// Profile checks of a resource (the structural ones are `structure`'s).
pub(super) fn check(resource: &Value) -> Vec<Issue> {
    let mut walker = Walker { issues: Vec::new() };
    if let Some(obj) = resource.as_object() {
        walker.resource(obj, "", Role::TopLevel, None, 0);
    }
    walker.issues
}

/// Where a resource sits, which decides the rules that apply to it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The resource being written: base profile plus this server's tightening.
    TopLevel,
    /// Inside another resource's `contained`.
    Contained,
    /// Inside a Bundle entry or Parameters: checked on its own terms.
    Nested,
}

/// Per-resource context of the walk.
struct Scope<'a> {
    profile: Option<&'static Profile>,
    role: Role,
    container: &'a Container,
}

struct Walker {
    issues: Vec<Issue>,
}

impl Walker {
    fn resource(
        &mut self,
        obj: &Map<String, Value>,
        at: &str,
        role: Role,
        outer: Option<&Container>,
        depth: usize,
    ) {
        let Some(resource_type) = obj.get("resourceType").and_then(Value::as_str) else {
            return;
        };
        let Some(def) = elements().complex(resource_type) else {
            return;
        };
        let here = if at.is_empty() { resource_type } else { at };
        let own;
        let container = match outer {
            Some(c) => c,
            None => {
                own = container_of(resource_type, obj);
                &own
            }
        };
        let scope = Scope {
            profile: profile(resource_type),
            role,
            container,
        };
        if role == Role::Contained {
            self.contained_rules(obj, here);
        } else {
            self.unreferenced_contained(obj, here);
        }
        let sd = scope.profile.map(|_| resource_type.to_string());
        self.node(obj, def, sd.as_deref(), here, &scope, depth);
    }

    /// One object: a resource, backbone element or data type value.
    fn node(
        &mut self,
        obj: &Map<String, Value>,
        def: &'static ComplexType,
        sd: Option<&str>,
        at: &str,
        scope: &Scope,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            return; // reported by the structural check
        }
        if let (Some(profile), Some(sd)) = (scope.profile, sd) {
            for element in profile.children(sd) {
                self.element(obj, element, at, scope);
            }
        }
        for (key, value) in obj {
            let Some(prop) = def.props.get(key) else {
                continue;
            };
            let here = path::child(at, key);
            let element = scope
                .profile
                .zip(sd)
                .and_then(|(p, sd)| p.child_for_key(sd, key));
            if element.is_none() && !prop.codes.is_empty() && !key.starts_with('_') {
                for (item, item_at) in items(value, &here) {
                    self.issues
                        .extend(bindings::check_enumeration(&prop.codes, item, &item_at));
                }
            }
            let child_sd = element
                .filter(|e| e.is_backbone())
                .map(|e| e.content_reference.as_deref().unwrap_or(&e.path));
            for (item, item_at) in items(value, &here) {
                let Some(child) = item.as_object() else {
                    continue;
                };
                if prop.ty == "Resource" {
                    let (role, outer) = if key == "contained" {
                        (Role::Contained, Some(scope.container))
                    } else {
                        (Role::Nested, None)
                    };
                    if key == "contained" && scope.role == Role::Contained {
                        self.issues.push(
                            Issue::error(
                                IssueType::Invariant,
                                "a contained resource must not contain resources (dom-2)",
                            )
                            .at(item_at.clone()),
                        );
                    }
                    self.resource(child, &item_at, role, outer, depth + 1);
                } else if let Some(child_def) = elements().complex(&prop.ty) {
                    self.data_type_rules(&prop.ty, child, &item_at);
                    self.node(child, child_def, child_sd, &item_at, scope, depth + 1);
                }
            }
        }
    }

    /// Cardinality, required binding and reference targets of one snapshot element.
    fn element(&mut self, obj: &Map<String, Value>, element: &ElementDef, at: &str, scope: &Scope) {
        let name = element.choice_base().unwrap_or(element.name());
        let here = path::child(at, name);
        let tightening = (scope.role == Role::TopLevel)
            .then(|| rules::tightening(&element.path))
            .flatten();
        let count = occurrences(obj, element);
        let min = tightening.and_then(|t| t.min).unwrap_or(element.min);
        if count < min as usize {
            self.issues.push(
                Issue::error(
                    IssueType::Required,
                    format!("{here} is required: at least {min} expected, found {count}"),
                )
                .at(here.clone()),
            );
        }
        if let Some(max) = element.max_count() {
            if count > max {
                self.issues.push(
                    Issue::error(
                        IssueType::Structure,
                        format!("{here} allows at most {max}, found {count}"),
                    )
                    .at(here.clone()),
                );
            }
        }
        for (key, value) in obj {
            if key.starts_with('_') || !element.matches_key(key) {
                continue;
            }
            let key_at = path::child(at, key);
            let binding = tightening
                .and_then(|t| t.binding)
                .or(element.binding.as_deref());
            if let Some(vs) = binding {
                for (item, item_at) in items(value, &key_at) {
                    self.issues
                        .extend(bindings::check_value_set(vs, item, &item_at));
                }
            }
            let Some(reference) = reference_type(element, key, name) else {
                continue;
            };
            let allowed: Option<Vec<&str>> = match tightening.and_then(|t| t.targets) {
                Some(targets) => Some(targets.to_vec()),
                None if reference.targets.iter().any(|t| t == "Resource")
                    || reference.targets.is_empty() =>
                {
                    None
                }
                None => Some(reference.targets.iter().map(String::as_str).collect()),
            };
            for (item, item_at) in items(value, &key_at) {
                self.issues.extend(references::check(
                    item,
                    allowed.as_deref(),
                    scope.container,
                    &item_at,
                ));
            }
        }
    }

    /// Rules of data types met anywhere in a resource.
    fn data_type_rules(&mut self, ty: &str, obj: &Map<String, Value>, at: &str) {
        match ty {
            "Attachment" => self.issues.extend(attachment::check(obj, at)),
            "Narrative" => {
                let Some(Value::String(div)) = obj.get("div") else {
                    return;
                };
                // Malformed XHTML is the structural check's; here only active content.
                if let Ok(found) = xhtml::inspect(div) {
                    if !found.is_empty() {
                        self.issues.push(
                            Issue::error(
                                IssueType::Invariant,
                                format!(
                                    "narrative contains content FHIR does not allow (txt-1): {}",
                                    found.join("; ")
                                ),
                            )
                            .at(path::child(at, "div")),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// dom-4: contained resources carry no version of their own.
    fn contained_rules(&mut self, obj: &Map<String, Value>, at: &str) {
        let Some(meta) = obj.get("meta").and_then(Value::as_object) else {
            return;
        };
        for key in ["versionId", "lastUpdated"] {
            if meta.contains_key(key) {
                self.issues.push(
                    Issue::error(
                        IssueType::Invariant,
                        format!("a contained resource must not have meta.{key} (dom-4)"),
                    )
                    .at(path::child(&path::child(at, "meta"), key)),
                );
            }
        }
    }

    /// dom-3, as advice: a contained resource nothing refers to is probably a mistake.
    fn unreferenced_contained(&mut self, obj: &Map<String, Value>, at: &str) {
        let Some(Value::Array(contained)) = obj.get("contained") else {
            return;
        };
        let mut local_refs = Vec::new();
        for value in obj.values() {
            collect_local_references(value, &mut local_refs);
        }
        for (i, c) in contained.iter().enumerate() {
            let Some(id) = c.get("id").and_then(Value::as_str) else {
                self.issues.push(
                    Issue::error(IssueType::Required, "a contained resource needs an id").at(
                        path::child(&path::index(&path::child(at, "contained"), i), "id"),
                    ),
                );
                continue;
            };
            if !local_refs.iter().any(|r| r == id) {
                self.issues.push(
                    Issue::warning(
                        IssueType::Invariant,
                        format!("contained resource '{id}' is not referenced (dom-3)"),
                    )
                    .at(path::index(&path::child(at, "contained"), i)),
                );
            }
        }
    }
}

/// The `#id` references anywhere in a resource.
fn collect_local_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(obj) => {
            for (key, v) in obj {
                match (key.as_str(), v) {
                    ("reference", Value::String(r)) => {
                        if let Some(id) = r.strip_prefix('#') {
                            out.push(id.to_string());
                        }
                    }
                    _ => collect_local_references(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_local_references(v, out)),
        _ => {}
    }
}

/// The (id, type) of each contained resource, for resolving `#id`.
fn container_of(resource_type: &str, obj: &Map<String, Value>) -> Container {
    let contained = obj
        .get("contained")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let id = c.get("id")?.as_str()?;
            let t = c.get("resourceType")?.as_str()?;
            Some((id.to_string(), t.to_string()))
        })
        .collect();
    Container {
        resource_type: resource_type.to_string(),
        contained,
    }
}

/// How many times an element occurs: array length, or 1; a primitive present only through
/// its `_x` extensions counts too; for a choice, each present variant counts.
fn occurrences(obj: &Map<String, Value>, element: &ElementDef) -> usize {
    let mut total = 0;
    for (key, value) in obj {
        let base = key.strip_prefix('_').unwrap_or(key);
        if !element.matches_key(base) {
            continue;
        }
        if key.starts_with('_') && obj.contains_key(base) {
            continue; // counted with its value
        }
        let n = match value {
            Value::Array(items) => {
                let twin = if key.starts_with('_') {
                    None
                } else {
                    obj.get(&format!("_{key}")).and_then(Value::as_array)
                };
                items.len().max(twin.map_or(0, Vec::len))
            }
            Value::Null => 0,
            _ => 1,
        };
        total += n;
    }
    total
}

/// The Reference type of an element when `key` is one of its Reference variants.
fn reference_type<'e>(
    element: &'e ElementDef,
    key: &str,
    base: &str,
) -> Option<&'e crate::defs::profiles::TypeRef> {
    let reference = element.types.iter().find(|t| t.code == "Reference")?;
    if element.choice_base().is_some() && key != format!("{base}Reference") {
        return None;
    }
    Some(reference)
}

/// Items of a possibly repeating value, each with its FHIRPath.
fn items<'v>(value: &'v Value, at: &str) -> Vec<(&'v Value, String)> {
    match value {
        Value::Array(list) => list
            .iter()
            .enumerate()
            .map(|(i, v)| (v, path::index(at, i)))
            .collect(),
        single => vec![(single, at.to_string())],
    }
}
