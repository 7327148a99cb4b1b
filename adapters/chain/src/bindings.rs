//! Typed bindings of `AuditAnchor`, generated from the committed ABI.

#![allow(clippy::all, missing_docs, unreachable_pub)]

ethers::contract::abigen!(AuditAnchorContract, "contracts/AuditAnchor.abi.json");
