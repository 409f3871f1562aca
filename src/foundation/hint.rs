//! What an error tells the person who hit it beyond its message: the next step to take, and
//! whether it is a refusal (the input was checked and found wanting) rather than a failure to
//! run. Library errors implement [`Hint`] next to their variants; the CLI reads it to print
//! `hint:` and to choose the exit code.

/// Advice carried by an error type. Both methods default to "nothing to add".
pub trait Hint {
    /// A one-line suggestion for the person running the command, when there is one.
    fn hint(&self) -> Option<String> {
        None
    }

    /// True when the error is a refusal: content that failed a check, an immutable tag, an
    /// unsafe file name. False when custody could not do its job (network, bad input).
    fn is_refusal(&self) -> bool {
        false
    }
}
