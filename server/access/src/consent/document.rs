//! What a Consent provision can say about a DocumentReference: its id, its
//! codes (type and category), its security labels and its date.

use fhir_profiles::search::date::parse_range;
use fhir_profiles::search::DateRange;
use serde_json::Value;

use super::model::{codes_of, Code, Provision, RESOURCE_TYPES_SYSTEM};

/// The facts of one DocumentReference version that provisions match.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    /// `type` and `category` codings.
    pub codes: Vec<Code>,
    /// `meta.security`.
    pub security: Vec<Code>,
    /// `date`.
    pub date: Option<DateRange>,
}

impl Document {
    /// The facts of the DocumentReference `id` from its JSON.
    pub fn from_json(id: &str, json: &Value) -> Document {
        let mut codes = codes_of(&json["type"]);
        for category in json["category"].as_array().into_iter().flatten() {
            codes.extend(codes_of(category));
        }
        let security = json["meta"]["security"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some(Code {
                    system: c["system"].as_str().map(str::to_string),
                    code: c["code"].as_str()?.to_string(),
                })
            })
            .collect();
        Document {
            id: id.to_string(),
            codes,
            security,
            date: json["date"].as_str().and_then(parse_range),
        }
    }
}

/// Whether a provision's data conditions (`class`, `code`, `securityLabel`,
/// `dataPeriod`, `data`) all hold for the document; absent ones hold.
pub fn covers_document(p: &Provision, d: &Document) -> bool {
    let document_class = Code::new(RESOURCE_TYPES_SYSTEM, "DocumentReference");
    let class = p.classes.is_empty() || p.classes.iter().any(|c| c.covers(&document_class));
    let code = p.codes.is_empty() || p.codes.iter().any(|c| d.codes.iter().any(|x| c.covers(x)));
    let label = p.security_labels.is_empty()
        || p.security_labels
            .iter()
            .any(|c| d.security.iter().any(|x| c.covers(x)));
    let period = match (&p.data_period, &d.date) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(range), Some(date)) => range.low <= date.low && date.high <= range.high,
    };
    let reference = format!("DocumentReference/{}", d.id);
    let data = p.data.is_empty() || p.data.contains(&reference);
    class && code && label && period && data
}
