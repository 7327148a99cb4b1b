//! What a Consent provision can say about a DocumentReference: its id, its
//! codes (type and category), its security labels and its date.

use fhir_profiles::search::date::parse_range;
use fhir_profiles::search::DateRange;
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

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

impl Document {
    /// The facts of the DocumentReference `id` from its stored JSON text,
    /// reading only the elements provisions match (a Consent write derives the
    /// rules of every document of its patient, so this runs once per document):
    /// the same facts as [`Document::from_json`] of the parsed text.
    pub fn from_stored(id: &str, content: &str) -> Result<Document, serde_json::Error> {
        match serde_json::from_str::<Facts<'_>>(content) {
            Ok(facts) => Ok(facts.into_document(id)),
            // Elements of an unexpected shape are ignored, as from_json does.
            Err(_) => Ok(Document::from_json(id, &serde_json::from_str(content)?)),
        }
    }
}

/// The elements of a DocumentReference that [`Document`] keeps, as stored.
#[derive(Deserialize)]
struct Facts<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Concept<'a>>,
    #[serde(default, borrow)]
    category: Vec<Concept<'a>>,
    #[serde(default, borrow)]
    meta: Option<Meta<'a>>,
    #[serde(default, borrow)]
    date: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Concept<'a> {
    #[serde(default, borrow)]
    coding: Vec<Coding<'a>>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(default, borrow)]
    security: Vec<Coding<'a>>,
}

#[derive(Deserialize)]
struct Coding<'a> {
    #[serde(default, borrow)]
    system: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
}

impl Coding<'_> {
    fn code(self) -> Option<Code> {
        Some(Code {
            system: self.system.map(Cow::into_owned),
            code: self.code?.into_owned(),
        })
    }
}

impl Facts<'_> {
    fn into_document(self, id: &str) -> Document {
        let codes = self
            .kind
            .into_iter()
            .chain(self.category)
            .flat_map(|c| c.coding)
            .filter_map(Coding::code)
            .collect();
        let security = self
            .meta
            .into_iter()
            .flat_map(|m| m.security)
            .filter_map(Coding::code)
            .collect();
        Document {
            id: id.to_string(),
            codes,
            security,
            date: self.date.as_deref().and_then(parse_range),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn same_facts(content: &str) {
        let json: Value = serde_json::from_str(content).expect("test JSON parses");
        assert_eq!(
            Document::from_stored("d1", content).expect("stored text parses"),
            Document::from_json("d1", &json),
            "{content}"
        );
    }

    #[test]
    fn stored_text_gives_the_facts_of_its_json() {
        let examples = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fhir-r4/examples"
        );
        for file in [
            "DocumentReference-example.json",
            "us-core-7.0.0/DocumentReference-discharge-summary.json",
        ] {
            let content = std::fs::read_to_string(format!("{examples}/{file}"))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            same_facts(&content);
        }
        same_facts(
            r#"{"resourceType":"DocumentReference","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"},{"display":"no code"}]},
               "type":{"coding":[{"code":"11506-3"}]},"category":[{"text":"none"},{"coding":[{"system":"s","code":"c"}]}],"date":"2024-02-29T10:00:00Z"}"#,
        );
        // Shapes FHIR forbids are ignored the same way.
        same_facts(r#"{"type":"not an object","category":{"coding":[]},"date":5,"meta":[]}"#);
        same_facts(r#"{"type":{"coding":[{"system":1,"code":"x"}]}}"#);
    }
}
