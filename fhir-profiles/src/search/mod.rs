//! FHIR search: the registry of search parameters generated from the official R4
//! definitions, extraction of the values a resource is found by, and parsing of search
//! requests into criteria the storage adapter turns into queries.
//!
//! The types here are the contract between those parts: extraction produces
//! [`IndexRows`] that the store writes with every version, and the query parser produces
//! [`query::SearchRequest`]s whose criteria refer to the same [`ParamKey`]s.

pub mod date;
pub mod extract;
mod fhirpath;
pub mod normalize;
mod parse;
pub mod query;
pub mod record_sort;
pub mod registry;

use chrono::{DateTime, Utc};

pub use date::DateRange;
pub use extract::extract;
pub use parse::parse_search;
pub use registry::{param, param_key, params, ParamKey, ParamType, SearchParam};

/// A token value as indexed: Coding, CodeableConcept (one row per coding, plus one for its
/// text), Identifier, ContactPoint, code, boolean, string or id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIndex {
    pub key: ParamKey,
    /// `None` when the value has no system (a plain `code`, a boolean, an Identifier
    /// without system).
    pub system: Option<String>,
    /// `None` for a row that only carries text (CodeableConcept.text).
    pub code: Option<String>,
    /// Display or text for `:text`, normalized with [`normalize::normalize_string`].
    pub text: Option<String>,
}

/// A string value as indexed: string, markdown, and each part of HumanName and Address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringIndex {
    pub key: ParamKey,
    /// Case- and accent-folded form used by the default (prefix) and `:contains` matches.
    pub normalized: String,
    /// The value as written, for `:exact`.
    pub exact: String,
}

/// A date, dateTime, instant, Period or Timing as the closed range of instants it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateIndex {
    pub key: ParamKey,
    pub low: DateTime<Utc>,
    pub high: DateTime<Utc>,
}

/// A Reference (or canonical) as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceIndex {
    pub key: ParamKey,
    /// For a reference to a resource on this server (relative, or absolute under the
    /// server's base URL): its type and id.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// For anything else (an absolute URL elsewhere, a canonical, a `urn:`): the reference
    /// as written.
    pub url: Option<String>,
}

/// A uri, url or canonical as indexed (for uri parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriIndex {
    pub key: ParamKey,
    pub uri: String,
}

/// Everything one resource version is found by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexRows {
    pub tokens: Vec<TokenIndex>,
    pub strings: Vec<StringIndex>,
    pub dates: Vec<DateIndex>,
    pub references: Vec<ReferenceIndex>,
    pub uris: Vec<UriIndex>,
}
