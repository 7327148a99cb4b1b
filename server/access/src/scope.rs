//! SMART App Launch 2.2 scopes: parsing what a client asks for and rendering
//! what it was granted.
//!
//! Scopes are the vocabulary of every access decision, so they are parsed
//! strictly: a scope that looks like a resource scope but is malformed is an
//! error (`invalid_scope`), never silently ignored, because ignoring it would
//! hand the client less — or, after a typo in a limit, more — than anyone meant.
//! Scopes this server does not know but that are well-formed scope tokens are
//! kept as [`Scope::Other`] so they can still be intersected and echoed back.

use std::fmt;
use std::ops::{BitAnd, BitOr};
use std::str::FromStr;

/// The most scopes one scope string may hold. Intersection is quadratic in
/// the number of scopes, so an unbounded list would let a client make the
/// token endpoint do unbounded work; real clients ask for a few dozen.
pub const MAX_SCOPES: usize = 256;

/// Whose data a resource scope reaches: the launch patient's, whatever the
/// signed-in user may see, or (for backend services) the whole system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    Patient,
    User,
    System,
}

impl Context {
    /// Every context, in the order scopes and allowances list them.
    pub const ALL: [Context; 3] = [Context::Patient, Context::User, Context::System];

    /// The prefix as written before the `/` of a scope.
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Patient => "patient",
            Context::User => "user",
            Context::System => "system",
        }
    }

    /// The context named by a scope prefix; contexts are case-sensitive.
    pub fn from_prefix(prefix: &str) -> Option<Context> {
        Context::ALL.into_iter().find(|c| c.as_str() == prefix)
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of SMART v2 permissions: create, read, update, delete, search.
///
/// A bitset rather than five booleans so intersection and coverage are one
/// operation each, which is all the grant and access logic needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    pub const NONE: Permissions = Permissions(0);
    pub const CREATE: Permissions = Permissions(1);
    pub const READ: Permissions = Permissions(1 << 1);
    pub const UPDATE: Permissions = Permissions(1 << 2);
    pub const DELETE: Permissions = Permissions(1 << 3);
    pub const SEARCH: Permissions = Permissions(1 << 4);
    /// `cruds`, also what v1 `*` means.
    pub const ALL: Permissions = Permissions(0b1_1111);
    /// What v1 `read` means: `rs`.
    pub const V1_READ: Permissions = Permissions::READ.union(Permissions::SEARCH);
    /// What v1 `write` means: `cud`.
    pub const V1_WRITE: Permissions = Permissions::CREATE
        .union(Permissions::UPDATE)
        .union(Permissions::DELETE);

    /// The v2 letters in the only order SMART allows them.
    const LETTERS: [(char, Permissions); 5] = [
        ('c', Permissions::CREATE),
        ('r', Permissions::READ),
        ('u', Permissions::UPDATE),
        ('d', Permissions::DELETE),
        ('s', Permissions::SEARCH),
    ];

    pub const fn union(self, other: Permissions) -> Permissions {
        Permissions(self.0 | other.0)
    }

    pub const fn intersection(self, other: Permissions) -> Permissions {
        Permissions(self.0 & other.0)
    }

    /// True when every permission of `other` is also in `self`.
    pub const fn contains(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses v2 letters: a non-empty subsequence of `cruds`, in that order,
    /// each letter at most once (`rs` is valid, `sr` and `rr` are not).
    pub fn from_letters(letters: &str) -> Option<Permissions> {
        let mut next = 0;
        let mut permissions = Permissions::NONE;
        for ch in letters.chars() {
            let offset = Self::LETTERS[next..].iter().position(|(l, _)| *l == ch)?;
            permissions = permissions.union(Self::LETTERS[next + offset].1);
            next += offset + 1;
        }
        (!permissions.is_empty()).then_some(permissions)
    }

    /// The v2 letters for these permissions, in canonical order.
    pub fn letters(self) -> String {
        Self::LETTERS
            .iter()
            .filter(|(_, p)| self.contains(*p))
            .map(|(l, _)| *l)
            .collect()
    }

    /// The permissions a v1 suffix (`read`, `write`, `*`) stands for.
    pub fn from_v1(suffix: &str) -> Option<Permissions> {
        match suffix {
            "read" => Some(Permissions::V1_READ),
            "write" => Some(Permissions::V1_WRITE),
            "*" => Some(Permissions::ALL),
            _ => None,
        }
    }

    /// The v1 suffix that stands for exactly these permissions, if any.
    pub fn v1_suffix(self) -> Option<&'static str> {
        match self {
            Permissions::V1_READ => Some("read"),
            Permissions::V1_WRITE => Some("write"),
            Permissions::ALL => Some("*"),
            _ => None,
        }
    }
}

