//! custody's integration tests: one test binary, one module per area.

mod attach;
mod attest;
mod ci_install;
mod ci_integration;
mod ci_runners;
mod conformance;
mod cosign_blob;
mod e2e;
mod gates;
mod gh;
mod hostile;
mod interop;
mod keyless;
mod legacy;
mod readme;
mod referrers;
mod registry;
mod release;
mod rescan;
mod schemas;
mod secops;
mod sign_cli;
mod sigstore_stack;
mod support;
mod verify;
mod vuln;
