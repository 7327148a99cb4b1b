//! The revocation list every server process holds in memory. Revoking writes
//! a row and updates this process's list in the same call, so the very next
//! request here sees it; other processes of a deployment pick it up on their
//! next sync (every [`SYNC_EVERY`]). Entries are dropped once every token
//! they could affect has expired.

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use fhirledger_postgres::auth::RevocationRow;
use fhirledger_postgres::{PgStore, StoreError};

use crate::claims::AccessClaims;

/// How often each process reads new revocations written by others.
pub const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Default)]
struct Entries {
    last_seq: i64,
    /// (kind, subject) → (revoked at, expires at).
    by_subject: HashMap<(String, String), (DateTime<Utc>, DateTime<Utc>)>,
}

/// Tokens, grants, users and clients revoked.
#[derive(Default)]
pub struct RevocationList {
    entries: RwLock<Entries>,
}

impl RevocationList {
    /// Reads revocations this process has not seen yet.
    pub fn sync(&self, store: &PgStore) -> Result<(), StoreError> {
        let since = self.read().last_seq;
        let rows = store.revocations_since(since)?;
        self.apply(&rows);
        Ok(())
    }

    /// The newest revocation this process knows.
    pub fn last_seq(&self) -> i64 {
        self.read().last_seq
    }

    /// Records revocations (written by this process or read from the store).
    pub fn apply(&self, rows: &[RevocationRow]) {
        if rows.is_empty() {
            return;
        }
        let now = Utc::now();
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.by_subject.retain(|_, (_, expires)| *expires > now);
        for row in rows {
            entries.last_seq = entries.last_seq.max(row.seq);
            entries.by_subject.insert(
                (row.kind.clone(), row.subject.clone()),
                (row.revoked_at, row.expires_at),
            );
        }
    }

    /// Whether a token was revoked: itself, its grant, or everything its
    /// user, client or hospital held when they were revoked.
    pub fn is_revoked(&self, claims: &AccessClaims) -> bool {
        let entries = self.read();
        if entries.by_subject.is_empty() {
            return false;
        }
        let hit = |kind: &str, subject: &str| {
            entries
                .by_subject
                .contains_key(&(kind.to_string(), subject.to_string()))
        };
        let before = |kind: &str, subject: &str| {
            entries
                .by_subject
                .get(&(kind.to_string(), subject.to_string()))
                .is_some_and(|(at, _)| claims.iat <= at.timestamp())
        };
        hit("token", &claims.jti)
            || claims.grant.as_deref().is_some_and(|g| hit("grant", g))
            || before("user", &claims.sub)
            || before("client", &claims.client_id)
            || claims
                .org
                .as_deref()
                .is_some_and(|o| before("organization", o))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }
}
