//! References between the entries of a Bundle: finding them (every
//! `Reference.reference`, and an `Attachment.url` naming an entry), rewriting
//! `fullUrl`s (`urn:uuid:`, `urn:oid:`, RESTful URLs) to `Type/id` while
//! planning, collecting conditional references (`Patient?identifier=s|v`),
//! and fixing a resource once the transaction knows where they all land.

use std::collections::HashMap;

use fhir_profiles::ids::is_valid_id;
use fhir_profiles::resource_types::is_r4_resource_type;
use fhir_profiles::search::extract;
use serde_json::Value;

use super::errors::entry_error;
use super::planned::Planned;
use crate::conditions::{parse_conditions, Conditions};
use crate::error::ServiceError;
use crate::prepare::Prepared;
use crate::types::check_type;

/// References of an entry's resource to other entries and to conditions.
#[derive(Default)]
pub(super) struct Links {
    /// (entry index, the `Type/tentative-id` written into the resource).
    pub targets: Vec<(usize, String)>,
    /// Conditional references (`Patient?identifier=s|v`), distinct.
    pub conditional: Vec<ConditionalRef>,
}

/// A conditional reference, parsed: resolved inside the transaction to the
/// one resource it matches.
pub(super) struct ConditionalRef {
    pub text: String,
    pub rt: String,
    pub criteria: Conditions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Reference,
    AttachmentUrl,
}

/// Elements of type Attachment whose `url` may name a Bundle entry (an MHD
/// DocumentReference points at its Binary this way).
const ATTACHMENT_KEYS: &[&str] = &[
    "attachment",
    "photo",
    "sourceAttachment",
    "valueAttachment",
    "contentAttachment",
    "presentedForm",
];

