//! Token signing keys.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::auth_signing_keys as k;
use crate::{PgStore, StoreError};

/// One signing key: its private half as PEM and its public half as a JWK.
#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = k)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub private_pem: String,
    pub public_jwk: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl PgStore {
    /// Every key still published, newest first.
    pub fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, StoreError> {
        Ok(k::table
            .order(k::created_at.desc())
            .load(&mut *self.conn()?)?)
    }

    /// Adds a key and retires every other one (they stay published until
    /// `forget_keys_retired_before` drops them).
    pub fn rotate_signing_key(&self, key: &SigningKeyRow) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|c| {
            diesel::update(k::table.filter(k::retired_at.is_null()))
                .set(k::retired_at.eq(key.created_at))
                .execute(c)?;
            diesel::insert_into(k::table).values(key).execute(c)?;
            Ok::<_, diesel::result::Error>(())
        })?;
        Ok(())
    }

    /// Drops keys retired before `cutoff`: no live token is signed by them.
    pub fn forget_keys_retired_before(&self, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
        Ok(
            diesel::delete(k::table.filter(k::retired_at.lt(cutoff)))
                .execute(&mut *self.conn()?)?,
        )
    }
}
