//! Grants, rotating refresh tokens, backend assertion `jti`s and the
//! revocation list.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::PgConnection;
use uuid::Uuid;

use super::schema::{
    auth_client_assertions as a, auth_grants as g, auth_refresh_tokens as rt,
    auth_revocations as rv,
};
use crate::{PgStore, StoreError};

/// What was granted to a client, for a user (none for backend clients).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = g)]
pub struct GrantRow {
    pub grant_id: Uuid,
    pub client_id: String,
    pub user_id: Option<Uuid>,
    pub scope: String,
    /// The patient in context (`launch/patient` or an EHR launch), as an id.
    pub patient: Option<String>,
    pub need_patient_banner: bool,
}

/// A refresh token's row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rt)]
struct RefreshRow {
    grant_id: Uuid,
    scope: String,
    expires_at: Option<DateTime<Utc>>,
    used_at: Option<DateTime<Utc>>,
}

/// A live refresh token, seen without being used.
#[derive(Debug, Clone)]
pub struct LiveRefresh {
    pub grant: GrantRow,
    pub scope: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The outcome of presenting a refresh token.
#[derive(Debug)]
pub enum RefreshUse {
    /// Live: its grant and the scope it carries.
    Live { grant: GrantRow, scope: String },
    /// Used before: its grant has now been revoked.
    Reused,
    /// Unknown, expired or of a revoked grant.
    Invalid,
}

/// One entry of the revocation list.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rv)]
pub struct RevocationRow {
    pub seq: i64,
    /// `token` (a jti), `grant`, `user` or `client`.
    pub kind: String,
    pub subject: String,
    pub revoked_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl PgStore {
    pub fn grant(&self, grant_id: Uuid) -> Result<Option<GrantRow>, StoreError> {
        Ok(g::table
            .find(grant_id)
            .select(GrantRow::as_select())
            .first(&mut *self.conn()?)
            .optional()?)
    }

    /// Revokes a grant and everything issued from it; false when already revoked.
    pub fn revoke_grant(
        &self,
        grant_id: Uuid,
        tokens_expire: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        Ok(conn.transaction(|c| revoke_grant_in(c, grant_id, tokens_expire))?)
    }

    pub fn create_refresh_token(
        &self,
        token_sha256: &[u8],
        grant_id: Uuid,
        scope: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        insert_refresh(
            &mut *self.conn()?,
            token_sha256,
            grant_id,
            scope,
            expires_at,
        )?;
        Ok(())
    }

    /// Looks at a refresh token without using it up (the caller checks the
    /// requested scope first, so a refused narrowing does not burn the token).
    /// A token used before revokes its grant.
    pub fn refresh_token(
        &self,
        token_sha256: &[u8],
        tokens_expire: DateTime<Utc>,
    ) -> Result<RefreshUse, StoreError> {
        let mut conn = self.conn()?;
        let found: Option<RefreshRow> = rt::table
            .find(token_sha256)
            .select(RefreshRow::as_select())
            .first(&mut *conn)
            .optional()?;
        let Some(RefreshRow {
            grant_id,
            scope,
            expires_at,
            used_at,
        }) = found
        else {
            return Ok(RefreshUse::Invalid);
        };
        if used_at.is_some() {
            conn.transaction(|c| revoke_grant_in(c, grant_id, tokens_expire))?;
            return Ok(RefreshUse::Reused);
        }
        if expires_at.is_some_and(|at| at <= Utc::now()) {
            return Ok(RefreshUse::Invalid);
        }
        let grant: Option<GrantRow> = g::table
            .find(grant_id)
            .filter(g::revoked_at.is_null())
            .select(GrantRow::as_select())
            .first(&mut *conn)
            .optional()?;
        Ok(match grant {
            Some(grant) => RefreshUse::Live { grant, scope },
            None => RefreshUse::Invalid,
        })
    }

    /// A live refresh token's grant and scope, without touching it (for
    /// introspection and revocation).
    pub fn peek_refresh_token(
        &self,
        token_sha256: &[u8],
    ) -> Result<Option<LiveRefresh>, StoreError> {
        let mut conn = self.conn()?;
        let found: Option<RefreshRow> = rt::table
            .find(token_sha256)
            .filter(rt::used_at.is_null())
            .select(RefreshRow::as_select())
            .first(&mut *conn)
            .optional()?;
        let Some(RefreshRow {
            grant_id,
            scope,
            expires_at,
            ..
        }) = found
        else {
            return Ok(None);
        };
        if expires_at.is_some_and(|at| at <= Utc::now()) {
            return Ok(None);
        }
        let grant: Option<GrantRow> = g::table
            .find(grant_id)
            .filter(g::revoked_at.is_null())
            .select(GrantRow::as_select())
            .first(&mut *conn)
            .optional()?;
        Ok(grant.map(|grant| LiveRefresh {
            grant,
            scope,
            expires_at,
        }))
    }

    /// Uses up `old` and issues `new` in its place. When `old` was used in
    /// the meantime (a race with a thief), the grant is revoked and the
    /// answer is `Reused`.
    pub fn rotate_refresh_token(
        &self,
        old_sha256: &[u8],
        new_sha256: &[u8],
        scope: &str,
        expires_at: Option<DateTime<Utc>>,
        tokens_expire: DateTime<Utc>,
    ) -> Result<RefreshUse, StoreError> {
        let mut conn = self.conn()?;
        Ok(conn.transaction(|c| {
            let grant_id: Option<Uuid> =
                diesel::update(rt::table.find(old_sha256).filter(rt::used_at.is_null()))
                    .set(rt::used_at.eq(diesel::dsl::now))
                    .returning(rt::grant_id)
                    .get_result(c)
                    .optional()?;
            let Some(grant_id) = grant_id else {
                let grant_id: Option<Uuid> = rt::table
                    .find(old_sha256)
                    .select(rt::grant_id)
                    .first(c)
                    .optional()?;
                if let Some(grant_id) = grant_id {
                    revoke_grant_in(c, grant_id, tokens_expire)?;
                    return Ok::<_, diesel::result::Error>(RefreshUse::Reused);
                }
                return Ok(RefreshUse::Invalid);
            };
            let grant: Option<GrantRow> = g::table
                .find(grant_id)
                .filter(g::revoked_at.is_null())
                .select(GrantRow::as_select())
                .first(c)
                .optional()?;
            let Some(grant) = grant else {
                return Ok(RefreshUse::Invalid);
            };
            insert_refresh(c, new_sha256, grant_id, scope, expires_at)?;
            Ok(RefreshUse::Live {
                grant,
                scope: scope.to_string(),
            })
        })?)
    }

    /// Creates a grant on its own (backend services have no code).
    pub fn create_grant(&self, grant: &GrantRow) -> Result<(), StoreError> {
        diesel::insert_into(g::table)
            .values(grant)
            .execute(&mut *self.conn()?)?;
        Ok(())
    }

    /// Remembers a client assertion's `jti` until it expires; false when it
    /// was seen before (a replay).
    pub fn remember_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let inserted = diesel::insert_into(a::table)
            .values((
                a::client_id.eq(client_id),
                a::jti.eq(jti),
                a::expires_at.eq(expires_at),
            ))
            .on_conflict_do_nothing()
            .execute(&mut *conn)?;
        Ok(inserted == 1)
    }

