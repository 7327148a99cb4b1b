//! Background upkeep of each server process: reading revocations other
//! processes wrote, reloading (and when due, rotating) the signing keys,
//! revoking the tokens of newly deactivated hospitals, and dropping expired
//! single-use state (so requests never wait on it).

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Instant;

use crate::keys::RELOAD_EVERY;
use crate::revocation::SYNC_EVERY;
use crate::AuthServer;

/// How often expired authorization requests and assertion `jti`s are dropped.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Stops the upkeep thread when dropped.
pub struct Maintenance {
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the upkeep thread.
pub fn start(server: Arc<AuthServer>) -> Maintenance {
    let (stop, stopped) = channel::<()>();
    let thread = std::thread::Builder::new()
        .name("auth-maintenance".into())
        .spawn(move || {
            let mut keys_checked = Instant::now();
            let mut purged = Instant::now();
            let mut deactivated_hospitals = std::collections::BTreeSet::new();
            loop {
                match stopped.recv_timeout(SYNC_EVERY) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                if let Err(e) = server.revocations.sync(server.db.store()) {
                    tracing::warn!(error = %e, "reading revocations failed");
                }
                crate::hospitals::revoke_newly_deactivated(
                    &server,
                    &mut deactivated_hospitals,
                );
                if purged.elapsed() >= PURGE_EVERY {
                    purged = Instant::now();
                    match server.db.store().forget_expired_auth_state() {
                        Ok(n) => tracing::debug!(rows = n, "dropped expired authorization state"),
                        Err(e) => tracing::warn!(error = %e, "dropping expired authorization state failed"),
                    }
                }
                if keys_checked.elapsed() >= RELOAD_EVERY {
                    keys_checked = Instant::now();
                    let s = &server.settings;
                    if let Err(e) = server.keys.maintain(s.key_rotation, s.longest_token()) {
                        tracing::warn!(error = %e, "signing key upkeep failed");
                    }
                }
            }
        })
        .map_err(|e| tracing::error!(error = %e, "cannot start the authorization upkeep thread"))
        .ok();
    Maintenance {
        stop: Some(stop),
        thread,
    }
}
