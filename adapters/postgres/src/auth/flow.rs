//! The authorization code flow's short-lived state: authorization requests,
//! EHR launch values and authorization codes.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::grants::{revoke_grant_in, GrantRow};
use super::schema::{auth_codes as code, auth_grants as g, auth_launches as l, auth_requests as r};
use crate::{PgStore, StoreError};

/// An authorization request in progress.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = r)]
pub struct AuthRequestRow {
    /// The validated request, as the server serialised it.
    pub request: serde_json::Value,
    /// The browser session that signed in for it.
    pub session_sha256: Option<Vec<u8>>,
    /// The patient picked for it.
    pub patient: Option<String>,
    /// An external sign-in in progress (state, nonce, PKCE verifier).
    pub pending_login: Option<serde_json::Value>,
}

/// An EHR launch value.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = l)]
pub struct LaunchRow {
    pub patient: String,
    pub user_id: Uuid,
}

/// What an authorization code was issued for.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = code)]
pub struct CodeRow {
    pub grant_id: Uuid,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// The outcome of presenting a code.
#[derive(Debug)]
pub enum CodeUse {
    /// First use, not expired: the code and the grant it belongs to.
    Fresh(Box<(CodeRow, GrantRow)>),
    /// Used before: its grant has now been revoked.
    Replayed,
    /// Unknown or expired.
    Invalid,
}

impl PgStore {
    pub fn create_auth_request(
        &self,
        id_sha256: &[u8],
        request: &serde_json::Value,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        diesel::insert_into(r::table)
            .values((
                r::id_sha256.eq(id_sha256),
                r::request.eq(request),
                r::expires_at.eq(expires_at),
            ))
            .execute(&mut *self.conn()?)?;
        Ok(())
    }

    /// A live authorization request.
    pub fn auth_request(&self, id_sha256: &[u8]) -> Result<Option<AuthRequestRow>, StoreError> {
        Ok(r::table
            .find(id_sha256)
            .filter(r::expires_at.gt(diesel::dsl::now))
            .select(AuthRequestRow::as_select())
            .first(&mut *self.conn()?)
            .optional()?)
    }

    /// Binds a request to the browser session that signed in for it.
    pub fn bind_auth_request(
        &self,
        id_sha256: &[u8],
        session_sha256: &[u8],
    ) -> Result<(), StoreError> {
        diesel::update(r::table.find(id_sha256))
            .set(r::session_sha256.eq(session_sha256))
            .execute(&mut *self.conn()?)?;
        Ok(())
    }

    pub fn set_auth_request_patient(
        &self,
        id_sha256: &[u8],
        patient: &str,
    ) -> Result<(), StoreError> {
        diesel::update(r::table.find(id_sha256))
            .set(r::patient.eq(patient))
            .execute(&mut *self.conn()?)?;
        Ok(())
    }

    pub fn set_pending_login(
        &self,
        id_sha256: &[u8],
        pending: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        diesel::update(r::table.find(id_sha256))
            .set(r::pending_login.eq(pending))
            .execute(&mut *self.conn()?)?;
        Ok(())
    }

    /// Removes a finished request; true when it was there.
    pub fn finish_auth_request(&self, id_sha256: &[u8]) -> Result<bool, StoreError> {
        Ok(diesel::delete(r::table.find(id_sha256)).execute(&mut *self.conn()?)? == 1)
    }

    /// Drops what has expired of the single-use state nobody will redeem:
    /// authorization requests never finished and client assertion `jti`s
    /// (an expired assertion is refused before its `jti` is looked at).
    /// Run by each process's upkeep thread, never on a request's path.
    pub fn forget_expired_auth_state(&self) -> Result<usize, StoreError> {
        use super::schema::auth_client_assertions as a;
        let mut conn = self.conn()?;
        let requests = diesel::delete(r::table.filter(r::expires_at.lt(diesel::dsl::now)))
            .execute(&mut *conn)?;
        let assertions = diesel::delete(a::table.filter(a::expires_at.lt(diesel::dsl::now)))
            .execute(&mut *conn)?;
        Ok(requests + assertions)
    }

    pub fn create_launch(
        &self,
        launch_sha256: &[u8],
        patient: &str,
        user_id: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        diesel::insert_into(l::table)
            .values((
                l::launch_sha256.eq(launch_sha256),
                l::patient.eq(patient),
                l::user_id.eq(user_id),
                l::expires_at.eq(expires_at),
            ))
            .execute(&mut *self.conn()?)?;
        Ok(())
    }

    /// Uses up a launch value; `None` when unknown, used or expired.
    pub fn take_launch(&self, launch_sha256: &[u8]) -> Result<Option<LaunchRow>, StoreError> {
        Ok(diesel::update(
            l::table
                .find(launch_sha256)
                .filter(l::used_at.is_null())
                .filter(l::expires_at.gt(diesel::dsl::now)),
        )
        .set(l::used_at.eq(diesel::dsl::now))
        .returning(LaunchRow::as_returning())
        .get_result(&mut *self.conn()?)
        .optional()?)
    }

    /// Creates a grant and its authorization code together.
    pub fn create_grant_with_code(
        &self,
        grant: &GrantRow,
        code_sha256: &[u8],
        redirect_uri: &str,
        code_challenge: &str,
        nonce: Option<&str>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|c| {
            diesel::insert_into(g::table).values(grant).execute(c)?;
            diesel::insert_into(code::table)
                .values((
                    code::code_sha256.eq(code_sha256),
                    code::grant_id.eq(grant.grant_id),
                    code::redirect_uri.eq(redirect_uri),
                    code::code_challenge.eq(code_challenge),
                    code::nonce.eq(nonce),
                    code::expires_at.eq(expires_at),
                ))
                .execute(c)?;
            Ok::<_, diesel::result::Error>(())
        })?;
        Ok(())
    }

    /// Uses up a code. A code presented a second time revokes its grant (and
    /// so every token issued from it), as RFC 6749 §4.1.2 advises.
    pub fn use_code(
        &self,
        code_sha256: &[u8],
        tokens_expire: DateTime<Utc>,
    ) -> Result<CodeUse, StoreError> {
        let mut conn = self.conn()?;
        let outcome = conn.transaction(|c| {
            let fresh: Option<CodeRow> = diesel::update(
                code::table
                    .find(code_sha256)
                    .filter(code::used_at.is_null()),
            )
            .set(code::used_at.eq(diesel::dsl::now))
            .returning(CodeRow::as_returning())
            .get_result(c)
            .optional()?;
            match fresh {
                Some(row) if row.expires_at > Utc::now() => {
                    let grant = g::table
                        .find(row.grant_id)
                        .filter(g::revoked_at.is_null())
                        .select(GrantRow::as_select())
                        .first(c)
                        .optional()?;
                    Ok::<_, diesel::result::Error>(match grant {
                        Some(grant) => CodeUse::Fresh(Box::new((row, grant))),
                        None => CodeUse::Invalid,
                    })
                }
                Some(_) => Ok(CodeUse::Invalid),
                None => {
                    let used: Option<Uuid> = code::table
                        .find(code_sha256)
                        .select(code::grant_id)
                        .first(c)
                        .optional()?;
                    match used {
                        Some(grant_id) => {
                            revoke_grant_in(c, grant_id, tokens_expire)?;
                            Ok(CodeUse::Replayed)
                        }
                        None => Ok(CodeUse::Invalid),
                    }
                }
            }
        })?;
        Ok(outcome)
    }
}
