//! custody's integration tests: one test binary, one module per area.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers unwrap like the tests they serve: a panic is how a test reports"
)]

mod attach;
mod attest;
mod attestations_repo;
mod buildkit;
mod ci_install;
mod ci_integration;
mod ci_runners;
mod conformance;
mod conventions;
mod cosign_blob;
mod e2e;
mod everyday;
mod faults;
mod formats;
mod gates;
mod gh;
mod hints;
mod hostile;
mod human_output;
mod image;
mod image_distros;
mod image_java_rust;
mod image_lang;
mod interop;
mod keyless;
mod keys;
mod layers;
mod layout;
mod legacy;
mod login;
mod modes;
mod os_versions;
mod output;
mod pool;
mod prune;
mod readme;
mod recursive;
mod referrers;
mod registry;
mod release;
mod rescan;
mod schemas;
mod scopes;
mod secops;
mod serve;
mod sign_cli;
mod sigstore_stack;
mod support;
mod trust;
mod verify;
mod verify_file;
mod vuln;
