//! custody's integration tests: one test binary, one module per area.

mod conformance;
mod cosign_blob;
mod sign_cli;
