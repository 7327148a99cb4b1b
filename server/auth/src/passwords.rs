//! Local password accounts (development only): argon2id hashes in PHC
//! form. A sign-in with an unknown email still runs one hash, so timing
//! does not tell which emails have accounts.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use fhirledger_postgres::auth::UserRow;

use crate::AuthServer;

/// Hashes a password for storage.
pub fn hash(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password failed: {e}"))
}

/// Whether `password` matches a stored PHC hash.
pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// The active local account with this email and password; `Err` when the
/// store cannot be reached.
pub async fn check_login(
    server: &AuthServer,
    email: &str,
    password: &str,
) -> Result<Option<UserRow>, ()> {
    let (email, password) = (email.to_string(), password.to_string());
    server
        .db
        .call(move |store| {
            let user = store.user_by_email(&email).map_err(|_| ())?;
            match user {
                Some(u) if u.active => {
                    let ok = u
                        .password_hash
                        .as_deref()
                        .is_some_and(|h| verify(&password, h));
                    Ok(ok.then_some(u))
                }
                _ => {
                    let _ = hash(&password);
                    Ok(None)
                }
            }
        })
        .await
        .map_err(|_| ())?
}
