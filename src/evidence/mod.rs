//! Evidence: what is said about an artifact and by whom. The source record, CI identity, SBOMs,
//! VEX documents, in-toto statements, signatures (keys, DSSE, bundles, keyless), trusted roots (TUF) and the
//! referrers that carry them.

pub mod attach;
pub mod attest;
pub mod buildkit;
pub mod ci;
pub mod sbom;
pub mod sign;
pub mod source;
pub mod trust;
pub mod vex;
