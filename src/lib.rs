//! custody keeps the chain of custody of software artifacts: it records the source commit,
//! describes the build (SBOM, SLSA provenance), signs it, stores it in any OCI registry by
//! digest and verifies the whole chain where the artifact is consumed.
//!
//! The library is built in layers, each a folder that imports only from the layers before it in
//! this list (DEVELOPMENT.md has the rule; `tests/it/layers.rs` fails the build on an upward
//! import): `foundation` → `storage` → `evidence` → `decisions` → `workflows`. The library never
//! prints and never exits; the binary's `cli` module (`src/main.rs`) does both.

pub mod decisions;
pub mod evidence;
pub mod foundation;
#[doc(hidden)]
pub mod fuzzing;
pub mod storage;
pub mod workflows;
