//! What one audited access was, in the server's own terms: who asked,
//! through which app and from where, what they did to which resources of
//! which patient, why, and how it ended. [`crate::balp`] turns it into the
//! FHIR AuditEvent the trail keeps.

use chrono::{DateTime, Utc};

/// A code from a code system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coding {
    pub system: String,
    pub code: String,
    pub display: Option<String>,
}

impl Coding {
    pub fn new(system: &str, code: &str, display: Option<&str>) -> Coding {
        Coding {
            system: system.to_string(),
            code: code.to_string(),
            display: display.map(str::to_string),
        }
    }
}

/// A RESTful interaction (`http://hl7.org/fhir/restful-interaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Read,
    Vread,
    SearchType,
    SearchSystem,
    HistoryInstance,
    HistoryType,
    HistorySystem,
    Create,
    Update,
    Patch,
    Delete,
    Batch,
    Transaction,
    Operation,
    Capabilities,
}

/// `AuditEvent.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
    Execute,
}

impl Action {
    pub fn code(self) -> &'static str {
        match self {
            Action::Create => "C",
            Action::Read => "R",
            Action::Update => "U",
            Action::Delete => "D",
            Action::Execute => "E",
        }
    }
}

impl Interaction {
    /// The `restful-interaction` code.
    pub fn code(self) -> &'static str {
        match self {
            Interaction::Read => "read",
            Interaction::Vread => "vread",
            Interaction::SearchType => "search-type",
            Interaction::SearchSystem => "search-system",
            Interaction::HistoryInstance => "history-instance",
            Interaction::HistoryType => "history-type",
            Interaction::HistorySystem => "history-system",
            Interaction::Create => "create",
            Interaction::Update => "update",
            Interaction::Patch => "patch",
            Interaction::Delete => "delete",
            Interaction::Batch => "batch",
            Interaction::Transaction => "transaction",
            Interaction::Operation => "operation",
            Interaction::Capabilities => "capabilities",
        }
    }

    /// What the interaction does to data: reads are `R`, searches and
    /// history `E` (BALP's Query pattern: the query is executed), writes
    /// `C`/`U`/`D`, Bundles and operations `E`.
    pub fn action(self) -> Action {
        match self {
            Interaction::Read | Interaction::Vread => Action::Read,
            Interaction::Create => Action::Create,
            Interaction::Update | Interaction::Patch => Action::Update,
            Interaction::Delete => Action::Delete,
            Interaction::SearchType
            | Interaction::SearchSystem
            | Interaction::HistoryInstance
            | Interaction::HistoryType
            | Interaction::HistorySystem
            | Interaction::Batch
            | Interaction::Transaction
            | Interaction::Operation
            | Interaction::Capabilities => Action::Execute,
        }
    }

    /// Whether the interaction runs a query (search or history): its
    /// request goes into the event as the query entity.
    pub fn is_query(self) -> bool {
        matches!(
            self,
            Interaction::SearchType
                | Interaction::SearchSystem
                | Interaction::HistoryInstance
                | Interaction::HistoryType
                | Interaction::HistorySystem
        )
    }
}

/// A security event of the authorization server (DICOM event types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityEvent {
    /// A sign-in at the authorization server (`110114` User Authentication,
    /// subtype `110122` Login).
    SignIn,
    /// Tokens issued or refused at the token endpoint (`110114`, subtype
    /// IHE `ITI-71` Get Access Token), with the scopes granted.
    TokenRequest {
        grant_type: String,
        scopes: Vec<String>,
    },
    /// A token revoked (`110113` Security Alert).
    Revocation,
    /// A refresh token used twice: the family is revoked (`110113`).
    RefreshTokenReuse,
    /// An account or client created, deactivated or changed, an
    /// Organization deactivated (`110113`, with what changed).
    Administration { what: String },
}

/// `AuditEvent.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The request was refused or failed on the client's side (4xx).
    MinorFailure,
    /// The request failed on the server's side (5xx).
    SeriousFailure,
    /// The server could not go on (never used for one request).
    MajorFailure,
}

impl Outcome {
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Success => "0",
            Outcome::MinorFailure => "4",
            Outcome::SeriousFailure => "8",
            Outcome::MajorFailure => "12",
        }
    }

    /// The outcome of an HTTP status.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            0..=399 => Outcome::Success,
            400..=499 => Outcome::MinorFailure,
            _ => Outcome::SeriousFailure,
        }
    }
}

/// The person behind the request, as their token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Their FHIR identity (`Practitioner/123`, `Patient/456`), when the
    /// account has one.
    pub fhir_user: Option<String>,
    /// The account id at our authorization server (the token's `sub`).
    pub account: String,
    /// Their name as the FHIR identity or the account gives it.
    pub name: Option<String>,
    /// Their role in the solution (`doctor`, `patient`, …).
    pub role: Option<String>,
    /// The Organization (hospital) of their account, by id.
    pub organization: Option<String>,
    /// That Organization's name.
    pub organization_name: Option<String>,
}

/// The application that sent the request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Client {
    /// The SMART client, when the request carried a valid token.
    pub client_id: Option<String>,
    /// The network address the request came from.
    pub address: Option<String>,
}

/// The query of a search or history, as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The raw request (method, path and query string): base64 in the event,
    /// so even a malicious request is kept exactly.
    pub raw: String,
    /// The request as the server understood it.
    pub description: Option<String>,
}

/// One audited access: at most one patient (a request touching several
/// patients' data is recorded once per patient, see [`crate::balp`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub recorded: DateTime<Utc>,
    pub kind: Kind,
    pub outcome: Outcome,
    /// Why it failed or was refused, as the client was told (no content).
    pub outcome_desc: Option<String>,
    /// The person, when the request carried a person's token.
    pub person: Option<Person>,
    pub client: Client,
    /// `purposeOfUse` codes of the token; `BTG` for emergency access.
    pub purpose: Vec<Coding>,
    /// Why, in the person's words (the reason given for emergency access).
    pub purpose_text: Option<String>,
    /// The patient whose data it was, by id.
    pub patient: Option<String>,
    /// The resources touched, as versioned references
    /// (`DocumentReference/1/_history/2`) or type and id.
    pub resources: Vec<String>,
    /// The rule that decided: `Consent/7`, `author`, `emergency access`,
    /// `base policy`, a scope; recorded as the user agent's `policy`.
    pub decided_by: Vec<String>,
    /// The query of a search or history.
    pub query: Option<Query>,
    /// The `X-Request-Id` of the HTTP request.
    pub request_id: String,
}

/// What kind of event it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A FHIR REST interaction; `operation` names a `$operation`.
    Rest {
        interaction: Interaction,
        operation: Option<String>,
    },
    /// A security event of the authorization server.
    Security(SecurityEvent),
}

/// This server, as the events name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observer {
    /// The FHIR base URL: the server's identity in every event.
    pub fhir_base: String,
    /// The host name clients reach it by.
    pub host: String,
}
