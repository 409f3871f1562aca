//! Foundation: the vocabulary every other layer speaks. Digests, references in one canonical
//! form, OCI descriptors and media types, time, globs, the HTTP client and the `Hint` that errors
//! carry to the CLI. Imports nothing from the layers above.

pub mod digest;
pub mod glob;
pub mod hint;
pub mod http;
pub mod oci;
pub mod reference;
pub mod spool;
pub mod time;

/// custody's folder of caches: `$XDG_CACHE_HOME/custody` when that is an absolute path (the
/// XDG base directory spec says to ignore a relative one), else `$HOME/.cache/custody`; `None`
/// without either.
pub fn cache_home(env: impl Fn(&str) -> Option<String>) -> Option<std::path::PathBuf> {
    use std::path::{Path, PathBuf};
    let base = env("XDG_CACHE_HOME")
        .filter(|v| Path::new(v).is_absolute())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("custody"))
}