    /// Adds an entry to the revocation list and returns it.
    pub fn add_revocation(
        &self,
        kind: &str,
        subject: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<RevocationRow, StoreError> {
        Ok(insert_revocation(
            &mut *self.conn()?,
            kind,
            subject,
            expires_at,
        )?)
    }

    /// Revocations after `seq` that have not expired, oldest first.
    pub fn revocations_since(&self, seq: i64) -> Result<Vec<RevocationRow>, StoreError> {
        let mut conn = self.conn()?;
        diesel::delete(rv::table.filter(rv::expires_at.lt(diesel::dsl::now)))
            .execute(&mut *conn)?;
        Ok(rv::table
            .filter(rv::seq.gt(seq))
            .order(rv::seq)
            .select(RevocationRow::as_select())
            .load(&mut *conn)?)
    }
}

fn insert_refresh(
    conn: &mut PgConnection,
    token_sha256: &[u8],
    grant_id: Uuid,
    scope: &str,
    expires_at: Option<DateTime<Utc>>,
) -> QueryResult<usize> {
    diesel::insert_into(rt::table)
        .values((
            rt::token_sha256.eq(token_sha256),
            rt::grant_id.eq(grant_id),
            rt::scope.eq(scope),
            rt::expires_at.eq(expires_at),
        ))
        .execute(conn)
}

fn insert_revocation(
    conn: &mut PgConnection,
    kind: &str,
    subject: &str,
    expires_at: DateTime<Utc>,
) -> QueryResult<RevocationRow> {
    diesel::insert_into(rv::table)
        .values((
            rv::kind.eq(kind),
            rv::subject.eq(subject),
            rv::expires_at.eq(expires_at),
        ))
        .returning(RevocationRow::as_returning())
        .get_result(conn)
}

/// Marks a grant revoked and lists it for every server process; false when
/// it was revoked already.
pub(super) fn revoke_grant_in(
    conn: &mut PgConnection,
    grant_id: Uuid,
    tokens_expire: DateTime<Utc>,
) -> QueryResult<bool> {
    let changed = diesel::update(g::table.find(grant_id).filter(g::revoked_at.is_null()))
        .set(g::revoked_at.eq(diesel::dsl::now))
        .execute(conn)?;
    if changed == 1 {
        insert_revocation(conn, "grant", &grant_id.to_string(), tokens_expire)?;
    }
    Ok(changed == 1)
}

/// Revokes every grant of a user and every token issued to them so far.
pub(super) fn revoke_user_grants(
    conn: &mut PgConnection,
    user_id: Uuid,
    tokens_expire: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(
        g::table
            .filter(g::user_id.eq(user_id))
            .filter(g::revoked_at.is_null()),
    )
    .set(g::revoked_at.eq(diesel::dsl::now))
    .execute(conn)?;
    insert_revocation(conn, "user", &user_id.to_string(), tokens_expire)?;
    Ok(())
}
