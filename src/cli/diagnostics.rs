//! How a command ends: its [`ExitStatus`], and when it fails, the [`Failure`] printed as
//! `error:` / `caused by:` / `hint:` lines (and, with `--output json`, the error document of
//! `schemas/error.schema.json`).

use std::fmt::Write as _;
use std::process::ExitCode;

use custody::evidence::{attach, sign};
use custody::foundation::hint::Hint;
use custody::storage::{store, transfer};
use custody::workflows::release;

/// The three ways a command ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Done, or verified (exit 0).
    Success,
    /// A check refused the input: verification, policy, an immutable tag, a lying store
    /// (exit 1).
    Failure,
    /// custody could not do its job: bad input, network, a missing file (exit 2).
    Error,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Error => 2,
        }
    }

    /// Success when `ok`, else a refusal.
    pub fn refused_unless(ok: bool) -> ExitStatus {
        if ok {
            ExitStatus::Success
        } else {
            ExitStatus::Failure
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status.code())
    }
}

/// An error with the exit status it maps to and an optional hint.
pub struct Failure {
    pub error: anyhow::Error,
    pub status: ExitStatus,
    pub hint: Option<String>,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        let error = e.into();
        let advice = || error.chain().filter_map(as_hint);
        let status = if advice().any(|h| h.is_refusal()) {
            ExitStatus::Failure
        } else {
            ExitStatus::Error
        };
        let hint = advice().find_map(|h| h.hint());
        Failure {
            error,
            status,
            hint,
        }
    }
}

/// The library error types that carry a [`Hint`]. Each delegates to the errors it wraps, so
/// one entry per outer type is enough (a transparent wrapper hides the inner error from the
/// chain).
fn as_hint<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a dyn Hint> {
    macro_rules! first_of {
        ($($t:ty),* $(,)?) => {
            $(if let Some(e) = cause.downcast_ref::<$t>() {
                return Some(e);
            })*
        };
    }
    first_of!(
        store::Error,
        transfer::Error,
        attach::Error,
        attach::SignArtifactError,
        attach::recursive::Error,
        release::Error,
        sign::SignerSetupError,
        sign::keys::KeyError,
        custody::decisions::verify::Error,
        custody::decisions::policy::PolicyError,
        custody::decisions::policy::SourcesScopeError,
        custody::evidence::trust::TrustError,
    );
    None
}

/// The lines of standard error for `error`: the message, each cause, then the hint.
pub fn render(error: &anyhow::Error, hint: Option<&str>) -> String {
    let mut out = format!("error: {error}\n");
    for cause in error.chain().skip(1) {
        let _ = writeln!(out, "  caused by: {cause}");
    }
    if let Some(hint) = hint {
        let _ = writeln!(out, "  hint: {hint}");
    }
    out
}

/// The error document of `--output json` (`schemas/error.schema.json`).
pub fn document(failure: &Failure) -> serde_json::Value {
    let causes: Vec<String> = failure.error.chain().map(|c| c.to_string()).collect();
    serde_json::json!({
        "error": failure.error.to_string(),
        "causes": causes,
        "hint": failure.hint,
        "exitCode": failure.status.code(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lying_store_behind_a_transparent_wrapper_is_a_refusal_with_its_hint() {
        let lie = store::Error::DigestMismatch {
            what: "blob".into(),
            expected: custody::foundation::digest::Digest::of(b"a"),
            found: custody::foundation::digest::Digest::of(b"b"),
        };
        let wrapped = release::Error::Attach(attach::Error::Transfer(transfer::Error::Store(lie)));
        let failure = Failure::from(anyhow::Error::new(wrapped).context("cannot release"));
        assert_eq!(failure.status, ExitStatus::Failure);
        assert!(
            failure
                .hint
                .as_deref()
                .is_some_and(|h| h.starts_with("the store returned content other"))
        );
    }

    #[test]
    fn an_error_without_advice_could_not_run() {
        let failure = Failure::from(anyhow::anyhow!("no such file"));
        assert_eq!(failure.status, ExitStatus::Error);
        assert_eq!(failure.hint, None);
        assert_eq!(
            render(&failure.error.context("cannot read x"), Some("look")),
            "error: cannot read x\n  caused by: no such file\n  hint: look\n"
        );
    }
}
