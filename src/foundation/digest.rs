//! Content digests: the `Digest` newtype (`sha256:<64 hex>`) and a streaming hasher.
//!
//! Every byte custody reads from a store goes through [`Hasher`] or [`VerifyingReader`]; a digest
//! is parsed once at the edge and carried as a checked value afterwards.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::str::FromStr;
use std::sync::mpsc;
use std::thread;

use sha2::{Digest as _, Sha256};

/// The only algorithm custody writes and accepts.
pub const SHA256: &str = "sha256";

/// A checked `sha256:<64 lowercase hex>` content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("digest {input:?} has no algorithm prefix; expected sha256:<64 hex digits>")]
    MissingAlgorithm { input: String },
    #[error("digest {input:?} uses algorithm {algorithm:?}; only sha256 is supported")]
    UnsupportedAlgorithm { input: String, algorithm: String },
    #[error("digest {input:?} must have 64 lowercase hex digits after sha256:")]
    BadHex { input: String },
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_raw(Sha256::digest(bytes).into())
    }

    pub(crate) fn from_raw(raw: [u8; 32]) -> Digest {
        Digest {
            hex: hex::encode(raw),
        }
    }

    /// The digest of a 64-character lowercase hex string (no algorithm prefix).
    pub fn from_hex(hex: &str) -> Result<Digest, ParseError> {
        format!("{SHA256}:{hex}").parse()
    }

    /// The encoded part: 64 lowercase hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The raw 32 bytes.
    pub fn raw(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.hex, &mut out).expect("hex checked at construction");
        out
    }

    pub fn algorithm(&self) -> &'static str {
        SHA256
    }

    /// The tag under which the OCI 1.1 referrers tag schema stores this digest's referrers.
    pub fn fallback_tag(&self) -> String {
        format!("{SHA256}-{}", self.hex)
    }

    /// A short form for human output: `sha256:0123456789ab`.
    pub fn short(&self) -> String {
        format!("{SHA256}:{}", &self.hex[..12])
    }
}

impl FromStr for Digest {
    type Err = ParseError;

