//! `fhirledger audit export`: the trail, or a part of it, as NDJSON for a
//! compliance officer or an auditor's tools. The selection is a search of
//! the trail (`AuditEvent?date=ge…&date=lt…&patient=…`), a hospital's part
//! is what its compliance officers see, and the events stream from the
//! store a batch at a time, oldest first, exactly as stored (the bytes the
//! ledger hashes), so an export of any size takes the same memory.
//!
//! Exporting is itself an access to the trail: it is recorded, durably,
//! before the first event is written out.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use fhir_profiles::search::parse_search;
use fhir_profiles::search::query::Criterion;
use fhirledger_audit::Observer;
use fhirledger_postgres::{PgStore, StoreError};

use crate::audit::Recorder;
use crate::error::{ServiceError, Status};

/// Which events to export.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Events recorded at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Events recorded before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Events about this patient (id).
    pub patient: Option<String>,
    /// Events a compliance officer of this hospital (Organization id) sees.
    pub organization: Option<String>,
}

impl ExportFilter {
    /// The selection as AuditEvent search criteria.
    pub fn criteria(&self, fhir_base: &str) -> Result<Vec<Criterion>, ServiceError> {
        let instant = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut params = Vec::new();
        if let Some(since) = &self.since {
            params.push(("date".to_string(), format!("ge{}", instant(since))));
        }
        if let Some(until) = &self.until {
            params.push(("date".to_string(), format!("lt{}", instant(until))));
        }
        if let Some(patient) = &self.patient {
            params.push(("patient".to_string(), format!("Patient/{patient}")));
        }
        let mut criteria = parse_search("AuditEvent", &params, fhir_base, false)
            .map_err(|issues| ServiceError::with_issues(Status::BAD_REQUEST, issues))?
            .criteria;
        if let Some(org) = &self.organization {
            criteria.extend(fhirledger_access::hospital_criterion("AuditEvent", org));
        }
        Ok(criteria)
    }

    /// The filter as the command line gave it, for the export's own event.
    fn describe(&self) -> String {
        let mut out = String::from("fhirledger audit export");
        let instant = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        if let Some(t) = &self.since {
            out.push_str(&format!(" --since {}", instant(t)));
        }
        if let Some(t) = &self.until {
            out.push_str(&format!(" --until {}", instant(t)));
        }
        if let Some(p) = &self.patient {
            out.push_str(&format!(" --patient {p}"));
        }
        if let Some(o) = &self.organization {
            out.push_str(&format!(" --org {o}"));
        }
        out
    }
}

/// How many events `filter` selects (for a progress bar).
pub fn count(
    store: &PgStore,
    observer: &Observer,
    filter: &ExportFilter,
) -> Result<u64, ServiceError> {
    Ok(store.count_audit_events(&filter.criteria(&observer.fhir_base)?)?)
}

/// Records the export, then writes every selected event to `out`, one
/// compact JSON per line, oldest first, calling `progress` with the number
/// written so far after each; returns how many were written.
pub fn export(
    store: &PgStore,
    observer: &Observer,
    filter: &ExportFilter,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, ServiceError> {
    let criteria = filter.criteria(&observer.fhir_base)?;
    let recorder = Recorder::for_command(&filter.describe(), observer);
    let event = recorder.operation(
        None,
        "audit-export",
        filter.patient.clone(),
        Vec::new(),
        None,
    );
    store.append_audit_events(&[event])?;
    let mut written = 0u64;
    let result = store.each_audit_event(&criteria, |content| {
        out.write_all(content.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| StoreError::Internal(format!("writing the export: {e}")))?;
        written += 1;
        progress(written);
        Ok(())
    });
    match result {
        Ok(n) => {
            out.flush()
                .map_err(|e| ServiceError::internal(format!("writing the export: {e}")))?;
            Ok(n)
        }
        Err(StoreError::Internal(why)) => Err(ServiceError::internal(why)),
        Err(e) => Err(e.into()),
    }
}
