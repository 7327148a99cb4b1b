//! SQL text with numbered parameters, built piece by piece, and the values bound to them.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, BigInt, Integer, Text, Timestamptz};

use crate::index::pg_text;

/// A value bound to a `$n` parameter.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    Texts(Vec<String>),
    Int(i32),
    Ints(Vec<i32>),
    BigInt(i64),
    Instant(DateTime<Utc>),
}

/// SQL under construction: every value goes through [`Sql::bind`], never into the text.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
    aliases: usize,
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

    pub fn int(&mut self, value: i32) -> String {
        self.bind(Bind::Int(value))
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

    /// The statement ready to run.
    pub fn query(&self) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        let mut query = diesel::sql_query(self.text.clone()).into_boxed();
        for bind in &self.binds {
            query = match bind.clone() {
                Bind::Text(v) => query.bind::<Text, _>(v),
                Bind::Texts(v) => query.bind::<Array<Text>, _>(v),
                Bind::Int(v) => query.bind::<Integer, _>(v),
                Bind::Ints(v) => query.bind::<Array<Integer>, _>(v),
                Bind::BigInt(v) => query.bind::<BigInt, _>(v),
                Bind::Instant(v) => query.bind::<Timestamptz, _>(v),
            };
        }
        query
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