    fn from_str(input: &str) -> Result<Digest, ParseError> {
        let Some((algorithm, hex)) = input.split_once(':') else {
            return Err(ParseError::MissingAlgorithm {
                input: input.to_owned(),
            });
        };
        if algorithm != SHA256 {
            return Err(ParseError::UnsupportedAlgorithm {
                input: input.to_owned(),
                algorithm: algorithm.to_owned(),
            });
        }
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if hex.len() != 64 || !hex.bytes().all(lower_hex) {
            return Err(ParseError::BadHex {
                input: input.to_owned(),
            });
        }
        Ok(Digest {
            hex: hex.to_owned(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHA256}:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental SHA-256 that also counts bytes. Uses the CPU's SHA extensions when present.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Hasher {
        Hasher::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> Digest {
        Digest::from_raw(self.inner.finalize().into())
    }
}

/// Size of each read: large enough that the `read` call costs little beside hashing it.
const CHUNK: usize = 1 << 20;

/// Buffers in flight between the reading thread and the hashing thread in [`of_reader_ahead`]:
/// one being filled, one being hashed, one spare so neither waits for the other's hand-over.
const RING: usize = 3;

/// Digest and size of everything `reader` yields, read in large chunks.
pub fn of_reader(mut reader: impl Read) -> io::Result<(Digest, u64)> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = fill(&mut reader, &mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let len = hasher.len();
    Ok((hasher.finish(), len))
}

/// Digest and size of everything `reader` yields, like [`of_reader`], with reading on a second
/// thread a few buffers ahead of hashing. The copy out of the page cache and the hashing then
/// run side by side instead of taking turns, so a large file hashes at the hasher's own speed.
pub fn of_reader_ahead(mut reader: impl Read + Send) -> io::Result<(Digest, u64)> {
    // `filled` carries read buffers (or the read error) to the hasher; `empty` brings them back.
    // Only RING buffers exist, so neither channel ever holds more than RING messages.
    let (filled_tx, filled_rx) = mpsc::sync_channel::<io::Result<(Vec<u8>, usize)>>(RING);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(RING);
    for _ in 0..RING {
        empty_tx
            .send(vec![0u8; CHUNK])
            .expect("the receiver is still in scope");
    }
    thread::scope(|scope| {
        scope.spawn(move || {
            // Stops after end of input or an error, or when the hasher has gone away.
            while let Ok(mut buf) = empty_rx.recv() {
                let read = fill(&mut reader, &mut buf);
                let last = !matches!(read, Ok(n) if n > 0);
                if filled_tx.send(read.map(|n| (buf, n))).is_err() || last {
                    break;
                }
            }
        });
        let mut hasher = Hasher::new();
        loop {
            // A closed channel without an end-of-input message means the reader panicked; the
            // scope re-raises that panic, so no digest of a partial input is ever returned.
            let Ok(message) = filled_rx.recv() else {
                return Err(io::Error::other("the reading thread stopped early"));
            };
            let (buf, n) = message?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            // The reader may already have stopped at end of input; the buffer is then dropped.
            let _ = empty_tx.send(buf);
        }
        let len = hasher.len();
        Ok((hasher.finish(), len))
    })
}

/// Reads until `buf` is full or the input ends; the number of bytes read (0 at end of input).
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Digest and size of a file, streamed. Files larger than one read are read ahead on a second
/// thread ([`of_reader_ahead`]); smaller ones are not worth starting a thread for.
pub fn of_file(path: &Path) -> io::Result<(Digest, u64)> {
    let file = File::open(path)?;
    if file.metadata()?.len() > CHUNK as u64 {
        of_reader_ahead(file)
    } else {
        of_reader(file)
    }
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// The writer back, with the digest and length of everything written.
    pub fn finish(self) -> (W, Digest, u64) {
        let len = self.hasher.len();
        (self.inner, self.hasher.finish(), len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what it yields.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }

    pub fn finish(self) -> (Digest, u64) {
        let len = self.hasher.len();
        (self.hasher.finish(), len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_the_well_known_digest() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            Digest::of(b"{}").to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn parse_round_trips_and_rejects_malformed() {
        let d = Digest::of(b"x");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!(matches!(
            "e3b0".parse::<Digest>(),
            Err(ParseError::MissingAlgorithm { .. })
        ));
        assert!(matches!(
            format!("sha512:{}", d.hex()).parse::<Digest>(),
            Err(ParseError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            format!("sha256:{}", d.hex().to_uppercase()).parse::<Digest>(),
            Err(ParseError::BadHex { .. })
        ));
        assert!(matches!(
            "sha256:abc".parse::<Digest>(),
            Err(ParseError::BadHex { .. })
        ));
        assert!(matches!(
            "sha256:".parse::<Digest>(),
            Err(ParseError::BadHex { .. })
        ));
    }

    #[test]
    fn streaming_equals_one_shot() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (d, n) = of_reader(&data[..]).unwrap();
        assert_eq!(d, Digest::of(&data));
        assert_eq!(n, data.len() as u64);
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (out, d2, n2) = w.finish();
        assert_eq!((d2, n2), (d, n));
        assert_eq!(out, data);
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    const EDGE_SIZES: [usize; 6] = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 7];

    #[test]
    fn reading_ahead_equals_the_single_threaded_path_at_buffer_edges() {
        for len in EDGE_SIZES {
            let data = pattern(len);
            let ahead = of_reader_ahead(&data[..]).unwrap();
            assert_eq!(ahead, of_reader(&data[..]).unwrap(), "{len} bytes");
            assert_eq!(ahead, (Digest::of(&data), len as u64), "{len} bytes");
        }
    }

    #[test]
    fn of_file_equals_the_single_threaded_path_at_buffer_edges() {
        let dir = tempfile::tempdir().unwrap();
        for len in EDGE_SIZES {
            let data = pattern(len);
            let path = dir.path().join(format!("{len}.bin"));
            std::fs::write(&path, &data).unwrap();
            assert_eq!(
                of_file(&path).unwrap(),
                (Digest::of(&data), len as u64),
                "{len} bytes"
            );
        }
    }

    /// Yields `data` in uneven pieces with an interruption between them, then fails with
    /// `error` instead of reporting end of input (a disk error part-way through a file).
    struct Flaky {
        data: Vec<u8>,
        at: usize,
        interrupt: bool,
        error: Option<io::ErrorKind>,
    }

    impl Read for Flaky {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            if self.at == self.data.len() {
                return match self.error {
                    Some(kind) => Err(io::Error::new(kind, "medium error at sector 4711")),
                    None => Ok(0),
                };
            }
            let n = buf.len().min(100_003).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn short_and_interrupted_reads_hash_the_same() {
        let data = pattern(3 * CHUNK + 5);
        let reader = Flaky {
            data: data.clone(),
            at: 0,
            interrupt: false,
            error: None,
        };
        assert_eq!(
            of_reader_ahead(reader).unwrap(),
            (Digest::of(&data), data.len() as u64)
        );
    }

    #[test]
    fn a_read_error_part_way_is_reported_not_hashed_over() {
        for len in [0, CHUNK, 3 * CHUNK + 5] {
            let flaky = || Flaky {
                data: pattern(len),
                at: 0,
                interrupt: false,
                error: Some(io::ErrorKind::InvalidData),
            };
            for err in [
                of_reader_ahead(flaky()).unwrap_err(),
                of_reader(flaky()).unwrap_err(),
            ] {
                assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{len} bytes");
                assert_eq!(err.to_string(), "medium error at sector 4711");
            }
        }
    }

    #[test]
    fn fallback_tag_is_alg_dash_hex() {
        let d = Digest::of(b"x");
        assert_eq!(d.fallback_tag(), format!("sha256-{}", d.hex()));
        assert_eq!(d.raw().to_vec(), hex::decode(d.hex()).unwrap());
    }
}
