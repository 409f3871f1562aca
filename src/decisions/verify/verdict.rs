//! The verdict a workflow acts on: [`Verified`] is the proof that one digest in one repository
//! passed a policy, and only [`super::verdict`] makes one. Tagging a release and copying a
//! promotion take a `&Verified`, so nothing can be tagged or promoted that was not verified.
//!
//! ```compile_fail
//! // A report cannot be dressed up as a verification: the fields of `Verified` are private.
//! use custody::decisions::verify::{Verified, VerifyReport};
//! use custody::foundation::digest::Digest;
//! fn forge(report: VerifyReport, digest: Digest) -> Verified {
//!     Verified { report, digest }
//! }
//! ```

use super::report::VerifyReport;
use crate::foundation::digest::Digest;

/// A verification that passed. It carries its report, so what is acted on can always say why
/// it was allowed.
#[derive(Clone, Debug)]
#[must_use = "a verification is done to act on it (tag, copy) or to report it"]
pub struct Verified {
    report: VerifyReport,
    digest: Digest,
}

impl Verified {
    /// The digest that verified: the only one a workflow may tag or copy.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The repository and digest that verified, as `repository@sha256:…`.
    pub fn pinned(&self) -> &str {
        &self.report.pinned
    }

    /// The report of the checks that passed.
    pub fn report(&self) -> &VerifyReport {
        &self.report
    }

    pub fn into_report(self) -> VerifyReport {
        self.report
    }
}

/// What a verification decided.
#[derive(Clone, Debug)]
#[must_use = "a refused verdict must stop the workflow"]
pub enum Verdict {
    Verified(Box<Verified>),
    /// The report says which check failed; nothing may act on the artifact.
    Refused(Box<VerifyReport>),
}

impl Verdict {
    /// The verdict a report carries. Private to `verify`: a caller cannot build a report with
    /// `verified: true` and turn it into a [`Verified`].
    pub(super) fn of(report: VerifyReport) -> Verdict {
        match (report.verified, report.digest.clone()) {
            (true, Some(digest)) => Verdict::Verified(Box::new(Verified { report, digest })),
            _ => Verdict::Refused(Box::new(report)),
        }
    }

    /// The report, whatever the verdict.
    pub fn report(&self) -> &VerifyReport {
        match self {
            Verdict::Verified(v) => v.report(),
            Verdict::Refused(r) => r,
        }
    }
}
