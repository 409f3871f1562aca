//! custody's integration tests: one test binary, one module per area.

mod attest;
mod hostile;
mod interop;
mod registry;
mod support;
mod vuln;
