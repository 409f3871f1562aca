//! Workflows: the jobs users run, each a library function with a typed outcome built on the
//! layers below: release, promote, prune, rescan, tree, the audit log and the verification
//! service (`serve`).

pub mod audit;
pub mod promote;
pub mod prune;
pub mod release;
pub mod rescan;
pub mod serve;
pub mod tree;
