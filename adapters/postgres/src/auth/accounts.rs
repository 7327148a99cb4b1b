//! Registered clients, user accounts, the external identities that sign in
//! as them, invitations and browser sessions.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::is_unique_violation;
use super::schema::{
    auth_clients as c, auth_identities as i, auth_invitations as inv, auth_sessions as s,
    auth_users as u,
};
use crate::{PgStore, StoreError};

/// A registered SMART client.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = c)]
pub struct ClientRow {
    pub client_id: String,
    pub name: String,
    /// `public`, `confidential`, `asymmetric` or `backend`.
    pub kind: String,
    pub secret_sha256: Option<Vec<u8>>,
    pub redirect_uris: Vec<String>,
    pub jwks: Option<serde_json::Value>,
    pub jwks_uri: Option<String>,
    /// The most this client may ever be granted.
    pub scope: String,
    pub active: bool,
}

/// A person's account.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = u)]
pub struct UserRow {
    pub user_id: Uuid,
    pub email: String,
    /// `solution-admin`, `hospital-admin`, `doctor`, `patient` or `compliance-officer`.
    pub role: String,
    /// The Organization id the account belongs to (none for solution admins).
    pub organization: Option<String>,
    /// `Patient/…`, `Practitioner/…` or `Person/…`.
    pub fhir_user: Option<String>,
    /// argon2 PHC string, for local (dev) accounts only.
    pub password_hash: Option<String>,
    pub active: bool,
}

impl PgStore {
    /// Registers a client; a taken client id is `Duplicate`.
    pub fn insert_client(&self, client: &ClientRow) -> Result<(), StoreError> {
        diesel::insert_into(c::table)
            .values(client)
            .execute(&mut *self.conn()?)
            .map_err(|e| duplicate(e, "client id"))?;
        Ok(())
    }

    /// Registers a client the server owns (its id fixed), or brings its
    /// registration up to date: the first-party portal, registered by every
    /// process at start-up with the deployment's current public address.
    pub fn upsert_client(&self, client: &ClientRow) -> Result<(), StoreError> {
        diesel::insert_into(c::table)
            .values(client)
            .on_conflict(c::client_id)
            .do_update()
            .set((
                c::name.eq(&client.name),
                c::kind.eq(&client.kind),
                c::secret_sha256.eq(&client.secret_sha256),
                c::redirect_uris.eq(&client.redirect_uris),
                c::scope.eq(&client.scope),
                c::active.eq(client.active),
            ))
            .execute(&mut *self.conn()?)?;
        Ok(())
    }

    pub fn client(&self, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
        Ok(c::table
            .find(client_id)
            .select(ClientRow::as_select())
            .first(&mut *self.conn()?)
            .optional()?)
    }

    pub fn clients(&self) -> Result<Vec<ClientRow>, StoreError> {
        Ok(c::table
            .order(c::created_at)
            .select(ClientRow::as_select())
            .load(&mut *self.conn()?)?)
    }

    /// Creates an account; an email already in use is `Duplicate`.
    pub fn insert_user(&self, user: &UserRow) -> Result<(), StoreError> {
        diesel::insert_into(u::table)
            .values(user)
            .execute(&mut *self.conn()?)
            .map_err(|e| duplicate(e, "email"))?;
        Ok(())
    }

    pub fn user(&self, user_id: Uuid) -> Result<Option<UserRow>, StoreError> {
        Ok(u::table
            .find(user_id)
            .select(UserRow::as_select())
            .first(&mut *self.conn()?)
            .optional()?)
    }

