//! News for live pages: every process follows the Merkle log's head and
//! tells its subscribers what the new leaves were about (which patients'
//! data was accessed, which readers a Consent change concerns), so a
//! patient's open access log or a doctor's open list of patients refreshes
//! without a reload. News carries no data, only whom it concerns; the page
//! that refreshes reads through the access decision like any other.
//!
//! The log is the feed because it is the one record of accesses and
//! Consent changes in commit order, with gapless indexes, across every
//! process: following it from the last index seen misses nothing, and a
//! replica sees what another replica's request did. Nothing is read while
//! nobody listens.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use fhirledger_postgres::LogActivity;
use tokio::sync::broadcast;

use crate::Database;

/// How often each process looks at the log's head while someone listens.
/// Leaves get their index within a sequencer tick of their commit, so news
/// reaches a page within about a second of the access.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// The longest stretch of the log read in one look. A bigger one (after a
/// bulk load or an outage) is announced as [`News::Everything`] rather
/// than read.
const MAX_STRETCH: u64 = 20_000;

/// How many looks' news a slow subscriber may fall behind before it is told
/// it lagged (and refreshes anyway).
const BACKLOG: usize = 64;

/// What one look at the log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum News {
    Activity(LogActivity),
    /// Too much happened to say what: every live page refreshes.
    Everything,
}

impl News {
    /// Whether patient `patient_id`'s access log grew by someone else's access.
    pub fn accessed(&self, patient_id: &str) -> bool {
        match self {
            News::Activity(a) => a.accessed_patients.contains(patient_id),
            News::Everything => true,
        }
    }

    /// Whether a Consent change, or a change to a hospital's patients, may
    /// have changed what a reader known by any of `references` (their
    /// Practitioner, their hospital) sees.
    pub fn concerns_reader(&self, references: &[String]) -> bool {
        match self {
            News::Activity(a) => {
                a.consent_for_everyone
                    || references.iter().any(|r| {
                        a.consent_readers.contains(r) || a.roster_organizations.contains(r)
                    })
            }
            News::Everything => true,
        }
    }
}

/// Follows the log on a thread of its own; stops it when dropped.
#[derive(Debug)]
pub struct LiveFeed {
    /// `None` once closed: subscribers' streams end.
    news: std::sync::Mutex<Option<broadcast::Sender<Arc<News>>>>,
    stop: std::sync::Mutex<Option<Sender<()>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LiveFeed {
    /// Starts following the log of `db`, looking every `every` while
    /// anyone listens.
    pub fn start(db: Arc<Database>, every: Duration) -> std::io::Result<LiveFeed> {
        let (news, _) = broadcast::channel(BACKLOG);
        let (stop, stopped) = channel::<()>();
        let sender = news.clone();
        let thread = std::thread::Builder::new()
            .name("live-feed".into())
            .spawn(move || {
                let mut follower = Follower { seen: None };
                loop {
                    match stopped.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => follower.look(&db, &sender),
                        _ => return,
                    }
                }
            })?;
        Ok(LiveFeed {
            news: std::sync::Mutex::new(Some(news)),
            stop: std::sync::Mutex::new(Some(stop)),
            thread: Some(thread),
        })
    }

    /// News from now on; after [`LiveFeed::close`], a receiver that is
    /// already closed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<News>> {
        match &*lock(&self.news) {
            Some(news) => news.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// Ends every subscriber's stream and stops following the log: the
    /// server is stopping, and open live pages must not hold its graceful
    /// shutdown until its timeout (the pages reconnect to another replica,
    /// or say that live updates stopped).
    pub fn close(&self) {
        drop(lock(&self.stop).take());
        drop(lock(&self.news).take());
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for LiveFeed {
    fn drop(&mut self) {
        self.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Follower {
    /// The log size already told, while anyone listens.
    seen: Option<u64>,
}

impl Follower {
    fn look(&mut self, db: &Database, news: &broadcast::Sender<Arc<News>>) {
        if news.receiver_count() == 0 {
            // Nobody to tell: the next listener hears from its own start.
            self.seen = None;
            return;
        }
        let store = db.store();
        let size = match store.log_head() {
            Ok(head) => head.tree_size,
            Err(e) => {
                tracing::warn!(error = %e, "reading the log's head for live pages failed");
                return;
            }
        };
        let Some(seen) = self.seen.replace(size) else {
            return;
        };
        if size <= seen {
            return;
        }
        let found = if size - seen > MAX_STRETCH {
            News::Everything
        } else {
            match store.log_activity(seen, size) {
                Ok(activity) => News::Activity(activity),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the log's news failed; every live page refreshes");
                    News::Everything
                }
            }
        };
        // An error means the last listener left meanwhile: nobody to tell.
        let _ = news.send(Arc::new(found));
    }
}
