//! One entry after planning: what it will do, with its resource validated and
//! its references to other entries already written in.

use crate::conditions::Conditions;
use chrono::{DateTime, Utc};

use super::links::Links;
use crate::prepare::Prepared;
use crate::write::UpdateTarget;

/// A planned entry, ready to run.
pub(super) enum Planned {
    Create {
        prepared: Prepared,
        /// Assigned while planning, so that references resolve in any order.
        id: String,
        if_none_exist: Option<Conditions>,
        links: Links,
    },
    Update {
        prepared: Prepared,
        target: UpdateTarget,
        /// The id used for references while planning: the URL's id, else the
        /// body's, else a fresh one (a matching resource may replace it).
        tentative: String,
        if_match: Option<i64>,
        links: Links,
    },
    Delete(Delete),
    Read(Read),
    Search(Search),
}

/// A DELETE entry (it has no resource, so it needs no validation: planning
/// passes it through as read from the request).
pub(super) struct Delete {
    pub rt: String,
    pub target: DeleteTarget,
    pub if_match: Option<i64>,
}

/// Which resource a DELETE removes.
pub(super) enum DeleteTarget {
    Id(String),
    Criteria(Conditions),
}

/// A GET or HEAD of one resource (`Type/id`, `Type/id/_history/v`).
pub(super) struct Read {
    pub rt: String,
    pub id: String,
    pub version: Option<i64>,
    pub if_none_match: Option<i64>,
    pub if_modified_since: Option<DateTime<Utc>>,
    pub head: bool,
    /// For `_summary` and `_elements`.
    pub query: String,
}

/// A GET or HEAD search (`Type?params`).
pub(super) struct Search {
    pub rt: String,
    pub query: String,
    pub head: bool,
}

impl Planned {
    pub fn resource_type(&self) -> &str {
        match self {
            Planned::Create { prepared, .. } | Planned::Update { prepared, .. } => {
                &prepared.resource_type
            }
            Planned::Delete(Delete { rt, .. })
            | Planned::Read(Read { rt, .. })
            | Planned::Search(Search { rt, .. }) => rt,
        }
    }

    /// The resource a POST or PUT writes.
    pub fn prepared(&self) -> Option<&Prepared> {
        match self {
            Planned::Create { prepared, .. } | Planned::Update { prepared, .. } => Some(prepared),
            _ => None,
        }
    }

    pub fn links(&self) -> Option<&Links> {
        match self {
            Planned::Create { links, .. } | Planned::Update { links, .. } => Some(links),
            _ => None,
        }
    }

    /// The id this entry's resource is known by while planning (POST, PUT).
    pub fn planned_id(&self) -> Option<String> {
        match self {
            Planned::Create { id, .. } => Some(id.clone()),
            Planned::Update { tentative, .. } => Some(tentative.clone()),
            _ => None,
        }
    }

    /// The criteria of a conditional create or update: they may match
    /// another entry's resource.
    pub fn write_criteria(&self) -> Option<&Conditions> {
        match self {
            Planned::Create {
                if_none_exist: Some(c),
                ..
            }
            | Planned::Update {
                target: UpdateTarget::Criteria(c),
                ..
            } => Some(c),
            _ => None,
        }
    }

    /// The criteria this entry locks (conditional create, update, delete).
    pub fn locked_criteria(&self) -> Option<(&str, &Conditions)> {
        match self {
            Planned::Delete(Delete {
                rt,
                target: DeleteTarget::Criteria(c),
                ..
            }) => Some((rt, c)),
            _ => self.write_criteria().map(|c| (self.resource_type(), c)),
        }
    }

    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Planned::Create { .. } | Planned::Update { .. } | Planned::Delete(_)
        )
    }
}
