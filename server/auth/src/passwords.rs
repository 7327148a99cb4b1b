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

/// How a password sign-in went.
#[derive(Debug)]
pub enum Login {
    /// The active account with this email and password.
    Valid(UserRow),
    /// An account with this email exists, but the password is wrong or the
    /// account is inactive: its owner should see the attempt.
    Refused(UserRow),
    /// No account has this email.
    Unknown,
}

/// Checks an email and password; `Err` when the store cannot be reached.
/// An unknown email costs a password hash too, so timing does not tell
/// which emails have accounts.
pub async fn check_login(server: &AuthServer, email: &str, password: &str) -> Result<Login, ()> {
    let (email, password) = (email.to_string(), password.to_string());
    server
        .db
        .call(move |store| {
            let user = store.user_by_email(&email).map_err(|_| ())?;
            match user {
                Some(u) => {
                    let ok = u
                        .password_hash
                        .as_deref()
                        .is_some_and(|h| verify(&password, h));
                    Ok(if ok && u.active {
                        Login::Valid(u)
                    } else {
                        Login::Refused(u)
                    })
                }
                None => {
                    let _ = hash(&password);
                    Ok(Login::Unknown)
                }
            }
        })
        .await
        .map_err(|_| ())?
}