impl BitAnd for Permissions {
    type Output = Permissions;
    fn bitand(self, rhs: Permissions) -> Permissions {
        self.intersection(rhs)
    }
}

impl BitOr for Permissions {
    type Output = Permissions;
    fn bitor(self, rhs: Permissions) -> Permissions {
        self.union(rhs)
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.letters())
    }
}

/// Why a scope string was refused. Messages quote only text that already
/// passed the scope-token character check, so they are safe to put in an
/// OAuth `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("the scope contains character U+{code:04X}, which a scope token may not contain")]
    InvalidCharacter { code: u32 },
    #[error("too many scopes (at most {MAX_SCOPES})")]
    TooMany,
    #[error("'{scope}': unknown context '{context}' (expected patient, user or system)")]
    UnknownContext { scope: String, context: String },
    #[error("'{scope}': {problem}")]
    InvalidResourceScope {
        scope: String,
        problem: ResourceScopeProblem,
    },
}

/// What is wrong with a malformed resource scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResourceScopeProblem {
    #[error("expected context/type.permissions")]
    Malformed,
    #[error("the resource type is missing")]
    MissingType,
    #[error("the resource type must be '*' or a FHIR resource type name")]
    InvalidType,
    #[error("permissions must be read, write, * or the letters c r u d s in that order, each at most once")]
    InvalidPermissions,
    #[error("granular parameters need SMART v2 permission letters, not read/write/*")]
    QueryWithV1,
    #[error("granular parameters must be percent-encoded name=value pairs joined by '&'")]
    InvalidQuery,
}

/// A `patient/`, `user/` or `system/` scope.
///
/// Equality (`==`) is structural, including `v1` and the order of `query`;
/// use [`ResourceScope::same_grant`] to ask whether two scopes grant the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceScope {
    pub context: Context,
    /// `None` stands for `*`, every resource type.
    pub resource_type: Option<String>,
    pub permissions: Permissions,
    /// Granular (v2) search parameters after `?`, percent-decoded; a resource
    /// must match all of them (AND). Empty means no restriction.
    pub query: Vec<(String, String)>,
    /// Written with v1 suffixes (`read`, `write`, `*`); kept so that a scope
    /// granted in full is rendered the way the client wrote it.
    pub v1: bool,
}

impl ResourceScope {
    /// A v2 scope without granular parameters.
    pub fn new(
        context: Context,
        resource_type: Option<&str>,
        permissions: Permissions,
    ) -> ResourceScope {
        ResourceScope {
            context,
            resource_type: resource_type.map(str::to_owned),
            permissions,
            query: Vec::new(),
            v1: false,
        }
    }

