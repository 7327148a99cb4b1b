//! Failed password sign-ins are limited per account (a password cannot be
//! guessed by trying) and per client address (one address cannot try many
//! accounts): past the limit within the window, the account or address is
//! locked for the window's length, and every attempt meanwhile is refused
//! with 429 and `Retry-After` before any password is checked. The counts
//! live in the database, so a deployment's replicas share them. The lock
//! itself and each refused attempt are security events in the trail (the
//! account's owner sees them in their log).

use chrono::{DateTime, Utc};

use crate::AuthServer;

/// The keys an attempt counts against.
pub(crate) struct Keys {
    account: String,
    address: Option<String>,
}

impl Keys {
    pub(crate) fn of(email: &str, address: Option<&str>) -> Keys {
        Keys {
            account: format!("account:{}", email.trim().to_lowercase()),
            address: address.map(|a| format!("address:{a}")),
        }
    }

    fn all(&self) -> Vec<String> {
        std::iter::once(self.account.clone())
            .chain(self.address.clone())
            .collect()
    }
}

/// What a failure locked, if anything.
pub(crate) struct Lock {
    pub(crate) until: DateTime<Utc>,
    /// "account" or "address".
    pub(crate) what: &'static str,
    pub(crate) failures: i32,
}

/// Until when the attempt's account or address is locked, if it is.
pub(crate) async fn locked_until(
    server: &AuthServer,
    keys: &Keys,
) -> Result<Option<DateTime<Utc>>, ()> {
    let all = keys.all();
    match server
        .db
        .call(move |store| store.sign_in_locked_until(&all))
        .await
    {
        Ok(Ok(until)) => Ok(until),
        _ => Err(()),
    }
}

/// Counts a failed attempt against its account and address; the lock it
/// set, if it reached a limit.
pub(crate) async fn failed(server: &AuthServer, keys: &Keys) -> Result<Option<Lock>, ()> {
    let limits = server.settings.sign_in_limits;
    let window = limits.window.num_seconds().max(1);
    let mut counted: Vec<(String, i32, &'static str)> =
        vec![(keys.account.clone(), limits.per_account, "account")];
    if let Some(address) = &keys.address {
        counted.push((address.clone(), limits.per_address, "address"));
    }
    let outcome = server
        .db
        .call(move |store| {
            let mut lock = None;
            for (key, max, what) in counted {
                let count = store.sign_in_failed(&key, max, window, window)?;
                if let Some(until) = count.locked_until {
                    lock = Some(Lock {
                        until,
                        what,
                        failures: count.failures,
                    });
                }
            }
            Ok::<_, fhirledger_postgres::StoreError>(lock)
        })
        .await;
    match outcome {
        Ok(Ok(lock)) => Ok(lock),
        _ => Err(()),
    }
}

/// A successful sign-in clears its account's count (not its address's).
pub(crate) async fn succeeded(server: &AuthServer, keys: &Keys) {
    let account = keys.account.clone();
    if let Ok(Err(e)) = server
        .db
        .call(move |store| store.sign_in_succeeded(&account))
        .await
    {
        tracing::warn!(error = %e, "clearing a sign-in failure count failed");
    }
}

/// Whole seconds from now until `until`, at least one (`Retry-After`).
pub(crate) fn seconds_until(until: DateTime<Utc>) -> i64 {
    (until - Utc::now()).num_seconds().max(1)
}
