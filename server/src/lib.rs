//! The fhirledger server: HTTP routes, the request pipeline and the CLI's
//! commands. FHIR rules live in `fhir-profiles`, storage in the adapters.

pub mod admin_cli;
pub mod app;
pub mod audit_verify;
pub mod chain;
pub mod chain_cli;
pub mod config;
pub mod demo;
pub mod dev_chain;
pub mod http;
mod index_check;
pub mod routes;
pub mod run;
pub mod state;
