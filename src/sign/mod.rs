//! Signing and bundle verification: cosign-compatible keys, DSSE envelopes, Sigstore bundles
//! (v0.1-v0.3 read, v0.3 written), the `Signer` seam (key now, keyless later) and verification.

pub mod keys;
