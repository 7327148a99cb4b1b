//! `GET /portal/live/{topic}`: server-sent events that tell an open page
//! its content changed, so a patient's access log and a doctor's list of
//! patients update without a reload. An event carries no data: the page's
//! script fetches the page again, through the access decision and the
//! audit like any page view (`assets/portal.js`). Pages work the same
//! without it.
//!
//! Topics: `access-log` (a patient: someone else touched their data) and
//! `patients` (a doctor: a Consent naming them or their hospital changed,
//! or a patient of their hospital was onboarded, changed or removed).
//! News comes from the process's [`LiveFeed`], which follows the Merkle
//! log, so an access served by any replica reaches a page on any other.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use bytes::Bytes;
use fhirledger_access::roles::Role;
use fhirledger_auth::AuthServer;
use fhirledger_service::live::{LiveFeed, News};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use crate::context::PortalContext;
use crate::layout;
use crate::session::Visit;

/// The shortest time between two "changed" events of one stream: a burst of
/// accesses refreshes a page once, not once per access.
const MIN_GAP: Duration = Duration::from_secs(1);
/// How often an idle stream sends a comment, so that proxies keep it open
/// and a session that ended (signed out, revoked, expired) is noticed.
const HEARTBEAT: Duration = Duration::from_secs(20);

/// What a stream watches for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Interest {
    /// Others' accesses to this patient's data.
    AccessLog { patient: String },
    /// Consent changes naming any of these readers.
    Patients { readers: Vec<String> },
}

impl Interest {
    /// The visitor's interest in `topic`, if the topic is theirs.
    fn of(visit: &Visit, topic: &str) -> Option<Interest> {
        let caller = &visit.caller;
        match (topic, visit.role()) {
            ("access-log", Some(Role::Patient)) => Some(Interest::AccessLog {
                patient: caller.patient.clone()?,
            }),
            ("patients", Some(Role::Doctor)) => {
                let readers = [
                    caller
                        .practitioner
                        .as_ref()
                        .map(|id| format!("Practitioner/{id}")),
                    caller
                        .organization
                        .as_ref()
                        .map(|id| format!("Organization/{id}")),
                ];
                Some(Interest::Patients {
                    readers: readers.into_iter().flatten().collect(),
                })
            }
            _ => None,
        }
    }

    fn concerned_by(&self, news: &News) -> bool {
        match self {
            Interest::AccessLog { patient } => news.accessed(patient),
            Interest::Patients { readers } => news.concerns_reader(readers),
        }
    }
}

/// `GET /portal/live/{topic}`.
pub async fn stream(visit: Visit, topic: web::Path<String>) -> HttpResponse {
    let Some(interest) = Interest::of(&visit, &topic) else {
        return layout::problem(
            StatusCode::NOT_FOUND,
            "No such updates",
            "There are no live updates of this kind for your account.",
        );
    };
    let feed: Option<Arc<LiveFeed>> = visit
        .req
        .app_data::<web::Data<PortalContext>>()
        .and_then(|c| c.live.clone());
    let Some(feed) = feed else {
        return layout::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Live updates are off",
            "This server does not send live updates; reload the page to see new entries.",
        );
    };
    let watch = Watch {
        news: feed.subscribe(),
        interest,
        server: visit.server.clone(),
        token: visit.access_token().to_string(),
        opened: false,
        pending: false,
        quiet_until: Instant::now(),
        next_beat: Instant::now() + HEARTBEAT,
    };
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        // Tells nginx not to buffer the stream.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(futures_util::stream::unfold(
            watch,
            |mut watch| async move {
                let event = watch.next_event().await?;
                Some((Ok::<Bytes, Infallible>(event), watch))
            },
        ))
}

/// One open stream.
struct Watch {
    news: broadcast::Receiver<Arc<News>>,
    interest: Interest,
    server: web::Data<AuthServer>,
    /// The session's access token; emptied once the session ended.
    token: String,
    opened: bool,
    /// News of interest arrived that the page has not been told yet.
    pending: bool,
    quiet_until: Instant,
    next_beat: Instant,
}

/// The stream's first bytes: how long the browser waits before it
/// reconnects after a lost connection, and a comment that sends the
/// headers at once.
const OPENING: &[u8] = b"retry: 5000\n: live\n\n";
const CHANGED: &[u8] = b"event: changed\ndata: \n\n";
/// Tells the page the session ended: it stops listening (reconnecting
/// would only meet the sign-in page).
const ENDED: &[u8] = b"event: ended\ndata: \n\n";
const BEAT: &[u8] = b": beat\n\n";

impl Watch {
    /// The next bytes of the stream; `None` ends it.
    async fn next_event(&mut self) -> Option<Bytes> {
        if !self.opened {
            self.opened = true;
            return Some(Bytes::from_static(OPENING));
        }
        if self.token.is_empty() {
            // The session ended and the page was told.
            return None;
        }
        loop {
            let wake = if self.pending {
                self.quiet_until.min(self.next_beat)
            } else {
                self.next_beat
            };
            tokio::select! {
                got = self.news.recv() => match got {
                    Ok(news) => self.pending |= self.interest.concerned_by(&news),
                    // Fell behind: what was missed may have concerned us.
                    Err(RecvError::Lagged(_)) => self.pending = true,
                    // The server is stopping.
                    Err(RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep_until(wake) => {
                    if !self.session_live() {
                        self.token.clear();
                        return Some(Bytes::from_static(ENDED));
                    }
                    let now = Instant::now();
                    if self.pending && now >= self.quiet_until {
                        self.pending = false;
                        self.quiet_until = now + MIN_GAP;
                        self.next_beat = now + HEARTBEAT;
                        return Some(Bytes::from_static(CHANGED));
                    }
                    if now >= self.next_beat {
                        self.next_beat = now + HEARTBEAT;
                        return Some(Bytes::from_static(BEAT));
                    }
                }
            }
        }
    }

    /// Whether the session's token still holds (not expired, not revoked):
    /// the same check as every page's.
    fn session_live(&self) -> bool {
        fhirledger_auth::bearer::caller(&self.server, &self.token).is_ok()
    }
}
