//! The authorization server's storage against a real private PostgreSQL
//! cluster: single-use values stay single-use under races, refresh tokens
//! rotate and betray reuse, revocations reach every reader.

mod common;

use std::sync::{Arc, Barrier};

use chrono::{Duration, Utc};
use common::store;
use fhirledger_postgres::auth::{ClientRow, CodeUse, GrantRow, RefreshUse, UserRow};
use fhirledger_postgres::StoreError;
use uuid::Uuid;

fn secret(tag: &str) -> Vec<u8> {
    format!("{tag}-{}", Uuid::new_v4()).into_bytes()
}

fn client() -> ClientRow {
    let row = ClientRow {
        client_id: Uuid::new_v4().to_string(),
        name: "test app".into(),
        kind: "public".into(),
        secret_sha256: None,
        redirect_uris: vec!["https://app.example/cb".into()],
        jwks: None,
        jwks_uri: None,
        scope: "patient/*.rs".into(),
        active: true,
    };
    store().insert_client(&row).expect("client stored");
    row
}

fn user(role: &str) -> UserRow {
    let row = UserRow {
        user_id: Uuid::new_v4(),
        email: format!("{}@example.org", Uuid::new_v4()),
        role: role.into(),
        organization: Some("org-1".into()),
        fhir_user: Some("Patient/p1".into()),
        password_hash: None,
        active: true,
    };
    store().insert_user(&row).expect("user stored");
    row
}

fn grant(client: &ClientRow, user: &UserRow) -> GrantRow {
    GrantRow {
        grant_id: Uuid::new_v4(),
        client_id: client.client_id.clone(),
        user_id: Some(user.user_id),
        scope: "patient/*.rs offline_access".into(),
        patient: Some("p1".into()),
        need_patient_banner: true,
    }
}

/// A grant of a new patient to a new client, stored with its code; the
/// patient's account with it.
fn stored_grant() -> (UserRow, GrantRow) {
    let (c, u) = (client(), user("patient"));
    let g = grant(&c, &u);
    store()
        .create_grant_with_code(
            &g,
            &secret("code"),
            "https://app.example/cb",
            "ch",
            None,
            later(),
        )
        .expect("grant");
    (u, g)
}

fn later() -> chrono::DateTime<Utc> {
    Utc::now() + Duration::hours(1)
}

fn revoked_grants(since: i64) -> Vec<String> {
    store()
        .revocations_since(since)
        .expect("revocations")
        .into_iter()
        .filter(|r| r.kind == "grant")
        .map(|r| r.subject)
        .collect()
}

#[test]
fn a_code_is_used_once_even_by_racing_redeemers_and_a_replay_revokes_its_grant() {
    let (c, u) = (client(), user("patient"));
    let g = grant(&c, &u);
    let code = secret("code");
    store()
        .create_grant_with_code(
            &g,
            &code,
            "https://app.example/cb",
            "challenge",
            Some("n"),
            Utc::now() + Duration::seconds(60),
        )
        .expect("code stored");
    let seq = store()
        .revocations_since(0)
        .expect("list")
        .last()
        .map_or(0, |r| r.seq);
    let barrier = Arc::new(Barrier::new(8));
    let outcomes: Vec<CodeUse> = (0..8)
        .map(|_| {
            let (barrier, code) = (barrier.clone(), code.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store().use_code(&code, later()).expect("use")
            })
        })
        // Every thread must be spawned before any is joined: they meet at the barrier.
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let fresh: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, CodeUse::Fresh(_)))
        .collect();
    assert_eq!(fresh.len(), 1, "exactly one redeemer wins: {outcomes:?}");
    if let CodeUse::Fresh(f) = fresh[0] {
        assert_eq!(f.1.grant_id, g.grant_id);
        assert_eq!(f.0.nonce.as_deref(), Some("n"));
    }
    assert!(outcomes
        .iter()
        .filter(|o| !matches!(o, CodeUse::Fresh(_)))
        .all(|o| matches!(o, CodeUse::Replayed)));
    assert!(
        revoked_grants(seq).contains(&g.grant_id.to_string()),
        "the replay revoked the grant"
    );
    assert!(matches!(
        store()
            .use_code(&secret("never-issued"), later())
            .expect("use"),
        CodeUse::Invalid
    ));
}

#[test]
fn an_expired_code_is_refused() {
    let (c, u) = (client(), user("patient"));
    let code = secret("code");
    store()
        .create_grant_with_code(
            &grant(&c, &u),
            &code,
            "https://app.example/cb",
            "ch",
            None,
            Utc::now() - Duration::seconds(1),
        )
        .expect("code stored");
    assert!(matches!(
        store().use_code(&code, later()).expect("use"),
        CodeUse::Invalid
    ));
}

