//! Access logs: AuditEvents read as people read a log — when, who, through
//! which app, what, why (the rule that decided: their Consent, their own
//! record, emergency access and its reason), how it ended (refused attempts
//! stand out), and whether the entry is anchored on chain, linking to its
//! proof. `/portal/access-log` pages a patient's whole log (or a compliance
//! officer's trail); `/portal/access-log/{id}/proof` proves one entry.

use std::collections::HashSet;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use fhirledger_merkle::{verify_inclusion, Hash, Keccak256Hasher};
use fhirledger_service::proofs::{inclusion_proof, Anchor, InclusionProof, Proven};
use fhirledger_service::ServiceError;
use maud::{html, Markup};

use crate::context::PortalContext;
use crate::fhir::{self, problem_page, when_text, Reads};
use crate::layout::{live_region, page, respond};
use crate::log_entry::Entry;
use crate::paging;
use crate::session::Visit;
use fhirledger_access::roles::Role;

/// Entries on one page of a log.
const PAGE: usize = 25;

/// A page of a log: the events' stored JSON, read as [`Entry`]s where
/// shown, which of them are anchored on chain, and the next page's cursor.
pub struct LogPage {
    pub contents: Vec<String>,
    pub next: Option<String>,
    /// The ids of the page's events that an anchored checkpoint covers.
    pub anchored: HashSet<String>,
}

impl LogPage {
    /// A search of AuditEvent with `params` through the read path, and its
    /// on-chain marks, in one visit to the database.
    pub async fn search(
        visit: &Visit,
        params: Vec<(String, String)>,
    ) -> Result<LogPage, ServiceError> {
        fhir::reading(visit, move |reads| LogPage::read(reads, params)).await
    }

    /// [`LogPage::search`] among a page's other reads.
    pub fn read(reads: &Reads<'_>, params: Vec<(String, String)>) -> Result<LogPage, ServiceError> {
        let found = reads.search_contents("AuditEvent", params)?;
        let anchored = reads.anchored(&found.ids)?;
        Ok(LogPage {
            contents: found.contents,
            next: found.next,
            anchored,
        })
    }

    pub fn entries(&self) -> Vec<Entry<'_>> {
        Entry::parse_all(&self.contents)
    }
}

/// `GET /portal/access-log[?cursor=…]`: the log, newest first, a page at a
/// time.
pub async fn log_page(visit: Visit, query: web::Query<Vec<(String, String)>>) -> HttpResponse {
    let cursor = paging::cursor_of(&query);
    let mut params = vec![
        ("_sort".to_string(), "-date".to_string()),
        ("_count".to_string(), PAGE.to_string()),
    ];
    if let Some(own) = &visit.caller.patient {
        params.push(("patient".into(), own.clone()));
    }
    let params = paging::at(params, cursor.as_ref());
    let found = match LogPage::search(&visit, params).await {
        Ok(found) => found,
        Err(e) => return problem_page(&e),
    };
    let entries = found.entries();
    let anchored = &found.anchored;
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
            (live_region(LIVE_TOPIC, &table(&visit, &entries, heading, anchored)))
        } @else {
            (table(&visit, &entries, heading, anchored))
        }
        (paging::pager("/portal/access-log", cursor.as_ref(), found.next.as_ref(), paging::newest_first("Older entries")))
    };
    respond(StatusCode::OK, page(heading, Some(&visit.person()), body))
}

/// The live updates a patient's log listens to ([`crate::live`]).
pub const LIVE_TOPIC: &str = "access-log";

/// AuditEvents as an access log table.
pub fn table(
    visit: &Visit,
    entries: &[Entry<'_>],
    caption: &str,
    anchored: &HashSet<String>,
) -> Markup {
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
        @if entries.is_empty() {
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
                    @for e in entries {
                        @let refused = e.refused();
                        @let id = e.id.as_ref();
                        @let class = match (refused, e.is_emergency()) {
                            (true, _) => Some("refused"),
                            (false, true) => Some("emergency"),
                            _ => None,
                        };
                        tr class=[class] data-key=(id) {
                            td { time datetime=(e.recorded) { (when_text(&e.recorded)) } }
                            td { (e.who(own.as_deref())) }
                            td { (e.app(issuer)) }
                            td { (e.action()) }
                            td { (e.why()) }
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
