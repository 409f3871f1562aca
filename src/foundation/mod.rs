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
