//! Failed password sign-ins per account and per client address, and token
//! requests per client (`sign_in_throttle`, keys `account:`, `address:` and
//! `token:`): counted in one statement per attempt, so replicas racing on
//! the same key never lose a count, and a lock set by one is seen by all.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz};

use crate::{PgStore, StoreError};

/// What counting one more failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    /// Failures within the current window, this one included.
    pub failures: i32,
    /// Set when this failure locked the key (it reached the limit).
    pub locked_until: Option<DateTime<Utc>>,
}

/// What counting one more request in a fixed window did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestCount {
    /// Requests within the current window, this one included.
    pub requests: i32,
    /// Whole seconds until the window ends (at least 1).
    pub window_left_seconds: i64,
}

#[derive(QueryableByName)]
struct CountedRequest {
    #[diesel(sql_type = Integer)]
    failures: i32,
    #[diesel(sql_type = BigInt)]
    left: i64,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    until: Option<DateTime<Utc>>,
}

impl PgStore {
    /// The latest lock of any of `keys` still in force.
    pub fn sign_in_locked_until(
        &self,
        keys: &[String],
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(diesel::sql_query(
            "SELECT max(locked_until) AS until FROM sign_in_throttle \
             WHERE key = ANY($1) AND locked_until > now()",
        )
        .bind::<Array<Text>, _>(keys)
        .get_result::<Locked>(&mut *self.conn()?)?
        .until)
    }

    /// Counts a failure of `key`: a new window when the last one is over;
    /// at `max_failures` within `window_seconds` the key is locked for
    /// `lock_seconds` (and its count starts again).
    pub fn sign_in_failed(
        &self,
        key: &str,
        max_failures: i32,
        window_seconds: i64,
        lock_seconds: i64,
    ) -> Result<FailureCount, StoreError> {
        let failures = self.count_request(key, window_seconds)?.requests;
        if failures < max_failures {
            return Ok(FailureCount {
                failures,
                locked_until: None,
            });
        }
        let locked: Locked = diesel::sql_query(
            "UPDATE sign_in_throttle \
             SET locked_until = now() + make_interval(secs => $2), failures = 0, window_start = now() \
             WHERE key = $1 RETURNING locked_until AS until",
        )
        .bind::<Text, _>(key)
        .bind::<BigInt, _>(lock_seconds)
        .get_result(&mut *self.conn()?)?;
        Ok(FailureCount {
            failures,
            locked_until: locked.until,
        })
    }

    /// Counts a request of `key` in a fixed window of `window_seconds` that
    /// starts with the first request after the last window ended. The
    /// caller compares the count with its limit: the count goes on past it,
    /// so the first request over the limit is the one that sees `limit + 1`.
    pub fn count_request(
        &self,
        key: &str,
        window_seconds: i64,
    ) -> Result<RequestCount, StoreError> {
        let counted: CountedRequest = diesel::sql_query(
            "INSERT INTO sign_in_throttle AS t (key, failures, window_start) \
             VALUES ($1, 1, now()) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN t.window_start <= now() - make_interval(secs => $2) \
                               THEN 1 ELSE least(t.failures, 2147483646) + 1 END, \
               window_start = CASE WHEN t.window_start <= now() - make_interval(secs => $2) \
                                   THEN now() ELSE t.window_start END \
             RETURNING failures, greatest(1, ceil(extract(epoch FROM \
               window_start + make_interval(secs => $2) - now())))::bigint AS left",
        )
        .bind::<Text, _>(key)
        .bind::<BigInt, _>(window_seconds)
        .get_result(&mut *self.conn()?)?;
        Ok(RequestCount {
            requests: counted.failures,
            window_left_seconds: counted.left,
        })
    }

    /// A successful sign-in clears its account's count.
    pub fn sign_in_succeeded(&self, key: &str) -> Result<(), StoreError> {
        diesel::sql_query("DELETE FROM sign_in_throttle WHERE key = $1")
            .bind::<Text, _>(key)
            .execute(&mut *self.conn()?)?;
        Ok(())
    }
}
