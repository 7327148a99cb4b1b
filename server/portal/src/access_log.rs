//! Access logs: AuditEvents read as people read a log — when, who, through
//! which app, what, why (the rule that decided: their Consent, their own
//! record, emergency access and its reason), how it ended (refused attempts
//! stand out), and whether the entry is anchored on chain, linking to its
//! proof. `/portal/access-log` pages a patient's whole log (or a compliance
//! officer's trail); `/portal/access-log/{id}/proof` proves one entry.

use std::collections::HashSet;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use fhirledger_auth::first_party;
use fhirledger_merkle::{verify_inclusion, Hash, Keccak256Hasher};
use fhirledger_service::proofs::{
    anchored_events, inclusion_proof, Anchor, InclusionProof, Proven,
};
use fhirledger_service::ServiceError;
use maud::{html, Markup};
use serde_json::Value;

use crate::context::PortalContext;
use crate::fhir::{self, concept, problem_page, when, Found};
use crate::layout::{live_region, page, respond};
use crate::session::Visit;
use fhirledger_access::roles::Role;

/// Entries on one page of a log.
const PAGE: usize = 25;

/// Which of these events are anchored (one statement for the page).
pub async fn anchored(visit: &Visit, found: &Found) -> Result<HashSet<String>, ServiceError> {
    let ids: Vec<String> = found
        .resources
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let guard = visit.guard.clone();
    visit
        .server
        .db
        .run_read(move |store| anchored_events(store, &guard, &ids))
        .await
}

/// `GET /portal/access-log[?cursor=…]`: the log, newest first, a page at a
/// time.
pub async fn log_page(visit: Visit, query: web::Query<Vec<(String, String)>>) -> HttpResponse {
    let cursor = query
        .iter()
        .find(|(k, _)| k == "cursor")
        .map(|(_, v)| v.clone());
    let mut params = vec![
        ("_sort".to_string(), "-date".to_string()),
        ("_count".to_string(), PAGE.to_string()),
    ];
    if let Some(own) = &visit.caller.patient {
        params.push(("patient".into(), own.clone()));
    }
    if let Some(cursor) = &cursor {
        params.push(("_cursor".into(), cursor.clone()));
    }
    let result = async {
        let found = fhir::search(&visit, "AuditEvent", params).await?;
        let anchored = anchored(&visit, &found).await?;
        Ok::<_, ServiceError>((found, anchored))
    }
    .await;
    let (found, anchored) = match result {
        Ok(found) => found,
        Err(e) => return problem_page(&e),
    };
    let heading = if visit.caller.patient.is_some() {
        "Your access log"
    } else {
        "Audit trail"
    };
    let body = html! {
        p { a href="/portal" { "← Your dashboard" } }
        h1 { (heading) }
        p class="muted" {
            "Every access to the record is recorded here, refused attempts included, and sealed in a log anchored on a blockchain: "
            "an entry marked \u{201c}verified on chain\u{201d} can no longer be changed or removed unnoticed."
        }
        @if cursor.is_none() && visit.role() == Some(Role::Patient) {
            (live_region(LIVE_TOPIC, &table(&visit, &found, heading, &anchored)))
        } @else {
            (table(&visit, &found, heading, &anchored))
        }
        nav aria-label="Pages" {
            @if cursor.is_some() { a href="/portal/access-log" { "Newest" } " " }
            @if let Some(next) = &found.next {
                a class="button secondary" href={ "/portal/access-log?cursor=" (urlencode(next)) } { "Older entries" }
            }
        }
    };
    respond(StatusCode::OK, page(heading, Some(&visit.person()), body))
}

/// The live updates a patient's log listens to ([`crate::live`]).
pub const LIVE_TOPIC: &str = "access-log";

