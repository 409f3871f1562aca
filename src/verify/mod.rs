//! Verification at consumption: the chain from reference to policy, as a typed report.
pub mod report;
