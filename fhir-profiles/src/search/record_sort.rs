//! Date sort keys kept per patient record, so that "this patient's documents, newest
//! first" reads the first page in order from an index instead of computing the date of
//! every one of the patient's resources before keeping a page of them.
//!
//! A search's sort key of a date parameter is the greatest `high` of the resource's
//! values when descending and the least `low` when ascending (missing values last). For
//! every pair of a *record reference* of a type (its `patient` or `subject` parameter
//! when it may point to a Patient) and a date parameter of the same type, a resource
//! gets one [`RecordDateIndex`] row per local target of that reference, carrying those
//! two keys (or none, when it has no value of that date). The store keeps these rows
//! beside the others and walks them in key order when a search names one record
//! (`patient=Patient/p-1`) and sorts by one date: the result is the same as computing
//! the keys, only bounded by the page instead of by the record's size.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};

use crate::resource_types::HOSTED;
use crate::search::registry::{params, ParamKey, ParamType};
use crate::search::IndexRows;

/// The reference parameters that name the patient record a resource belongs to.
const RECORD_REFERENCES: [&str; 2] = ["patient", "subject"];

/// The date sort keys of one resource within one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordDateIndex {
    /// The record reference parameter (`DocumentReference.patient`).
    pub reference_key: ParamKey,
    /// The record: the reference's local target.
    pub target_type: String,
    pub target_id: String,
    /// The date parameter (`DocumentReference.date`).
    pub date_key: ParamKey,
    /// The ascending sort key: the least `low` of the resource's values.
    pub low: Option<DateTime<Utc>>,
    /// The descending sort key: the greatest `high` of its values.
    pub high: Option<DateTime<Utc>>,
}

/// Record reference key → the date parameter keys of the same type.
fn pairs() -> &'static HashMap<ParamKey, Vec<ParamKey>> {
    static PAIRS: OnceLock<HashMap<ParamKey, Vec<ParamKey>>> = OnceLock::new();
    PAIRS.get_or_init(|| {
        let mut pairs = HashMap::new();
        for t in HOSTED {
            let all = params(t);
            let dates: Vec<ParamKey> = all
                .iter()
                // `_lastUpdated` sorts by the version's own column.
                .filter(|p| p.kind == ParamType::Date && !p.code.starts_with('_'))
                .map(|p| p.key)
                .collect();
            if dates.is_empty() {
                continue;
            }
            for p in all {
                if p.kind == ParamType::Reference
                    && RECORD_REFERENCES.contains(&p.code.as_str())
                    && p.targets.iter().any(|t| t == "Patient")
                {
                    pairs.insert(p.key, dates.clone());
                }
            }
        }
        pairs
    })
}

/// Whether a search naming one target of `reference_key` and sorting by `date_key` can
/// read its order from [`RecordDateIndex`] rows.
pub fn is_record_sorted(reference_key: ParamKey, date_key: ParamKey) -> bool {
    pairs()
        .get(&reference_key)
        .is_some_and(|dates| dates.contains(&date_key))
}

/// The record date rows of a resource with `index` (from [`crate::search::extract`]).
pub fn record_dates(index: &IndexRows) -> Vec<RecordDateIndex> {
    let mut rows: Vec<RecordDateIndex> = Vec::new();
    for reference in &index.references {
        let Some(dates) = pairs().get(&reference.key) else {
            continue;
        };
        let (Some(target_type), Some(target_id)) = (&reference.target_type, &reference.target_id)
        else {
            continue;
        };
        let known = rows.iter().any(|r| {
            r.reference_key == reference.key
                && &r.target_type == target_type
                && &r.target_id == target_id
        });
        if known {
            continue;
        }
        for &date_key in dates {
            let values = index.dates.iter().filter(|d| d.key == date_key);
            rows.push(RecordDateIndex {
                reference_key: reference.key,
                target_type: target_type.clone(),
                target_id: target_id.clone(),
                date_key,
                low: values.clone().map(|d| d.low).min(),
                high: values.map(|d| d.high).max(),
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{param_key, DateIndex, ReferenceIndex};
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn reference(code: &str, target_type: &str, id: &str) -> ReferenceIndex {
        ReferenceIndex {
            key: param_key("DocumentReference", code),
            target_type: Some(target_type.into()),
            target_id: Some(id.into()),
            url: None,
        }
    }

    #[test]
    fn a_document_is_sorted_within_its_patient_by_each_of_its_dates() {
        let date = param_key("DocumentReference", "date");
        let period = param_key("DocumentReference", "period");
        let patient = param_key("DocumentReference", "patient");
        assert!(is_record_sorted(patient, date));
        assert!(is_record_sorted(patient, period));
        assert!(is_record_sorted(
            param_key("DocumentReference", "subject"),
            date
        ));
        assert!(!is_record_sorted(
            param_key("DocumentReference", "author"),
            date
        ));
        assert!(!is_record_sorted(patient, param_key("Consent", "date")));

        let index = IndexRows {
            references: vec![
                reference("patient", "Patient", "p-1"),
                reference("subject", "Patient", "p-1"),
                // Twice the same record adds nothing.
                reference("patient", "Patient", "p-1"),
                reference("author", "Practitioner", "d-1"),
            ],
            dates: vec![
                DateIndex {
                    key: period,
                    low: at(3),
                    high: at(9),
                },
                DateIndex {
                    key: period,
                    low: at(1),
                    high: at(4),
                },
            ],
            ..IndexRows::default()
        };
        let rows = record_dates(&index);
        assert_eq!(
            rows.len(),
            4,
            "patient and subject, by date and by period: {rows:?}"
        );
        let by_period = rows
            .iter()
            .find(|r| r.reference_key == patient && r.date_key == period)
            .cloned();
        assert_eq!(
            by_period.map(|r| (r.target_id, r.low, r.high)),
            Some(("p-1".to_string(), Some(at(1)), Some(at(9))))
        );
        // No `date`: its keys are missing, so the document sorts last.
        assert!(rows
            .iter()
            .filter(|r| r.date_key == date)
            .all(|r| r.low.is_none() && r.high.is_none()));
    }

    #[test]
    fn a_reference_outside_this_server_names_no_record() {
        let index = IndexRows {
            references: vec![ReferenceIndex {
                key: param_key("DocumentReference", "patient"),
                target_type: None,
                target_id: None,
                url: Some("https://elsewhere.example/Patient/1".into()),
            }],
            ..IndexRows::default()
        };
        assert!(record_dates(&index).is_empty());
    }
}