    /// Adds a granular parameter (and makes the scope v2, the only syntax
    /// that can carry one).
    pub fn with_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self.v1 = false;
        self
    }

    /// Parses one resource scope such as `patient/Observation.rs?category=laboratory`.
    pub fn parse(text: &str) -> Result<ResourceScope, ScopeError> {
        check_token(text)?;
        let (prefix, rest) =
            text.split_once('/')
                .ok_or_else(|| ScopeError::InvalidResourceScope {
                    scope: text.to_owned(),
                    problem: ResourceScopeProblem::Malformed,
                })?;
        let context = Context::from_prefix(prefix).ok_or_else(|| ScopeError::UnknownContext {
            scope: text.to_owned(),
            context: prefix.to_owned(),
        })?;
        parse_resource_rest(context, rest).map_err(|problem| ScopeError::InvalidResourceScope {
            scope: text.to_owned(),
            problem,
        })
    }

    /// `*` or the resource type name, as written in a scope.
    pub fn type_label(&self) -> &str {
        self.resource_type.as_deref().unwrap_or("*")
    }

    /// True when this scope reaches resources of `resource_type`.
    pub fn applies_to(&self, resource_type: &str) -> bool {
        self.resource_type
            .as_deref()
            .is_none_or(|t| t == resource_type)
    }

    /// The canonical v2 text: `{context}/{type|*}.{letters}[?k=v&…]`.
    pub fn to_v2_string(&self) -> String {
        let mut out = format!(
            "{}/{}.{}",
            self.context,
            self.type_label(),
            self.permissions.letters()
        );
        for (i, (name, value)) in self.query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            encode_component(name, true, &mut out);
            out.push('=');
            encode_component(value, false, &mut out);
        }
        out
    }

    /// True when both scopes grant exactly the same access, whatever the
    /// syntax (v1 or v2) and however the granular parameters are ordered or
    /// repeated.
    pub fn same_grant(&self, other: &ResourceScope) -> bool {
        self.context == other.context
            && self.resource_type == other.resource_type
            && self.permissions == other.permissions
            && self.query.iter().all(|p| other.query.contains(p))
            && other.query.iter().all(|p| self.query.contains(p))
    }
}

/// Renders the scope as written: v1 form when it was parsed from v1 (and
/// still means exactly a v1 suffix), v2 form otherwise.
impl fmt::Display for ResourceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.permissions.v1_suffix() {
            Some(suffix) if self.v1 && self.query.is_empty() => {
                write!(f, "{}/{}.{}", self.context, self.type_label(), suffix)
            }
            _ => f.write_str(&self.to_v2_string()),
        }
    }
}

/// One scope token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Resource(ResourceScope),
    /// `openid`: an id_token is wanted.
    OpenId,
    /// `fhirUser`: the id_token names the user's FHIR resource.
    FhirUser,
    /// `profile`: the user's name and profile claims.
    Profile,
    /// `launch`: EHR launch, with context from the `launch` parameter.
    Launch,
    /// `launch/patient`: standalone launch, the user picks a patient.
    LaunchPatient,
    /// `launch/encounter`: standalone launch, the user picks an encounter.
    LaunchEncounter,
    /// `offline_access`: a refresh token that outlives the session.
    OfflineAccess,
    /// `online_access`: a refresh token bound to the session.
    OnlineAccess,
    /// Any other well-formed scope token (`fhirledger.admin`, `launch/foo`),
    /// kept verbatim so it can be intersected and echoed like the others.
    Other(String),
}

impl Scope {
    /// Parses one scope token.
    pub fn parse(token: &str) -> Result<Scope, ScopeError> {
        check_token(token)?;
        Ok(match token {
            "openid" => Scope::OpenId,
            "fhirUser" => Scope::FhirUser,
            "profile" => Scope::Profile,
            "launch" => Scope::Launch,
            "launch/patient" => Scope::LaunchPatient,
            "launch/encounter" => Scope::LaunchEncounter,
            "offline_access" => Scope::OfflineAccess,
            "online_access" => Scope::OnlineAccess,
            _ if looks_like_resource_scope(token) => Scope::Resource(ResourceScope::parse(token)?),
            _ => Scope::Other(token.to_owned()),
        })
    }

    pub fn as_resource(&self) -> Option<&ResourceScope> {
        match self {
            Scope::Resource(r) => Some(r),
            _ => None,
        }
    }

    /// True when both scopes grant the same: resource scopes by
    /// [`ResourceScope::same_grant`], the rest by identity.
    pub fn equivalent(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::Resource(a), Scope::Resource(b)) => a.same_grant(b),
            _ => self == other,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Resource(r) => return r.fmt(f),
            Scope::OpenId => "openid",
            Scope::FhirUser => "fhirUser",
            Scope::Profile => "profile",
            Scope::Launch => "launch",
            Scope::LaunchPatient => "launch/patient",
            Scope::LaunchEncounter => "launch/encounter",
            Scope::OfflineAccess => "offline_access",
            Scope::OnlineAccess => "online_access",
            Scope::Other(s) => s,
        })
    }
}

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Scope, ScopeError> {
        Scope::parse(s)
    }
}

/// A scope with the text it is rendered as (the client's own text when it
/// came from a request, canonical text when the server built it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeEntry {
    scope: Scope,
    text: String,
}

