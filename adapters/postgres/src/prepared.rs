//! Hand-written SQL that PostgreSQL may keep prepared. diesel's `sql_query`
//! marks every statement unsafe to cache, so each execution is parsed,
//! analysed and planned again; for the write path's one-statement version
//! inserts (a dozen CTEs) that was about 15 % of the machine's CPU under
//! creates (BENCHMARKS.md, issue 12). [`PreparedSql`] carries the same text
//! and typed binds, and lets diesel's per-connection statement cache keep it,
//! keyed by its text, as the search path's `CachedQuery` does.

use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::{QueryResult, RunQueryDsl};

/// One bound value with its SQL type.
trait BindValue: Send {
    fn push<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

struct Typed<ST, T> {
    value: T,
    sql_type: PhantomData<fn() -> ST>,
}

impl<ST, T> BindValue for Typed<ST, T>
where
    Pg: HasSqlType<ST>,
    T: ToSql<ST, Pg> + Send,
{
    fn push<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, T>(&self.value)
    }
}

/// SQL text with `$n` placeholders and their values, bound in number order
/// like `sql_query(…).bind(…)`.
pub(crate) struct PreparedSql {
    text: String,
    binds: Vec<Box<dyn BindValue>>,
}

impl PreparedSql {
    pub(crate) fn new(text: impl Into<String>) -> PreparedSql {
        PreparedSql {
            text: text.into(),
            binds: Vec::new(),
        }
    }

    /// The value of the next placeholder number.
    pub(crate) fn bind<ST, T>(mut self, value: T) -> PreparedSql
    where
        ST: 'static,
        Pg: HasSqlType<ST>,
        T: ToSql<ST, Pg> + Send + 'static,
    {
        self.binds.push(Box::new(Typed::<ST, T> {
            value,
            sql_type: PhantomData,
        }));
        self
    }
}

impl QueryId for PreparedSql {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for PreparedSql {
    type SqlType = Untyped;
}

impl<Conn> RunQueryDsl<Conn> for PreparedSql {}

impl QueryFragment<Pg> for PreparedSql {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        push_numbered(&self.text, out, |number, out| {
            self.binds
                .get(number.wrapping_sub(1))
                .ok_or_else(|| no_value(number))?
                .push(out)
        })
    }
}

/// Pushes `text` with each `$n` handed to `bind` as the n-th value, so diesel
/// numbers the parameters itself (a number used twice is bound twice) and
/// may cache the statement. A `$` not followed by digits stays text.
pub(crate) fn push_numbered<'b>(
    text: &'b str,
    mut out: AstPass<'_, 'b, Pg>,
    mut bind: impl FnMut(usize, AstPass<'_, 'b, Pg>) -> QueryResult<()>,
) -> QueryResult<()> {
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        let digits = rest[at + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let Ok(number) = rest[at + 1..at + 1 + digits].parse::<usize>() else {
            out.push_sql(&rest[..=at]);
            rest = &rest[at + 1..];
            continue;
        };
        out.push_sql(&rest[..at]);
        bind(number, out.reborrow())?;
        rest = &rest[at + 1 + digits..];
    }
    out.push_sql(rest);
    Ok(())
}

/// A placeholder without its value.
pub(crate) fn no_value(number: usize) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(format!("no value for ${number}").into())
}
