//! Storage: where artifacts live and how they move. The `Store` trait with its OCI layout and
//! registry implementations, the referrers walk, and transfer (push, pull, copy with every
//! referrer).

pub mod store;
pub mod transfer;