impl ScopeEntry {
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// An ordered set of scopes, as in an OAuth `scope` parameter.
///
/// Each scope keeps its original text so a granted scope string echoes what
/// the client asked for wherever it was granted in full. Equivalent scopes
/// (see [`Scope::equivalent`]) are held once; the first one wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet {
    entries: Vec<ScopeEntry>,
}

impl ScopeSet {
    pub fn new() -> ScopeSet {
        ScopeSet::default()
    }

    /// Parses a space-separated scope string. Repeated spaces are tolerated;
    /// anything outside the RFC 6749 scope-token characters is refused. An
    /// empty string gives an empty set (what that means is the caller's call).
    pub fn parse(text: &str) -> Result<ScopeSet, ScopeError> {
        let mut set = ScopeSet::new();
        for token in text.split(' ').filter(|t| !t.is_empty()) {
            if set.entries.len() >= MAX_SCOPES {
                return Err(ScopeError::TooMany);
            }
            let scope = Scope::parse(token)?;
            set.insert_with_text(scope, token.to_owned());
        }
        Ok(set)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when an equivalent scope is in the set (so `patient/*.rs` is
    /// found in a set written `patient/*.read`). Coverage by a wider scope is
    /// a different question: see [`crate::is_subset`].
    pub fn contains(&self, scope: &Scope) -> bool {
        self.entries.iter().any(|e| e.scope.equivalent(scope))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> + '_ {
        self.entries.iter().map(|e| &e.scope)
    }

    /// Scopes with their texts.
    pub fn entries(&self) -> &[ScopeEntry] {
        &self.entries
    }

    /// Only the resource scopes.
    pub fn resource_scopes(&self) -> impl Iterator<Item = &ResourceScope> + '_ {
        self.iter().filter_map(Scope::as_resource)
    }

    /// Adds a scope rendered in its own text; false if an equivalent scope
    /// was already there.
    pub fn insert(&mut self, scope: Scope) -> bool {
        let text = scope.to_string();
        self.insert_with_text(scope, text)
    }

    /// Adds a scope with the text it came with. Crate-private because the
    /// text must parse back to an equivalent scope.
    pub(crate) fn insert_with_text(&mut self, scope: Scope, text: String) -> bool {
        if self.contains(&scope) {
            return false;
        }
        self.entries.push(ScopeEntry { scope, text });
        true
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(&entry.text)?;
        }
        Ok(())
    }
}

impl FromStr for ScopeSet {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<ScopeSet, ScopeError> {
        ScopeSet::parse(s)
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> ScopeSet {
        let mut set = ScopeSet::new();
        for scope in iter {
            set.insert(scope);
        }
        set
    }
}

/// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
fn is_token_byte(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

fn check_token(token: &str) -> Result<(), ScopeError> {
    match token
        .chars()
        .find(|c| !c.is_ascii() || !is_token_byte(*c as u8))
    {
        Some(c) => Err(ScopeError::InvalidCharacter { code: c as u32 }),
        None if token.is_empty() => Err(ScopeError::InvalidResourceScope {
            scope: String::new(),
            problem: ResourceScopeProblem::Malformed,
        }),
        None => Ok(()),
    }
}

/// Whether a token is meant as a resource scope and must parse as one.
///
/// Anything under `patient/`, `user/` or `system/` is; so is any
/// `word/something.something` with a purely alphabetic prefix other than
/// `launch`, because that is a resource scope with a misspelt context
/// (`Patient/X.r`, `foo/X.r`) and granting it as an opaque token would hide
/// the mistake. URIs (`https://…`) and `launch/…` stay opaque.
fn looks_like_resource_scope(token: &str) -> bool {
    let Some((prefix, rest)) = token.split_once('/') else {
        return false;
    };
    if Context::from_prefix(prefix).is_some() {
        return true;
    }
    prefix != "launch"
        && !prefix.is_empty()
        && prefix.bytes().all(|b| b.is_ascii_alphabetic())
        && rest.contains('.')
}

/// Parses `{type}.{permissions}[?{query}]` after the context.
fn parse_resource_rest(
    context: Context,
    rest: &str,
) -> Result<ResourceScope, ResourceScopeProblem> {
    let (main, query) = match rest.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (rest, None),
    };
    let (type_part, perm_part) = main
        .split_once('.')
        .ok_or(ResourceScopeProblem::Malformed)?;
    let resource_type = match type_part {
        "" => return Err(ResourceScopeProblem::MissingType),
        "*" => None,
        t if is_type_name(t) => Some(t.to_owned()),
        _ => return Err(ResourceScopeProblem::InvalidType),
    };
    let (permissions, v1) = match Permissions::from_v1(perm_part) {
        Some(p) => (p, true),
        None => (
            Permissions::from_letters(perm_part).ok_or(ResourceScopeProblem::InvalidPermissions)?,
            false,
        ),
    };
    let query = match query {
        None => Vec::new(),
        Some(_) if v1 => return Err(ResourceScopeProblem::QueryWithV1),
        Some(q) => parse_query(q).ok_or(ResourceScopeProblem::InvalidQuery)?,
    };
    Ok(ResourceScope {
        context,
        resource_type,
        permissions,
        query,
        v1,
    })
}

/// A FHIR resource type name is syntactically an uppercase letter followed by
/// letters and digits; whether the type exists is not this module's concern.
fn is_type_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_uppercase()) && bytes.all(|b| b.is_ascii_alphanumeric())
}

