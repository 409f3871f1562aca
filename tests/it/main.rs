//! custody's integration tests: one test binary, one module per area.

mod attach;
mod attest;
mod conformance;
mod cosign_blob;
mod e2e;
mod hostile;
mod interop;
mod keyless;
mod registry;
mod release;
mod secops;
mod sign_cli;
mod sigstore_stack;
mod support;
mod verify;
mod vuln;
