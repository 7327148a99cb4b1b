//! Benchmark helper (not a test) for conformance/bench: gets a real access
//! token through SMART Backend Services, or a person's through the
//! authorization code flow, and loads the token endpoint with backend clients.
//!
//!   smart_bench token      DATABASE_URL PUBLIC_BASE SCOPE
//!   smart_bench user-token DATABASE_URL PUBLIC_BASE ROLE ORG FHIR_USER SCOPE
//!   smart_bench token-load DATABASE_URL PUBLIC_BASE SECONDS CONCURRENCY
//!
//! `user-token` creates an account (`fhirledger user add --role ROLE --org ORG
//! --fhir-user FHIR_USER`) and a public app, signs in and approves on the
//! server's own pages as a browser does, exchanges the code and prints the
//! access token: the doctor's token the Consent benchmarks read with.
//!
//! The server binary is `FHIRLEDGER_BIN`. `token-load` signs every client
//! assertion before the clock starts (each needs its own `jti`), then posts
//! them from CONCURRENCY threads and prints one JSON line in the shape the
//! wrk scripts print.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conformance::smart::{BackendClient, Deployment, SigningKey};
use conformance::smart_flow::{tokens_for, AppClient, TestUser};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let deployment = |i: usize| Deployment {
        binary: std::env::var_os("FHIRLEDGER_BIN")
            .map(Into::into)
            .unwrap_or_else(|| "target/release/fhirledger".into()),
        database_url: args.get(i).cloned().unwrap_or_default(),
        public_base: args.get(i + 1).cloned().unwrap_or_default(),
    };
    match args.first().map(String::as_str) {
        Some("token") => {
            let scope = args
                .get(3)
                .cloned()
                .unwrap_or_else(|| "system/*.cruds".into());
            let client = BackendClient::register_at(&deployment(1), &scope, SigningKey::rs384());
            println!("{}", client.token(&scope));
        }
        Some("user-token") => {
            let [role, org, fhir_user, scope] = [3, 4, 5, 6].map(|i| args.get(i).cloned());
            let (Some(role), Some(org), Some(fhir_user), Some(scope)) =
                (role, org, fhir_user, scope)
            else {
                usage();
            };
            let site = deployment(1);
            let user = TestUser::create(&site, &role, Some(&org), Some(&fhir_user));
            let app = AppClient::register(&site, "public", None);
            println!("{}", tokens_for(&site, &app, &user, &scope).access_token());
        }
        Some("token-load") => {
            let seconds: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
            let concurrency: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(16);
            token_load(&deployment(1), seconds, concurrency);
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: smart_bench token DATABASE_URL PUBLIC_BASE [SCOPE]\n\
         \x20      smart_bench user-token DATABASE_URL PUBLIC_BASE ROLE ORG FHIR_USER SCOPE\n\
         \x20      smart_bench token-load DATABASE_URL PUBLIC_BASE SECONDS CONCURRENCY"
    );
    std::process::exit(2);
}

/// Assertions signed ahead per second of load: generous for two cores.
const ASSERTIONS_PER_SECOND: u64 = 4000;

fn token_load(deployment: &Deployment, seconds: u64, concurrency: usize) {
    let scope = "system/DocumentReference.rs";
    let client = BackendClient::register_at(deployment, scope, SigningKey::es384());
    let total = (seconds * ASSERTIONS_PER_SECOND) as usize;
    let assertions: Arc<Vec<String>> = Arc::new(std::thread::scope(|s| {
        let per = total / 2 + 1;
        let client = &client;
        let workers: Vec<_> = (0..2)
            .map(|_| s.spawn(move || (0..per).map(|_| client.assertion()).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    }));
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let url = client.token_url().to_string();
    let results: Vec<(Vec<u64>, u64)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let (assertions, next, url) = (assertions.clone(), next.clone(), url.clone());
                s.spawn(move || {
                    let http = reqwest::blocking::Client::new();
                    let mut latencies = Vec::new();
                    let mut errors = 0;
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(assertion) = assertions.get(i) else {
                            break;
                        };
                        let sent = Instant::now();
                        let ok = http
                            .post(&url)
                            .form(&[
                                ("grant_type", "client_credentials"),
                                ("scope", scope),
                                (
                                    "client_assertion_type",
                                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                                ),
                                ("client_assertion", assertion),
                            ])
                            .send()
                            .map(|r| r.status().is_success() && r.bytes().is_ok())
                            .unwrap_or(false);
                        latencies.push(sent.elapsed().as_micros() as u64);
                        if !ok {
                            errors += 1;
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let elapsed = started.elapsed();
    let mut latencies: Vec<u64> = results
        .iter()
        .flat_map(|(l, _)| l.iter().copied())
        .collect();
    let errors: u64 = results.iter().map(|(_, e)| e).sum();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{{\"requests\":{},\"duration_us\":{},\"connect_errors\":0,\"read_errors\":0,\"write_errors\":0,\"status_errors\":{errors},\"timeouts\":0,\"p50_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        latencies.len(),
        elapsed.as_micros(),
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or(0)
    );
}