/// `k=v&k=v`, each part percent-decoded; every pair needs a name and a value
/// (an empty value would be a filter that filters nothing).
fn parse_query(query: &str) -> Option<Vec<(String, String)>> {
    query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let name = decode_component(name)?;
            let value = decode_component(value)?;
            (!name.is_empty() && !value.is_empty()).then_some((name, value))
        })
        .collect()
}

/// RFC 3986 percent-decoding. `+` stays a plus: scope tokens cannot carry
/// spaces anyway, and a `+` in a FHIR date offset must survive.
fn decode_component(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes only what must be: bytes outside the scope-token
/// characters, `%` and `&`, and `=` in names (values are split at the first
/// `=`, so theirs can stay). `|` in token searches stays readable.
fn encode_component(text: &str, is_name: bool, out: &mut String) {
    for b in text.bytes() {
        let keep = is_token_byte(b) && b != b'%' && b != b'&' && !(is_name && b == b'=');
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(text: &str) -> ResourceScope {
        match Scope::parse(text) {
            Ok(Scope::Resource(r)) => r,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn problem(text: &str) -> ResourceScopeProblem {
        match Scope::parse(text) {
            Err(ScopeError::InvalidResourceScope { problem, .. }) => problem,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn permission_letters_follow_cruds_order() {
        assert_eq!(Permissions::from_letters("cruds"), Some(Permissions::ALL));
        assert_eq!(Permissions::from_letters("rs"), Some(Permissions::V1_READ));
        assert_eq!(
            Permissions::from_letters("cud"),
            Some(Permissions::V1_WRITE)
        );
        assert_eq!(Permissions::from_letters("s"), Some(Permissions::SEARCH));
        for bad in ["", "sr", "rr", "rsr", "x", "cRud", "dc", "read "] {
            assert_eq!(Permissions::from_letters(bad), None, "{bad}");
        }
        assert_eq!(Permissions::ALL.letters(), "cruds");
        assert_eq!(
            (Permissions::CREATE | Permissions::SEARCH).to_string(),
            "cs"
        );
        assert_eq!(
            Permissions::V1_READ & Permissions::V1_WRITE,
            Permissions::NONE
        );
    }

    #[test]
    fn parses_v1_scopes() {
        let r = rs("patient/Observation.read");
        assert_eq!(r.context, Context::Patient);
        assert_eq!(r.resource_type.as_deref(), Some("Observation"));
        assert_eq!(r.permissions, Permissions::V1_READ);
        assert!(r.v1);
        assert_eq!(rs("user/*.write").permissions, Permissions::V1_WRITE);
        assert_eq!(rs("user/*.write").resource_type, None);
        assert_eq!(rs("system/*.*").permissions, Permissions::ALL);
        assert_eq!(rs("patient/Patient.*").to_string(), "patient/Patient.*");
    }

    #[test]
    fn parses_v2_scopes() {
        let r = rs("patient/DocumentReference.crs");
        assert_eq!(
            r.permissions,
            Permissions::CREATE | Permissions::READ | Permissions::SEARCH
        );
        assert!(!r.v1);
        assert!(r.query.is_empty());
        assert_eq!(rs("system/*.cruds").permissions, Permissions::ALL);
        assert_eq!(rs("user/Patient.s").permissions, Permissions::SEARCH);
    }

    #[test]
    fn parses_granular_parameters() {
        let r = rs("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory&status=final");
        assert_eq!(
            r.query,
            vec![
                (
                    "category".to_owned(),
                    "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
                        .to_owned()
                ),
                ("status".to_owned(), "final".to_owned()),
            ]
        );
        let r = rs("patient/Observation.rs?date=ge2020-01-01T00:00:00+01:00&x%26y=a%20b=c");
        assert_eq!(r.query[0].1, "ge2020-01-01T00:00:00+01:00");
        assert_eq!(r.query[1], ("x&y".to_owned(), "a b=c".to_owned()));
    }

    #[test]
    fn refuses_malformed_resource_scopes() {
        assert_eq!(
            problem("patient/X.sr"),
            ResourceScopeProblem::InvalidPermissions
        );
        assert_eq!(
            problem("patient/X.rr"),
            ResourceScopeProblem::InvalidPermissions
        );
        assert_eq!(
            problem("patient/X."),
            ResourceScopeProblem::InvalidPermissions
        );
        assert_eq!(
            problem("patient/X.Read"),
            ResourceScopeProblem::InvalidPermissions
        );
        assert_eq!(problem("patient/.r"), ResourceScopeProblem::MissingType);
        assert_eq!(
            problem("patient/observation.r"),
            ResourceScopeProblem::InvalidType
        );
        assert_eq!(
            problem("patient/Obs-1.r"),
            ResourceScopeProblem::InvalidType
        );
        assert_eq!(problem("patient/**.r"), ResourceScopeProblem::InvalidType);
        assert_eq!(problem("patient/X"), ResourceScopeProblem::Malformed);
        assert_eq!(problem("patient/"), ResourceScopeProblem::Malformed);
        assert_eq!(
            problem("patient/X.read?a=b"),
            ResourceScopeProblem::QueryWithV1
        );
        assert_eq!(
            problem("patient/X.*?a=b"),
            ResourceScopeProblem::QueryWithV1
        );
        for bad_query in [
            "?",
            "?a",
            "?a=",
            "?=b",
            "?a=b&",
            "?a=b&&c=d",
            "?a=%zz",
            "?a=%4",
            "?a=%FF",
        ] {
            assert_eq!(
                problem(&format!("patient/X.rs{bad_query}")),
                ResourceScopeProblem::InvalidQuery,
                "{bad_query}"
            );
        }
    }

    #[test]
    fn refuses_unknown_contexts_that_look_like_resource_scopes() {
        for text in ["foo/X.r", "Patient/Observation.read", "users/*.rs"] {
            assert!(
                matches!(Scope::parse(text), Err(ScopeError::UnknownContext { .. })),
                "{text}"
            );
        }
    }

    #[test]
    fn keeps_unknown_well_formed_tokens() {
        for text in [
            "fhirledger.admin",
            "launch/foo",
            "launch/foo.bar",
            "https://example.org/scopes/a.b",
            "patient",
        ] {
            assert_eq!(Scope::parse(text), Ok(Scope::Other(text.to_owned())));
        }
        assert_eq!(Scope::parse("launch/patient"), Ok(Scope::LaunchPatient));
        assert_eq!(Scope::parse("fhirUser"), Ok(Scope::FhirUser));
        assert_eq!(
            Scope::parse("fhiruser"),
            Ok(Scope::Other("fhiruser".into()))
        );
    }

    #[test]
    fn refuses_characters_outside_the_token_grammar() {
        for (text, code) in [
            ("openid\tprofile", 9),
            ("a\"b", 0x22),
            ("a\\b", 0x5C),
            ("a\u{7f}", 0x7F),
            ("a\u{0}", 0),
            ("caf\u{e9}", 0xE9),
            ("openid\nprofile", 10),
        ] {
            assert_eq!(
                ScopeSet::parse(text),
                Err(ScopeError::InvalidCharacter { code }),
                "{text:?}"
            );
        }
        let msg = ScopeSet::parse("a\u{7}").unwrap_err().to_string();
        assert!(msg.contains("U+0007"), "{msg}");
    }

    #[test]
    fn scope_set_parses_and_renders() {
        let set = ScopeSet::parse("  openid  fhirUser patient/*.read launch/patient ").unwrap();
        assert_eq!(set.len(), 4);
        assert_eq!(
            set.to_string(),
            "openid fhirUser patient/*.read launch/patient"
        );
        assert!(set.contains(&Scope::OpenId));
        assert!(set.contains(&Scope::parse("patient/*.rs").unwrap()));
        assert!(!set.contains(&Scope::parse("patient/*.r").unwrap()));
        assert!(!set.contains(&Scope::Profile));
        assert_eq!(set.iter().count(), 4);
        assert_eq!(ScopeSet::parse("").unwrap(), ScopeSet::new());
        assert!(ScopeSet::parse("   ").unwrap().is_empty());
        assert_eq!("openid".parse::<ScopeSet>().unwrap().len(), 1);
    }

    #[test]
    fn scope_set_drops_equivalent_duplicates() {
        let set = ScopeSet::parse(
            "openid openid patient/*.read patient/*.rs user/X.rs?a=1&b=2 user/X.rs?b=2&a=1",
        )
        .unwrap();
        assert_eq!(set.to_string(), "openid patient/*.read user/X.rs?a=1&b=2");
    }

    #[test]
    fn too_many_scopes_are_refused() {
        let many: Vec<String> = (0..=MAX_SCOPES).map(|i| format!("x{i}")).collect();
        assert_eq!(ScopeSet::parse(&many.join(" ")), Err(ScopeError::TooMany));
        assert!(ScopeSet::parse(&many[..MAX_SCOPES].join(" ")).is_ok());
    }

    #[test]
    fn renders_canonical_v2() {
        assert_eq!(rs("patient/*.read").to_v2_string(), "patient/*.rs");
        assert_eq!(rs("user/X.write").to_v2_string(), "user/X.cud");
        assert_eq!(rs("system/*.*").to_v2_string(), "system/*.cruds");
        let built = ResourceScope::new(Context::Patient, Some("Observation"), Permissions::V1_READ)
            .with_param("code", "http://loinc.org|1234-5")
            .with_param("a&b=c", "50% of \"x\"\\y z=é");
        let text = built.to_string();
        assert_eq!(
            text,
            "patient/Observation.rs?code=http://loinc.org|1234-5&a%26b%3Dc=50%25%20of%20%22x%22%5Cy%20z=%C3%A9"
        );
        assert_eq!(rs(&text), built);
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "patient/*.read",
            "user/Observation.write",
            "system/*.*",
            "patient/Observation.rs?category=laboratory",
            "user/DocumentReference.cruds",
            "openid",
            "launch/patient",
            "launch/encounter",
            "offline_access",
            "online_access",
            "launch",
            "profile",
            "fhirledger.admin",
        ] {
            let scope = Scope::parse(text).unwrap();
            assert_eq!(scope.to_string(), text);
            assert_eq!(Scope::parse(&scope.to_string()).unwrap(), scope);
        }
    }

    #[test]
    fn applies_to_wildcards_and_exact_types() {
        assert!(rs("patient/*.rs").applies_to("Observation"));
        assert!(rs("patient/Observation.rs").applies_to("Observation"));
        assert!(!rs("patient/Observation.rs").applies_to("Patient"));
    }

    mod properties {
        use super::super::*;
        use crate::strategies::resource_scope;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_of_render_is_identity(scope in resource_scope()) {
                let text = scope.to_string();
                prop_assert_eq!(Scope::parse(&text), Ok(Scope::Resource(scope.clone())));
                prop_assert!(ResourceScope::parse(&scope.to_v2_string()).is_ok_and(|s| s.same_grant(&scope)));
            }

            #[test]
            fn parsing_arbitrary_text_never_panics(text in "\\PC{0,40}") {
                let _ = ScopeSet::parse(&text);
            }
        }
    }
}