    /// The account with this email (case-insensitive).
    pub fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(u::table
            .filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>("lower(email) = lower(")
                    .bind::<diesel::sql_types::Text, _>(email)
                    .sql(")"),
            )
            .select(UserRow::as_select())
            .first(&mut *self.conn()?)
            .optional()?)
    }

    /// Accounts, optionally of one organisation, oldest first.
    pub fn users(&self, organization: Option<&str>) -> Result<Vec<UserRow>, StoreError> {
        let mut query = u::table
            .order(u::created_at)
            .select(UserRow::as_select())
            .into_boxed();
        if let Some(org) = organization {
            query = query.filter(u::organization.eq(org));
        }
        Ok(query.load(&mut *self.conn()?)?)
    }

    /// The account an external provider's subject signs in as.
    pub fn user_by_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<UserRow>, StoreError> {
        Ok(i::table
            .inner_join(u::table)
            .filter(i::issuer.eq(issuer).and(i::subject.eq(subject)))
            .select(UserRow::as_select())
            .first(&mut *self.conn()?)
            .optional()?)
    }

    /// Links an external subject to an account; a subject already linked is `Duplicate`.
    pub fn link_identity(
        &self,
        issuer: &str,
        subject: &str,
        user_id: Uuid,
    ) -> Result<(), StoreError> {
        diesel::insert_into(i::table)
            .values((
                i::issuer.eq(issuer),
                i::subject.eq(subject),
                i::user_id.eq(user_id),
            ))
            .execute(&mut *self.conn()?)
            .map_err(|e| duplicate(e, "identity"))?;
        Ok(())
    }

    /// Sets (or replaces) a local account's password hash.
    pub fn set_password_hash(&self, user_id: Uuid, hash: &str) -> Result<bool, StoreError> {
        Ok(diesel::update(u::table.find(user_id))
            .set(u::password_hash.eq(hash))
            .execute(&mut *self.conn()?)?
            == 1)
    }

    /// Deactivates an account, ends its sessions and revokes every token
    /// issued to it, in one transaction. False when there is no such active account.
    pub fn deactivate_user(
        &self,
        user_id: Uuid,
        tokens_expire: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let done = conn.transaction(|conn| {
            let changed = diesel::update(u::table.find(user_id).filter(u::active))
                .set((u::active.eq(false), u::deactivated_at.eq(diesel::dsl::now)))
                .execute(conn)?;
            if changed == 0 {
                return Ok::<_, diesel::result::Error>(false);
            }
            diesel::delete(s::table.filter(s::user_id.eq(user_id))).execute(conn)?;
            super::grants::revoke_user_grants(conn, user_id, tokens_expire)?;
            Ok(true)
        })?;
        Ok(done)
    }

    /// Records an invitation to an account.
    pub fn create_invitation(
        &self,
        code_sha256: &[u8],
        user_id: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        diesel::insert_into(inv::table)
            .values((
                inv::code_sha256.eq(code_sha256),
                inv::user_id.eq(user_id),
                inv::expires_at.eq(expires_at),
            ))
            .execute(&mut *self.conn()?)?;
        Ok(())
    }

    /// The account of an unredeemed, unexpired invitation, without using it up.
    pub fn invitation(&self, code_sha256: &[u8]) -> Result<Option<UserRow>, StoreError> {
        Ok(inv::table
            .inner_join(u::table)
            .filter(inv::code_sha256.eq(code_sha256))
            .filter(inv::redeemed_at.is_null())
            .filter(inv::expires_at.gt(diesel::dsl::now))
            .filter(u::active)
            .select(UserRow::as_select())
            .first(&mut *self.conn()?)
            .optional()?)
    }

    /// Redeems an invitation by linking the external subject that signed in
    /// to its account; `None` when the invitation is unknown, used or expired.
    pub fn redeem_invitation(
        &self,
        code_sha256: &[u8],
        issuer: &str,
        subject: &str,
    ) -> Result<Option<UserRow>, StoreError> {
        let mut conn = self.conn()?;
        let user = conn.transaction(|conn| {
            let user_id: Option<Uuid> = diesel::update(
                inv::table
                    .filter(inv::code_sha256.eq(code_sha256))
                    .filter(inv::redeemed_at.is_null())
                    .filter(inv::expires_at.gt(diesel::dsl::now)),
            )
            .set(inv::redeemed_at.eq(diesel::dsl::now))
            .returning(inv::user_id)
            .get_result(conn)
            .optional()?;
            let Some(user_id) = user_id else {
                return Ok::<_, diesel::result::Error>(None);
            };
            diesel::insert_into(i::table)
                .values((
                    i::issuer.eq(issuer),
                    i::subject.eq(subject),
                    i::user_id.eq(user_id),
                ))
                .execute(conn)?;
            u::table
                .find(user_id)
                .filter(u::active)
                .select(UserRow::as_select())
                .first(conn)
                .optional()
        });
        user.map_err(|e| duplicate(e, "identity"))
    }

    /// Starts a browser session.
    pub fn create_session(
        &self,
        id_sha256: &[u8],
        user_id: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        diesel::insert_into(s::table)
            .values((
                s::id_sha256.eq(id_sha256),
                s::user_id.eq(user_id),
                s::expires_at.eq(expires_at),
            ))
            .execute(&mut *self.conn()?)?;
        Ok(())
    }

    /// The active account of a live session.
    pub fn session_user(&self, id_sha256: &[u8]) -> Result<Option<UserRow>, StoreError> {
        Ok(s::table
            .inner_join(u::table)
            .filter(s::id_sha256.eq(id_sha256))
            .filter(s::expires_at.gt(diesel::dsl::now))
            .filter(u::active)
            .select(UserRow::as_select())
            .first(&mut *self.conn()?)
            .optional()?)
    }

    pub fn end_session(&self, id_sha256: &[u8]) -> Result<(), StoreError> {
        diesel::delete(s::table.find(id_sha256)).execute(&mut *self.conn()?)?;
        Ok(())
    }
}

/// Unique violations become `Duplicate(what)`.
fn duplicate(e: diesel::result::Error, what: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Duplicate(what.to_string())
    } else {
        StoreError::Database(e)
    }
}
