//! What the binary tells the portal about this process, registered as
//! `web::Data<PortalContext>`.

use std::sync::Arc;

use fhirledger_service::anchoring::{ChainRoots, LocalAnchoring};
use fhirledger_service::live::LiveFeed;

#[derive(Debug, Clone, Default)]
pub struct PortalContext {
    /// The chain this process anchors on, when it is configured to.
    pub anchoring: Option<LocalAnchoring>,
    /// The largest file a person may upload (`FHIRLEDGER_MAX_UPLOAD_BYTES`).
    pub max_upload_bytes: u64,
    /// News of the log for live pages; without it pages do not update by
    /// themselves (they still work, reloaded).
    pub live: Option<Arc<LiveFeed>>,
    /// The anchoring contract, read without a key: proof pages check the
    /// root against the chain itself.
    pub chain: Option<Arc<dyn ChainRoots>>,
}
