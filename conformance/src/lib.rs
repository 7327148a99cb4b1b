//! Test harness: a private PostgreSQL cluster and a running fhirledger server.
//!
//! Every test binary under `tests/` starts (lazily, once) its own server
//! against its own private cluster, then drives it over HTTP the way a real
//! client would. Nothing is left running when the binary exits: the server
//! child dies with the process (`PR_SET_PDEATHSIG`) and an `atexit` hook stops
//! it gracefully, stops the cluster and removes its temporary directory.
//!
//! Run: `cargo test -p conformance` (builds the server first when
//! `FHIRLEDGER_BIN` is not set). Needs the PostgreSQL server binaries
//! (`initdb`, `pg_ctl`; see `FHIRLEDGER_PG_BIN_DIR`) unless
//! `FHIRLEDGER_TEST_DATABASE_URL` is given. `tests/fuzz.rs` reads
//! `FHIRLEDGER_FUZZ_SEED` and `FHIRLEDGER_FUZZ_REQUESTS`.
//!
//! Environment:
//! - `FHIRLEDGER_BIN`: the server binary to run (default: build it with cargo).
//! - `FHIRLEDGER_TEST_DATABASE_URL`: use this database instead of a private cluster.
//! - `FHIRLEDGER_TEST_LOG`: `FHIRLEDGER_LOG` filter for the server (default `info`).
//! - `FHIRLEDGER_NODE`: the Node.js binary for [`oidc`]'s test OpenID Connect
//!   provider (default `node`; `npm ci` runs in `conformance/smart` when needed).
//! - `FHIRLEDGER_ANVIL`: the anvil binary [`anvil`] starts for `tests/anchoring.rs`
//!   (default: conformance/chain's npm package; `npm ci` there, as ./test.sh does).
//! - `FHIRLEDGER_CHROMIUM`: the browser [`e2e`]'s SMART flows drive (default
//!   `/usr/bin/chromium`, Debian's `chromium`).

pub mod anvil;
pub mod balp;
pub mod consent_case;
pub mod e2e;
pub mod examples;
pub mod fhir;
pub mod http;
pub mod jwks_host;
pub mod oidc;
pub mod raw;
pub mod server;
pub mod smart;
pub mod smart_flow;

pub use fhir::*;
pub use http::*;
pub use server::{server, small_limit_server, TestServer, SMALL_BODY_LIMIT};
