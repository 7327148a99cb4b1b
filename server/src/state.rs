//! What every FHIR handler can reach: built once by `app::serve`, shared by
//! the workers.

use std::sync::Arc;

use fhirledger_audit::Observer;
use fhirledger_auth::AuthServer;
use fhirledger_service::{AuditLog, Database};

/// What every handler can reach.
pub struct AppState {
    /// The store behind its fair queues: every blocking call goes through it.
    pub db: Arc<Database>,
    /// `{public base}/fhir`, used for every absolute URL we emit.
    pub fhir_base: String,
    pub max_body_bytes: u64,
    /// The deployment's access policy (Consent base policy, emergency access).
    pub policy: fhirledger_access::Policy,
    /// The CapabilityStatement, built once from what the server implements.
    pub capability: serde_json::Value,
    /// The SMART authorization server, whose tokens guard every FHIR request.
    pub auth: Arc<AuthServer>,
    /// Commits reads' AuditEvents before their responses leave.
    pub audit_log: AuditLog,
    /// What this process's Merkle log sequencer last did (`/health/ready`).
    pub sequencer: Arc<fhirledger_service::ledger::SequencerHealth>,
    /// Balancers whose `X-Forwarded-For` names the client (AuditEvents).
    pub trusted_proxies: crate::http::client_address::TrustedProxies,
    /// This server, as its AuditEvents name it.
    pub observer: Observer,
    /// This process's anchoring configuration, when it runs the worker.
    pub anchoring: Option<fhirledger_service::anchoring::LocalAnchoring>,
}