fn urlencode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// AuditEvents as an access log table.
pub fn table(visit: &Visit, found: &Found, caption: &str, anchored: &HashSet<String>) -> Markup {
    let issuer = &visit.server.settings.issuer;
    let caller = &visit.caller;
    let own = caller
        .patient
        .as_ref()
        .map(|p| format!("Patient/{p}"))
        .or_else(|| {
            caller
                .practitioner
                .as_ref()
                .map(|p| format!("Practitioner/{p}"))
        });
    html! {
        @if found.resources.is_empty() {
            p class="empty" { "No access recorded yet." }
        } @else {
            table class="log" {
                caption class="sr-only" { (caption) }
                thead { tr {
                    th scope="col" { "When" }
                    th scope="col" { "Who" }
                    th scope="col" { "App" }
                    th scope="col" { "What" }
                    th scope="col" { "Why" }
                    th scope="col" { "Outcome" }
                    th scope="col" { "On chain" }
                } }
                tbody {
                    @for e in &found.resources {
                        @let refused = e["outcome"].as_str().is_some_and(|o| o != "0");
                        @let emergency = is_emergency(e);
                        @let id = e["id"].as_str().unwrap_or_default();
                        @let class = match (refused, emergency) {
                            (true, _) => Some("refused"),
                            (false, true) => Some("emergency"),
                            _ => None,
                        };
                        tr class=[class] data-key=(id) {
                            td { time datetime=(e["recorded"].as_str().unwrap_or("")) { (when(&e["recorded"])) } }
                            td { (who(e, own.as_deref())) }
                            td { (app(e, issuer)) }
                            td { (action(e)) }
                            td { (why(e)) }
                            td { @if refused { strong class="error" { "Refused" } } @else { "Allowed" } }
                            td {
                                @if anchored.contains(id) {
                                    a href={ "/portal/access-log/" (id) "/proof" } { "Verified on chain" }
                                } @else {
                                    span class="muted" { "Pending" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Who acted: the requesting agent's name or reference.
/// Who acted: the requestor's name; "You" for the visitor's own
/// identity when the event does not name it (their own sign-ins and
/// tokens are recorded by account, without a display name).
fn who(event: &Value, own: Option<&str>) -> String {
    let Some(agent) = event["agent"].as_array().and_then(|agents| {
        agents
            .iter()
            .find(|a| a["requestor"].as_bool() == Some(true))
    }) else {
        return "Someone not signed in".to_string();
    };
    let reference = agent["who"]["reference"].as_str();
    agent["who"]["display"]
        .as_str()
        .or_else(|| agent["name"].as_str())
        .map(str::to_string)
        .or_else(|| (reference.is_some() && reference == own).then(|| "You".to_string()))
        .or_else(|| reference.map(str::to_string))
        .unwrap_or_default()
}

/// Through which application: the BALP agent of the client (the Source of
/// a query or write, the Destination of a read, the Application of a
/// security event), which names it by the client id our authorization
/// server (`issuer`) gave it.
fn app(event: &Value, issuer: &str) -> String {
    let client = event["agent"].as_array().and_then(|agents| {
        agents.iter().find_map(|a| {
            let id = &a["who"]["identifier"];
            (id["system"] == issuer)
                .then(|| id["value"].as_str())
                .flatten()
        })
    });
    match client {
        Some(first_party::PORTAL_CLIENT_ID) => first_party::PORTAL_NAME.to_string(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// What was done, in words: the interaction and the types it touched.
fn action(event: &Value) -> String {
    let code = event["subtype"][0]["code"].as_str().unwrap_or("");
    let verb = match code {
        "read" | "vread" => "Read",
        "search-type" | "search-system" | "search" => "Searched",
        "history-instance" | "history-type" | "history-system" => "Read the history of",
        "create" => "Created",
        "update" | "patch" => "Updated",
        "delete" => "Deleted",
        "batch" | "transaction" => "Sent a batch of changes to",
        "operation" => "Ran an operation on",
        _ => return security_action(event),
    };
    let mut types: Vec<&str> = event["entity"]
        .as_array()
        .map(|entities| {
            entities
                .iter()
                .filter(|e| e["role"]["code"] == "4")
                .filter_map(|e| e["what"]["reference"].as_str())
                .filter_map(|r| r.split('/').next())
                .collect()
        })
        .unwrap_or_default();
    types.sort_unstable();
    types.dedup();
    if types.is_empty() && verb == "Searched" {
        if let Some(searched) = searched_type(event) {
            return format!("Searched {searched} (none found)");
        }
    }
    if types.is_empty() {
        verb.trim_end_matches(" of")
            .trim_end_matches(" to")
            .trim_end_matches(" on")
            .to_string()
    } else {
        format!("{verb} {}", types.join(", "))
    }
}

/// The type a search was of, from its query entity: the FHIR search a
/// portal page performed (`description`), else the request as sent
/// (`query`, base64): `GET /fhir/Consent?patient=…` → `Consent`.
fn searched_type(event: &Value) -> Option<String> {
    let query = event["entity"]
        .as_array()?
        .iter()
        .find(|e| e["type"]["code"] == "2")?;
    let request = match query["description"].as_str() {
        Some(described) => described.to_string(),
        None => {
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(query["query"].as_str()?)
                .ok()?;
            String::from_utf8(raw).ok()?
        }
    };
    let path = request.split_whitespace().nth(1)?.split('?').next()?;
    let last = path.rsplit('/').next()?;
    (last.chars().next()?.is_ascii_uppercase() && last.chars().all(|c| c.is_ascii_alphabetic()))
        .then(|| last.to_string())
}

/// Security events (sign-in, tokens, revocation) in words.
fn security_action(event: &Value) -> String {
    let subtype = &event["subtype"][0];
    match subtype["code"].as_str().unwrap_or("") {
        "110122" => "Signed in".to_string(),
        "ITI-71" => "Got access".to_string(),
        "token-revoked" => "Signed out or revoked access".to_string(),
        "refresh-token-reuse" => "Reused a sign-in (blocked)".to_string(),
        _ => {
            let words = concept(subtype);
            if words.is_empty() {
                concept(&event["type"])
            } else {
                words
            }
        }
    }
}

/// Emergency access (break the glass): `BTG` among the purposes.
fn is_emergency(event: &Value) -> bool {
    event["purposeOfEvent"].as_array().is_some_and(|p| {
        p.iter().any(|c| {
            c["coding"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["code"] == "BTG"))
        })
    })
}

/// Why it was allowed: the rule that decided (the requestor's `policy`),
/// and an emergency's stated reason.
fn why(event: &Value) -> String {
    let requestor = event["agent"].as_array().and_then(|agents| {
        agents
            .iter()
            .find(|a| a["requestor"].as_bool() == Some(true))
    });
    let mut reasons: Vec<String> = requestor
        .and_then(|a| a["policy"].as_array())
        .map(|policies| {
            policies
                .iter()
                .filter_map(Value::as_str)
                .map(rule_in_words)
                .collect()
        })
        .unwrap_or_default();
    if is_emergency(event) {
        let text = event["purposeOfEvent"]
            .as_array()
            .and_then(|p| p.iter().find_map(|c| c["text"].as_str()));
        reasons.retain(|r| r != "Emergency access");
        reasons.insert(
            0,
            match text {
                Some(t) => format!("Emergency access: {t}"),
                None => "Emergency access".to_string(),
            },
        );
    }
    reasons.dedup();
    reasons.join("; ")
}

/// A deciding rule in words: a Consent, or one of the server's rules.
fn rule_in_words(policy: &str) -> String {
    if policy.contains("/Consent/") {
        return "The patient's consent".to_string();
    }
    match policy.rsplit(':').next().unwrap_or(policy) {
        "own-record" => "Their own record".to_string(),
        "author" | "authorship" => "They wrote it".to_string(),
        "emergency-access" => "Emergency access".to_string(),
        other => {
            let words = other.replace(['-', '.'], " ");
            let mut chars = words.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        }
    }
}

/// `GET /portal/access-log/{id}/proof`: the entry's inclusion proof (the
/// `$proof` operation, audited as such), checked here with the Merkle
/// log's own verification against the root the server anchored.
pub async fn proof_page(visit: Visit, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    let guard = visit.guard.clone();
    let event_id = id.clone();
    let proof = visit
        .server
        .db
        .run_read(move |store| inclusion_proof(store, &guard, Proven::AuditEvent { id: &event_id }))
        .await;
    let proof = match proof {
        Ok(proof) => proof,
        Err(e) if e.status.code() == 409 => {
            return respond(
                StatusCode::CONFLICT,
                page(
                    "Not anchored yet",
                    Some(&visit.person()),
                    html! {
                        h1 { "Not anchored yet" }
                        p { "This entry is recorded, but the checkpoint that seals it is not on chain yet. This takes a few seconds; try again shortly." }
                        p { a href="/portal/access-log" { "Back to the log" } }
                    },
                ),
            )
        }
        Err(e) => return problem_page(&e),
    };
    let checked = check(&proof);
    let chain = on_chain(&visit, &proof.anchor).await;
    let a = &proof.anchor;
    let body = html! {
        p { a href="/portal/access-log" { "← The log" } }
        h1 { "Proof of this entry" }
        @match (&checked, &chain) {
            (Err(why), _) => p class="error" role="alert" { "The proof does not check out: " (why) },
            (Ok(()), OnChain::Differs(held)) => p class="error" role="alert" {
                "The proof matches the server's record, but the chain holds another root for this checkpoint ("
                code class="hash" { (held) } "). The record may have been altered: report this to your compliance team."
            },
            (Ok(()), OnChain::Missing) => p class="error" role="alert" {
                "The proof matches the server's record, but the chain holds no checkpoint of "
                (a.tree_size) " entries. Report this to your compliance team."
            },
            (Ok(()), OnChain::Same) => p class="notice" role="status" {
                "Verified on chain: this entry is leaf " (proof.leaf_index) " of the log's first "
                (a.tree_size) " entries, and the root they hash to is the one the chain holds for them, read from the chain just now. "
                "Changing or removing the entry would change that root."
            },
            (Ok(()), _) => p class="notice" role="status" {
                "The proof checks out against the checkpoint the server recorded: this entry is leaf " (proof.leaf_index)
                " of the log's first " (a.tree_size) " entries. " (chain.caveat())
            },
        }
        dl class="facts" {
            dt { "Entry" } dd { code { (id) } }
            dt { "Leaf" } dd { (proof.leaf_index) }
            dt { "Leaf hash" } dd { code class="hash" { (proof.leaf_hash) } }
            dt { "Checkpoint" } dd { (a.tree_size) " entries" }
            dt { "Root" } dd { code class="hash" { (a.root) } }
            dt { "On chain" } dd { (chain.summary()) }
            dt { "Chain" } dd { (a.chain_id) }
            dt { "Contract" } dd { code class="hash" { (a.contract) } }
            dt { "Transaction" } dd { code class="hash" { (a.tx_hash) } }
            dt { "Block" } dd { (a.block_number) }
            dt { "Path" } dd { (proof.path.len()) " hashes" }
        }
        p class="muted" {
            "Anyone can check this independently: the contract's rootAt(" (a.tree_size) ") on the chain must equal the root above, "
            "and the leaf hash with the path must recompute it (RFC 9162, Keccak-256)."
        }
    };
    respond(
        StatusCode::OK,
        page("Proof of this entry", Some(&visit.person()), body),
    )
}

/// What the chain itself holds for a proof's checkpoint, read when the page
/// is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OnChain {
    /// `rootAt(size)` is the proof's root.
    Same,
    /// The contract holds another root (hex) for that size.
    Differs(String),
    /// The contract holds no root for that size.
    Missing,
    /// The proof names a chain or contract this server does not read.
    Elsewhere,
    /// The node did not answer.
    Unreachable,
    /// This server is not connected to a chain.
    NotConnected,
}

impl OnChain {
    fn summary(&self) -> &'static str {
        match self {
            OnChain::Same => "the same root, read from the contract just now",
            OnChain::Differs(_) => "a different root",
            OnChain::Missing => "no checkpoint of this size",
            OnChain::Elsewhere => "not read: another chain or contract than this server's",
            OnChain::Unreachable => "not read: the chain did not answer",
            OnChain::NotConnected => "not read: this server is not connected to the chain",
        }
    }

    fn caveat(&self) -> &'static str {
        match self {
            OnChain::Unreachable => "The chain could not be reached just now to compare its root; try again shortly, or check it yourself as below.",
            OnChain::Elsewhere => "It was anchored on another chain or contract than this server reads; check it there as below.",
            _ => "This server does not read the chain itself; check the root there as below.",
        }
    }
}

/// Reads `rootAt(size)` of the proof's checkpoint from the contract.
async fn on_chain(visit: &Visit, anchor: &Anchor) -> OnChain {
    let Some(chain) = visit
        .req
        .app_data::<web::Data<PortalContext>>()
        .and_then(|c| c.chain.clone())
    else {
        return OnChain::NotConnected;
    };
    let ours = fhirledger_merkle::hex_0x(&chain.contract());
    if chain.chain_id() != anchor.chain_id || !ours.eq_ignore_ascii_case(&anchor.contract) {
        return OnChain::Elsewhere;
    }
    let Ok(root) = hash(&anchor.root) else {
        return OnChain::Differs(anchor.root.clone());
    };
    match chain.root_at(anchor.tree_size).await {
        Ok(held) if held == root => OnChain::Same,
        Ok(held) if held == [0u8; 32] => OnChain::Missing,
        Ok(held) => OnChain::Differs(fhirledger_merkle::hex_0x(&held)),
        Err(e) => {
            tracing::warn!(error = %e, "reading a checkpoint's root from the chain for a proof page failed");
            OnChain::Unreachable
        }
    }
}

/// Recomputes the anchored root from the leaf hash and the path.
fn check(proof: &InclusionProof) -> Result<(), String> {
    let leaf = hash(&proof.leaf_hash)?;
    let root = hash(&proof.anchor.root)?;
    let path = proof
        .path
        .iter()
        .map(|h| hash(h))
        .collect::<Result<Vec<Hash>, String>>()?;
    verify_inclusion(
        &Keccak256Hasher,
        proof.leaf_index,
        proof.anchor.tree_size,
        &leaf,
        &path,
        &root,
    )
    .map_err(|e| e.to_string())
}

fn hash(hex_text: &str) -> Result<Hash, String> {
    let bytes = hex::decode(hex_text.trim_start_matches("0x")).map_err(|e| e.to_string())?;
    bytes
        .try_into()
        .map_err(|_| format!("{hex_text} is not a 32-byte hash"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_read_in_words() {
        assert_eq!(
            rule_in_words("http://h/fhir/Consent/c-1"),
            "The patient's consent"
        );
        assert_eq!(
            rule_in_words("urn:fhirledger:access:own-record"),
            "Their own record"
        );
        assert_eq!(
            rule_in_words("urn:fhirledger:access:hospital-staff"),
            "Hospital staff"
        );
    }

    #[test]
    fn an_emergency_says_why() {
        let e = json!({
            "purposeOfEvent": [{"coding": [{"code": "BTG"}], "text": "unconscious in the ER"}],
            "agent": [{"requestor": true, "policy": ["urn:fhirledger:access:emergency-access"]}]
        });
        assert!(is_emergency(&e));
        assert_eq!(why(&e), "Emergency access: unconscious in the ER");
    }

    #[test]
    fn a_search_that_found_nothing_names_what_it_searched() {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD.encode("GET /fhir/Consent?patient=p-1");
        let from_the_api = json!({
            "subtype": [{"code": "search-type"}],
            "entity": [{"type": {"code": "2"}, "query": raw}]
        });
        assert_eq!(action(&from_the_api), "Searched Consent (none found)");
        let from_a_page = json!({
            "subtype": [{"code": "search-type"}],
            "entity": [{"type": {"code": "2"}, "query": "R0VUIC9wb3J0YWw=",
                        "description": "GET Practitioner?name=smith"}]
        });
        assert_eq!(action(&from_a_page), "Searched Practitioner (none found)");
        let unknown = json!({"subtype": [{"code": "search-system"}], "entity": []});
        assert_eq!(action(&unknown), "Searched");
    }
}
