//! custody keeps the chain of custody of software artifacts: it records the source commit,
//! describes the build (SBOM, SLSA provenance), signs it, stores it in any OCI registry by
//! digest and verifies the whole chain where the artifact is consumed.
//!
//! The library never prints and never exits; the binary's `cli` module (`src/main.rs`) does both.

pub mod attach;
pub mod attest;
pub mod audit;
pub mod ci;
pub mod digest;
#[doc(hidden)]
pub mod fuzzing;
pub mod glob;
pub mod hint;
pub mod http;
pub mod oci;
pub mod policy;
pub mod promote;
pub mod prune;
pub mod reference;
pub mod release;
pub mod rescan;
pub mod sbom;
pub mod sign;
pub mod source;
pub mod sources;
pub mod store;
pub mod time;
pub mod transfer;
pub mod tree;
pub mod trust;
pub mod verify;
pub mod vuln;