/// Calls `f` on every `Reference.reference` string and every `Attachment.url`
/// of a resource (contained resources included).
fn visit_links<F>(value: &mut Value, parent: &str, f: &mut F) -> Result<(), ServiceError>
where
    F: FnMut(&mut String, Field) -> Result<(), ServiceError>,
{
    match value {
        Value::Object(map) => {
            let attachment = ATTACHMENT_KEYS.contains(&parent);
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if key == "reference" => f(s, Field::Reference)?,
                    Value::String(s) if attachment && key == "url" => f(s, Field::AttachmentUrl)?,
                    Value::Object(_) | Value::Array(_) => visit_links(v, key, f)?,
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                visit_links(item, parent, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `Type?criteria`.
fn is_conditional(reference: &str) -> bool {
    match reference.split_once('?') {
        Some((ty, _)) => {
            !ty.is_empty() && !ty.contains('/') && !ty.contains(':') && !ty.starts_with('#')
        }
        None => false,
    }
}

/// `Type/id` (a relative reference that could name an entry).
fn is_relative_instance(s: &str) -> bool {
    match s.split_once('/') {
        Some((ty, id)) => is_r4_resource_type(ty) && is_valid_id(id),
        None => false,
    }
}

/// The conditional references of a batch entry's resource (a batch does not
/// rewrite references between entries: each entry stands alone).
pub(super) fn collect_conditional(resource: &mut Value) -> Result<Links, ServiceError> {
    let mut links = Links::default();
    visit_links(resource, "", &mut |s, field| {
        if field == Field::Reference && is_conditional(s) {
            add_conditional(&mut links, s)?;
        }
        Ok(())
    })?;
    Ok(links)
}

fn add_conditional(links: &mut Links, text: &str) -> Result<(), ServiceError> {
    if links.conditional.iter().any(|c| c.text == text) {
        return Ok(());
    }
    let (rt, query) = text.split_once('?').unwrap_or((text, ""));
    let fail = |why: String| {
        entry_error(
            format!("the conditional reference '{text}' cannot be resolved: {why}"),
            "",
        )
    };
    check_type(rt).map_err(|e| fail(first_diagnostics(&e)))?;
    let criteria = parse_conditions(rt, query).map_err(|e| fail(first_diagnostics(&e)))?;
    links.conditional.push(ConditionalRef {
        text: text.to_string(),
        rt: rt.to_string(),
        criteria,
    });
    Ok(())
}

fn first_diagnostics(e: &ServiceError) -> String {
    e.issues
        .first()
        .map(|i| i.diagnostics.clone())
        .unwrap_or_default()
}

/// The base that relative references of an entry resolve against: that of
/// its `fullUrl` when it is a RESTful URL, else this server's.
pub(super) fn entry_base(full_url: Option<&str>, fhir_base: &str) -> String {
    if let Some(url) = full_url {
        if url.starts_with("http://") || url.starts_with("https://") {
            let mut parts = url.rsplitn(3, '/');
            let (_id, ty, base) = (parts.next(), parts.next(), parts.next());
            if let (Some(ty), Some(base)) = (ty, base) {
                if is_r4_resource_type(ty) {
                    return base.to_string();
                }
            }
        }
    }
    fhir_base.to_string()
}

/// Rewrites a transaction entry's references to other entries to `Type/id`
/// (`typed_ids`, by entry index), and collects its conditional references.
/// A `urn:uuid:`/`urn:oid:` reference that names no entry is a 400.
pub(super) fn rewrite_links(
    resource: &mut Value,
    base: &str,
    by_full_url: &HashMap<String, usize>,
    typed_ids: &[Option<String>],
) -> Result<Links, ServiceError> {
    let mut links = Links::default();
    visit_links(resource, "", &mut |s, field| {
        let mut target = by_full_url.get(s.as_str()).copied();
        if target.is_none() && field == Field::Reference && is_relative_instance(s) {
            target = by_full_url.get(&format!("{base}/{s}")).copied();
        }
        if let Some(j) = target {
            if let Some(Some(typed)) = typed_ids.get(j) {
                links.targets.push((j, typed.clone()));
                s.clone_from(typed);
                return Ok(());
            }
        }
        if field != Field::Reference {
            return Ok(());
        }
        if is_conditional(s) {
            return add_conditional(&mut links, s);
        }
        if s.starts_with("urn:uuid:") || s.starts_with("urn:oid:") {
            return Err(entry_error(
                format!("the reference '{s}' matches the fullUrl of no entry of this transaction"),
                "",
            ));
        }
        Ok(())
    })?;
    Ok(links)
}

/// A copy of an entry's resource whose references follow what the
/// transaction resolved, when that differs from what planning wrote into it
/// (a conditional create or update that found its resource, a conditional
/// reference); `None` when nothing changes, which is the common case.
pub(super) fn fix_links(
    fhir_base: &str,
    p: &Planned,
    finals: &HashMap<usize, String>,
    resolved: &HashMap<&str, String>,
) -> Option<Prepared> {
    let (Some(prepared), Some(links)) = (p.prepared(), p.links()) else {
        return None;
    };
    let mut replace: HashMap<&str, String> = HashMap::new();
    for (j, typed) in &links.targets {
        let Some(final_id) = finals.get(j) else {
            continue;
        };
        let (ty, tentative) = typed.split_once('/').unwrap_or(("", typed));
        if tentative != final_id {
            replace.insert(typed, format!("{ty}/{final_id}"));
        }
    }
    for c in &links.conditional {
        if let Some(r) = resolved.get(c.text.as_str()) {
            replace.insert(&c.text, r.clone());
        }
    }
    if replace.is_empty() {
        return None;
    }
    let mut resource = prepared.resource.clone();
    let _ = visit_links(&mut resource, "", &mut |s, _| {
        if let Some(r) = replace.get(s.as_str()) {
            s.clone_from(r);
        }
        Ok(())
    });
    Some(Prepared {
        resource_type: prepared.resource_type.clone(),
        body_id: prepared.body_id.clone(),
        index: extract(&resource, fhir_base),
        resource,
        identifiers: prepared.identifiers.clone(),
        binary: prepared.binary.clone(),
    })
}