#[test]
fn refresh_tokens_rotate_and_reuse_revokes_the_whole_grant() {
    let (_, g) = stored_grant();
    let first = secret("rt");
    store()
        .create_refresh_token(&first, g.grant_id, &g.scope, Some(later()))
        .expect("rt");
    let RefreshUse::Live { scope, .. } = store().refresh_token(&first, later()).expect("peek")
    else {
        panic!("a fresh refresh token is live");
    };
    assert_eq!(scope, g.scope);
    let second = secret("rt");
    assert!(matches!(
        store()
            .rotate_refresh_token(&first, &second, "patient/*.rs", Some(later()), later())
            .expect("rotate"),
        RefreshUse::Live { .. }
    ));
    assert!(store()
        .peek_refresh_token(&second)
        .expect("peek")
        .is_some_and(|l| l.scope == "patient/*.rs"));
    let seq = store()
        .revocations_since(0)
        .expect("list")
        .last()
        .map_or(0, |r| r.seq);
    assert!(matches!(
        store().refresh_token(&first, later()).expect("reuse"),
        RefreshUse::Reused
    ));
    assert!(revoked_grants(seq).contains(&g.grant_id.to_string()));
    assert!(
        matches!(
            store().refresh_token(&second, later()).expect("after"),
            RefreshUse::Invalid
        ),
        "the rotated token died with its grant"
    );
    assert!(store().peek_refresh_token(&second).expect("peek").is_none());
}

#[test]
fn racing_rotations_of_one_refresh_token_leave_one_winner() {
    let (_, g) = stored_grant();
    let token = secret("rt");
    store()
        .create_refresh_token(&token, g.grant_id, &g.scope, None)
        .expect("rt");
    let barrier = Arc::new(Barrier::new(4));
    let outcomes: Vec<RefreshUse> = (0..4)
        .map(|_| {
            let (barrier, token) = (barrier.clone(), token.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store()
                    .rotate_refresh_token(&token, &secret("next"), "patient/*.rs", None, later())
                    .expect("rotate")
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, RefreshUse::Live { .. }))
            .count(),
        1,
        "{outcomes:?}"
    );
}

#[test]
fn launches_and_invitations_are_single_use() {
    let u = user("doctor");
    let launch = secret("launch");
    store()
        .create_launch(&launch, "p1", u.user_id, later())
        .expect("launch");
    let taken = store()
        .take_launch(&launch)
        .expect("take")
        .expect("the first take gets it");
    assert_eq!((taken.patient.as_str(), taken.user_id), ("p1", u.user_id));
    assert!(store().take_launch(&launch).expect("take").is_none());

    let invited = user("doctor");
    let code = secret("invite");
    store()
        .create_invitation(&code, invited.user_id, later())
        .expect("invitation");
    assert_eq!(
        store().invitation(&code).expect("peek").map(|u| u.user_id),
        Some(invited.user_id)
    );
    let subject = Uuid::new_v4().to_string();
    let redeemed = store()
        .redeem_invitation(&code, "https://idp.example", &subject)
        .expect("redeem");
    assert_eq!(redeemed.map(|u| u.user_id), Some(invited.user_id));
    assert_eq!(
        store()
            .user_by_identity("https://idp.example", &subject)
            .expect("lookup")
            .map(|u| u.user_id),
        Some(invited.user_id)
    );
    assert!(store()
        .redeem_invitation(&code, "https://idp.example", "someone-else")
        .expect("again")
        .is_none());
}

#[test]
fn duplicate_emails_and_client_ids_are_refused() {
    let u = user("patient");
    let mut twin = u.clone();
    twin.user_id = Uuid::new_v4();
    twin.email = u.email.to_uppercase();
    assert!(matches!(
        store().insert_user(&twin),
        Err(StoreError::Duplicate(_))
    ));
    let c = client();
    assert!(matches!(
        store().insert_client(&c),
        Err(StoreError::Duplicate(_))
    ));
}

#[test]
fn deactivating_a_user_ends_sessions_revokes_grants_and_lists_the_user() {
    let (u, g) = stored_grant();
    let session = secret("session");
    store()
        .create_session(&session, u.user_id, later())
        .expect("session");
    assert!(store().session_user(&session).expect("session").is_some());
    let seq = store()
        .revocations_since(0)
        .expect("list")
        .last()
        .map_or(0, |r| r.seq);
    assert!(store()
        .deactivate_user(u.user_id, later())
        .expect("deactivate"));
    assert!(store().session_user(&session).expect("session").is_none());
    assert!(store().grant(g.grant_id).expect("grant").is_some());
    let listed = store().revocations_since(seq).expect("list");
    assert!(listed
        .iter()
        .any(|r| r.kind == "user" && r.subject == u.user_id.to_string()));
    assert!(
        !store().deactivate_user(u.user_id, later()).expect("again"),
        "already inactive"
    );
}

#[test]
fn a_client_assertion_jti_is_accepted_once() {
    let jti = Uuid::new_v4().to_string();
    assert!(store()
        .remember_assertion("backend-1", &jti, later())
        .expect("first"));
    assert!(!store()
        .remember_assertion("backend-1", &jti, later())
        .expect("replay"));
    assert!(store()
        .remember_assertion("backend-2", &jti, later())
        .expect("another client"));
}

#[test]
fn expired_assertion_jtis_are_dropped_by_the_upkeep_and_live_ones_kept() {
    let (old, live) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    let client = format!("backend-{}", Uuid::new_v4());
    assert!(store()
        .remember_assertion(&client, &old, Utc::now() - Duration::seconds(1))
        .expect("expired"));
    assert!(store()
        .remember_assertion(&client, &live, later())
        .expect("live"));
    assert!(store().forget_expired_auth_state().expect("purge") >= 1);
    // The live jti is still remembered (a replay is refused); the expired
    // one is gone (its assertion is refused for its exp anyway).
    assert!(!store()
        .remember_assertion(&client, &live, later())
        .expect("replay"));
    assert!(store()
        .remember_assertion(&client, &old, later())
        .expect("forgotten"));
}
