//! SQL text with numbered parameters, built piece by piece, and the values bound to them.

use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, OnceLock};

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Integer, Text, Timestamptz, Untyped};
use diesel::{QueryResult, RunQueryDsl};

use crate::index::pg_text;
use crate::prepared::{no_value, push_numbered};

/// A value bound to a `$n` parameter.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    Texts(Vec<String>),
    Ints(Vec<i32>),
    BigInt(i64),
    BigInts(Vec<i64>),
    Instant(DateTime<Utc>),
}

/// SQL under construction: every value goes through [`Sql::bind`], never into the text.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
    aliases: usize,
    /// Common table expressions the statement starts with, by what they compute: a
    /// value every criterion of the statement needs (the reader's references) is
    /// planned and evaluated once, not once per criterion.
    ctes: Vec<(String, String)>,
}

impl Sql {
    /// Adds a parameter and returns its placeholder.
    pub fn bind(&mut self, value: Bind) -> String {
        let value = match value {
            Bind::Text(s) => Bind::Text(pg_text(&s)),
            Bind::Texts(v) => Bind::Texts(v.iter().map(|s| pg_text(s)).collect()),
            other => other,
        };
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    pub fn text(&mut self, value: impl Into<String>) -> String {
        self.bind(Bind::Text(value.into()))
    }

    /// A parameter key, written into the statement: keys come from the registry, never
    /// from a client, and as literals they let a cached generic plan use the column's
    /// statistics for that parameter.
    pub fn key(&mut self, key: i32) -> String {
        key.to_string()
    }

    /// A resource type name, written into the statement when it is a plain name (all
    /// hosted types are), for the same reason as [`Sql::key`]; bound otherwise.
    pub fn type_name(&mut self, name: &str) -> String {
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            format!("'{name}'")
        } else {
            self.text(name)
        }
    }

    pub fn instant(&mut self, value: DateTime<Utc>) -> String {
        self.bind(Bind::Instant(value))
    }

    /// A fresh table alias with the given stem, unique within the statement.
    pub fn alias(&mut self, stem: &str) -> String {
        self.aliases += 1;
        format!("{stem}{}", self.aliases)
    }

    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// The name of the common table expression computing `key`, added with the body
    /// `body` builds the first time the statement asks for it.
    pub fn common(&mut self, key: &str, body: impl FnOnce(&mut Sql) -> String) -> String {
        if let Some(at) = self.ctes.iter().position(|(k, _)| k == key) {
            return format!("w{at}");
        }
        let body = body(self);
        let name = format!("w{}", self.ctes.len());
        self.ctes.push((key.to_string(), body));
        name
    }

    /// The statement text with its `WITH` clause (when it has one) in front.
    fn statement(&self) -> Cow<'_, str> {
        if self.ctes.is_empty() {
            return Cow::Borrowed(&self.text);
        }
        let with: Vec<String> = self
            .ctes
            .iter()
            .enumerate()
            .map(|(at, (_, body))| format!("w{at} AS MATERIALIZED ({body})"))
            .collect();
        Cow::Owned(format!("WITH {} {}", with.join(", "), self.text))
    }

    /// Moves the `WITH` clause into the text, for wrapping the whole statement
    /// (`EXPLAIN …`).
    pub fn hoist_common(&mut self) {
        self.text = self.statement().into_owned();
        self.ctes.clear();
    }

    /// The statement ready to run, as a prepared statement the connection keeps when its
    /// shape is one of the first [`MAX_CACHED_SHAPES`] seen: searches of one shape then skip
    /// parsing and, once PostgreSQL settles on a generic plan, planning too (planning a
    /// search with several criteria costs more than running it).
    pub fn query(&self) -> CachedQuery<'_> {
        let text = self.statement();
        CachedQuery {
            cacheable: cacheable_shape(&text),
            text,
            binds: &self.binds,
        }
    }
}

/// Distinct statement texts kept prepared per connection at most; searches of other
/// shapes are planned each time. Bounds what a client inventing new shapes can make every
/// pooled connection hold.
pub(crate) const MAX_CACHED_SHAPES: usize = 512;

fn cacheable_shape(text: &str) -> bool {
    static SHAPES: OnceLock<Mutex<HashSet<u64>>> = OnceLock::new();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    let shape = hasher.finish();
    let Ok(mut shapes) = SHAPES.get_or_init(Default::default).lock() else {
        return false;
    };
    if shapes.contains(&shape) {
        return true;
    }
    if shapes.len() < MAX_CACHED_SHAPES {
        shapes.insert(shape);
        return true;
    }
    false
}

/// [`Sql`] as a diesel query. Its `$n` placeholders are handed to diesel one by one, in
/// the order they appear ([`push_numbered`]), so diesel numbers them itself and may cache
/// the statement.
pub(crate) struct CachedQuery<'a> {
    text: Cow<'a, str>,
    binds: &'a [Bind],
    cacheable: bool,
}

impl QueryId for CachedQuery<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for CachedQuery<'_> {
    type SqlType = Untyped;
}

impl<Conn> RunQueryDsl<Conn> for CachedQuery<'_> {}

impl QueryFragment<Pg> for CachedQuery<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if !self.cacheable {
            out.unsafe_to_cache_prepared();
        }
        push_numbered(&self.text, out, |number, mut out| {
            match self
                .binds
                .get(number.wrapping_sub(1))
                .ok_or_else(|| no_value(number))?
            {
                Bind::Text(v) => out.push_bind_param::<Text, _>(v),
                Bind::Texts(v) => out.push_bind_param::<Array<Text>, _>(v),
                Bind::Ints(v) => out.push_bind_param::<Array<Integer>, _>(v),
                Bind::BigInt(v) => out.push_bind_param::<BigInt, _>(v),
                Bind::BigInts(v) => out.push_bind_param::<Array<BigInt>, _>(v),
                Bind::Instant(v) => out.push_bind_param::<Timestamptz, _>(v),
            }
        })
    }
}

/// Escapes `%`, `_` and `\` so `s` matches literally inside a LIKE pattern.
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
