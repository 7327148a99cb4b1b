//! Parsing of a search request (`GET /{type}?…` or the form body of `POST /{type}/_search`)
//! into [`SearchRequest`]: typed criteria the storage adapter turns into SQL, plus the
//! result parameters (`_sort`, `_count`, `_include`, …).
//!
//! # Index formats shared with `extract`
//! - `:of-type` on an identifier parameter `P` is a token search under the derived key
//!   `param_key(type, "P:of-type")`, whose rows have `system` = the identifier type's
//!   coding system and `code` = `"{type code}|{identifier value}"`.
//! - `:identifier` on a reference parameter `P` is a token search under the derived key
//!   `param_key(type, "P:identifier")`, whose rows are the `Reference.identifier`s.
//! - A composite parameter is a token search under its own key whose rows have no system
//!   and `code` = its components' values joined by `$`, each in normalized form: a token's
//!   code, a reference's `Type/id` (or its URL when not local), a string's normalized form,
//!   a date as written.

use std::collections::BTreeMap;

use crate::search::date::DateRange;
use crate::search::registry::{ParamKey, ParamType};
use crate::summary::SummaryMode;

/// `_count` when the request gives none.
pub const DEFAULT_COUNT: usize = 20;
/// The largest page served; a larger `_count` is lowered to this.
pub const MAX_COUNT: usize = 1000;
/// The parameter carrying the opaque paging cursor in `next`/`previous` links.
pub const CURSOR_PARAM: &str = "_cursor";

/// A parsed search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub resource_type: String,
    /// All must hold (a repeated parameter is ANDed); the values inside each are ORed.
    pub criteria: Vec<Criterion>,
    /// Sort keys in order; ties are always broken by the store's own row order.
    pub sort: Vec<SortKey>,
    /// Page size, at most [`MAX_COUNT`].
    pub count: usize,
    /// `_total`; `None` when not asked for.
    pub total: Option<TotalMode>,
    pub summary: Option<SummaryMode>,
    /// `_elements`, as given.
    pub elements: Option<Vec<String>>,
    pub includes: Vec<Include>,
    pub revincludes: Vec<Include>,
    /// The opaque cursor of a `next`/`previous` link, as given.
    pub cursor: Option<String>,
    /// The understood parameters in a canonical form, for the `self`/`next` links:
    /// everything except the cursor; unknown parameters ignored under lenient handling
    /// are left out.
    pub link_params: Vec<(String, String)>,
    /// Names of unknown parameters that lenient handling ignored.
    pub ignored: Vec<String>,
}

impl SearchRequest {
    /// A search of every resource of `resource_type`, with the default page size and no
    /// other parameter: what an empty query string means.
    pub fn new(resource_type: impl Into<String>) -> SearchRequest {
        SearchRequest {
            resource_type: resource_type.into(),
            criteria: Vec::new(),
            sort: Vec::new(),
            count: DEFAULT_COUNT,
            total: None,
            summary: None,
            elements: None,
            includes: Vec::new(),
            revincludes: Vec::new(),
            cursor: None,
            link_params: Vec::new(),
            ignored: Vec::new(),
        }
    }
}

/// What a caller may see of a search, built by the server from its access decision (no
/// query string produces it) and handed to the store beside the client's own
/// [`SearchRequest`], so the request stays a pure parse of what the client asked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Visibility {
    /// Criteria every match must also meet, applied before paging and counting.
    pub criteria: Vec<Criterion>,
    /// What the resources `_include` and `_revinclude` add (every `:iterate` round too)
    /// must meet, so included resources reveal no more than a search would: `None` leaves
    /// them unrestricted; `Some(map)` returns one only when its type is a key and it meets
    /// every criterion listed for that type (none listed: every resource of the type). A
    /// resource left out is not followed by later `:iterate` rounds either.
    pub includes: Option<BTreeMap<String, Vec<Criterion>>>,
}

