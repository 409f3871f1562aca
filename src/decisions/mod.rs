//! Decisions: whether the evidence is enough. Policy, dependency origins, known vulnerabilities
//! and the verification of the whole chain, each a pure function from evidence to a typed report.

pub mod policy;
pub mod sources;
pub mod verify;
pub mod vuln;
