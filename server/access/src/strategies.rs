//! proptest strategies shared by the access module's property tests.

use proptest::prelude::*;

use super::scope::{Context, Permissions, ResourceScope, Scope, ScopeSet};

fn context() -> impl Strategy<Value = Context> {
    prop::sample::select(Context::ALL.to_vec())
}

/// Any non-empty permission set.
fn permissions() -> impl Strategy<Value = Permissions> {
    const EACH: [Permissions; 5] = [
        Permissions::CREATE,
        Permissions::READ,
        Permissions::UPDATE,
        Permissions::DELETE,
        Permissions::SEARCH,
    ];
    (1u8..32).prop_map(|bits| {
        EACH.iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .fold(Permissions::NONE, |acc, (_, p)| acc | *p)
    })
}

fn v1_permissions() -> impl Strategy<Value = Permissions> {
    prop::sample::select(vec![
        Permissions::V1_READ,
        Permissions::V1_WRITE,
        Permissions::ALL,
    ])
}

/// Resource scopes of every shape, with arbitrary (including non-ASCII and
/// reserved) characters in granular parameters, for round-trip tests.
pub(crate) fn resource_scope() -> impl Strategy<Value = ResourceScope> {
    let resource_type = prop_oneof![Just(None), "[A-Z][A-Za-z0-9]{0,12}".prop_map(Some)];
    let param = (".{1,8}", ".{1,12}");
    let v2 = (
        context(),
        resource_type.clone(),
        permissions(),
        prop::collection::vec(param, 0..3),
    )
        .prop_map(
            |(context, resource_type, permissions, query)| ResourceScope {
                context,
                resource_type,
                permissions,
                query,
                v1: false,
            },
        );
    let v1 = (context(), resource_type, v1_permissions()).prop_map(
        |(context, resource_type, permissions)| ResourceScope {
            context,
            resource_type,
            permissions,
            query: Vec::new(),
            v1: true,
        },
    );
    prop_oneof![v2, v1]
}

/// Resource scopes drawn from small pools, so that two random sets overlap
/// often enough for intersection tests to mean something.
fn overlapping_resource_scope() -> impl Strategy<Value = ResourceScope> {
    let resource_type = prop::sample::select(vec![None, Some("Patient"), Some("Observation")])
        .prop_map(|t| t.map(str::to_owned));
    let param = prop::sample::select(vec![
        ("category", "a"),
        ("category", "b"),
        ("status", "final"),
    ])
    .prop_map(|(k, v)| (k.to_owned(), v.to_owned()));
    let context = prop::sample::select(vec![Context::Patient, Context::User]);
    prop_oneof![
        (
            context.clone(),
            resource_type.clone(),
            permissions(),
            prop::collection::vec(param, 0..3),
        )
            .prop_map(|(context, resource_type, permissions, query)| {
                ResourceScope {
                    context,
                    resource_type,
                    permissions,
                    query,
                    v1: false,
                }
            }),
        (context, resource_type, v1_permissions()).prop_map(
            |(context, resource_type, permissions)| ResourceScope {
                context,
                resource_type,
                permissions,
                query: Vec::new(),
                v1: true,
            }
        ),
    ]
}

fn overlapping_scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        3 => overlapping_resource_scope().prop_map(Scope::Resource),
        1 => prop::sample::select(vec![
            Scope::OpenId,
            Scope::FhirUser,
            Scope::OfflineAccess,
            Scope::LaunchPatient,
            Scope::Other("fhirledger.admin".to_owned()),
        ]),
    ]
}

/// Scope sets that overlap with one another often.
pub(crate) fn scope_set() -> impl Strategy<Value = ScopeSet> {
    prop::collection::vec(overlapping_scope(), 0..6).prop_map(|v| v.into_iter().collect())
}