impl Visibility {
    /// Everything: the server's own searches and callers with unrestricted access.
    pub fn everything() -> Visibility {
        Visibility::default()
    }

    /// The criteria an included resource of `resource_type` must meet to be returned:
    /// `None` when no resource of that type may be included, an empty slice when every
    /// one may.
    pub fn include_criteria(&self, resource_type: &str) -> Option<&[Criterion]> {
        match &self.includes {
            None => Some(&[]),
            Some(access) => access.get(resource_type).map(Vec::as_slice),
        }
    }
}

/// `_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalMode {
    None,
    Estimate,
    Accurate,
}

/// One `_sort` key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub field: SortField,
    pub descending: bool,
}

/// What a sort key orders by.
#[derive(Debug, Clone, PartialEq)]
pub enum SortField {
    Id,
    LastUpdated,
    /// A date, string or token parameter: by its lowest value ascending, highest
    /// descending (dates: range start ascending, range end descending).
    Param {
        key: ParamKey,
        kind: ParamType,
    },
}

/// An `_include` or `_revinclude`.
#[derive(Debug, Clone, PartialEq)]
pub struct Include {
    /// The type holding the references (`DocumentReference` in
    /// `_include=DocumentReference:subject`).
    pub source_type: String,
    /// The reference parameters followed: one, or every reference parameter of the
    /// source type for `*`.
    pub keys: Vec<ParamKey>,
    /// `:Patient` in `_include=DocumentReference:subject:Patient`.
    pub target_type: Option<String>,
    /// `:iterate` (or the R4 alias `:recurse`).
    pub iterate: bool,
}

/// One search criterion: a parameter (with its modifier) and its OR-ed values.
#[derive(Debug, Clone, PartialEq)]
pub enum Criterion {
    /// `_id`.
    Id { ids: Vec<String> },
    /// `_lastUpdated`.
    LastUpdated { values: Vec<DateMatch> },
    /// `:missing=true|false` on any indexed parameter.
    Missing {
        key: ParamKey,
        kind: ParamType,
        missing: bool,
    },
    /// Token match; `negated` for `:not` (resources with no matching value, including those
    /// without any value).
    Token {
        key: ParamKey,
        negated: bool,
        values: Vec<TokenMatch>,
    },
    /// `:text` on a token: normalized prefixes of display/text.
    TokenText { key: ParamKey, values: Vec<String> },
    /// String match; values normalized for `Prefix` and `Contains`, as given for `Exact`.
    String {
        key: ParamKey,
        mode: StringMode,
        values: Vec<String>,
    },
    Date {
        key: ParamKey,
        values: Vec<DateMatch>,
    },
    Reference {
        key: ParamKey,
        values: Vec<ReferenceMatch>,
    },
    Uri {
        key: ParamKey,
        mode: UriMode,
        values: Vec<String>,
    },
    /// `param.chained=…` or `param:Type.chained=…`: the reference `key` points to a resource
    /// of one of `targets`' types that matches that target's criterion.
    Chain {
        key: ParamKey,
        targets: Vec<ChainTarget>,
    },
    /// `_has:Source:param:…`: some `source_type` resource whose reference parameter `key`
    /// points to the searched resource matches `criterion`.
    Has {
        source_type: String,
        key: ParamKey,
        criterion: Box<Criterion>,
    },
    /// Holds when every criterion of at least one alternative holds (an OR of ANDs): how
    /// the server narrows a search to what the caller may see when that takes more than
    /// one condition, as several granular scopes on one type do. No query string produces
    /// it. No alternatives match nothing; an alternative without criteria matches
    /// everything.
    AnyOf { alternatives: Vec<Vec<Criterion>> },
    /// Holds when no alternative holds (each alternative the AND of its criteria): how the
    /// server leaves out what a deny rule names, such as the documents a patient's Consent
    /// withholds. No query string produces it either. No alternatives exclude nothing.
    NoneOf { alternatives: Vec<Vec<Criterion>> },
    /// A Consent in force of the resource's patient has a rule with `effect` that covers
    /// the resource for `reader` now. On DocumentReference it is the rules kept for that
    /// document; on Patient, `Permit` means the patient grants the reader anything at all
    /// (which opens their demographics). Server-built; no query string produces it.
    Consented {
        effect: ConsentEffect,
        reader: Reader,
    },
    /// `reader` holds unexpired emergency access to the resource's patient (the Patient
    /// itself, or a DocumentReference about them). Server-built.
    EmergencyAccess { reader: Reader },
}

/// What a Consent rule does for the readers it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsentEffect {
    Permit,
    Deny,
}

impl ConsentEffect {
    /// The R4 `Consent.provision.type` code.
    pub fn code(self) -> &'static str {
        match self {
            ConsentEffect::Permit => "permit",
            ConsentEffect::Deny => "deny",
        }
    }
}

/// A doctor reading clinical data, as Consent rules name them: their Practitioner, every
/// PractitionerRole of that Practitioner and the Organization of each (the store looks
/// those up in the same statement), and the hospital of their account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reader {
    /// The Practitioner id (the `fhirUser` of the doctor's account).
    pub practitioner: String,
    /// The Organization id of the doctor's account.
    pub organization: Option<String>,
}

/// One target type of a chain and the criterion its resources must meet.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainTarget {
    pub resource_type: String,
    pub criterion: Box<Criterion>,
}

/// `[system]|[code]` forms of a token value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMatch {
    pub system: SystemMatch,
    /// `None` for `system|` (any code in that system).
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemMatch {
    /// `code`: any system.
    Any,
    /// `|code`: no system.
    NoSystem,
    /// `system|code` or `system|`.
    Is(String),
}

/// A date value with its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateMatch {
    pub prefix: Prefix,
    pub range: DateRange,
}

/// Search prefixes (R4 3.1.1.4.2). For a value range P and an indexed range R:
/// eq: P contains R; ne: not eq; gt: R.high > P.high; lt: R.low < P.low;
/// ge: gt or eq; le: lt or eq; sa: R.low > P.high; eb: R.high < P.low;
/// ap: R overlaps P widened by 10% of the distance from now to P (at least one day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMode {
    Prefix,
    Exact,
    Contains,
}

/// A reference value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceMatch {
    /// `Type/id`, a bare `id` (type from the `:Type` modifier, or the parameter's single
    /// target type, else any), or an absolute URL under this server's base.
    Local {
        resource_type: Option<String>,
        id: String,
    },
    /// Any other absolute URL or canonical, matched as written.
    Url(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriMode {
    Exact,
    Below,
    Above,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_criteria_follow_the_access_map() {
        let open = Visibility::everything();
        assert_eq!(open.include_criteria("Patient"), Some(&[][..]));

        let own = Criterion::Id {
            ids: vec!["123".into()],
        };
        let access = BTreeMap::from([
            ("Patient".to_string(), vec![own.clone()]),
            ("Organization".to_string(), Vec::new()),
        ]);
        let restricted = Visibility {
            criteria: Vec::new(),
            includes: Some(access),
        };
        assert_eq!(restricted.include_criteria("Patient"), Some(&[own][..]));
        assert_eq!(
            restricted.include_criteria("Organization"),
            Some(&[][..]),
            "no criteria: every resource of the type"
        );
        assert_eq!(
            restricted.include_criteria("Practitioner"),
            None,
            "a type left out is never included"
        );
        let none = Visibility {
            criteria: Vec::new(),
            includes: Some(BTreeMap::new()),
        };
        assert_eq!(none.include_criteria("Patient"), None);
    }

    #[test]
    fn a_new_request_is_an_empty_query() {
        let request = SearchRequest::new("Patient");
        assert_eq!(request.count, DEFAULT_COUNT);
        assert!(request.criteria.is_empty() && request.link_params.is_empty());
    }
}
