//! The tamper-evident audit log: one JSON line per action that changed storage or made a
//! decision, each carrying the SHA-256 of the previous line's exact bytes, with periodic
//! checkpoints signed by a key.
//!
//! Appends are `O_APPEND`, one `write` per line, then `fsync`, under an exclusive file lock, so
//! a crash loses at most the line being written. The next append finds that torn line, ends it,
//! and writes a `recover` record naming its size and hash before continuing the chain.
//! [`verify`] names the first bad line and what was done to it; the latest checkpoint is also
//! kept in a sidecar file (`<log>.checkpoint`), so cutting the log back behind it shows.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::evidence::attach::SignedAttachment;
use crate::evidence::attest::Timestamp;
#[cfg(test)]
use crate::evidence::sign::SigningKey;
use crate::evidence::sign::{KeySigner, PublicKey, SignError};
use crate::foundation::digest::Digest;
use crate::storage::transfer::{CopyOutcome, PushOutcome};
use crate::workflows::prune::Deletion;
use crate::workflows::release::ReleaseOutcome;

/// Longest line a record may take; longer lines are refused when written and when read.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Largest log [`verify`] reads in one go.
pub const MAX_LOG_BYTES: u64 = 1024 * 1024 * 1024;
/// What every line carries in `type`, so a log shipper can pick them out of other output.
pub const RECORD_TYPE: &str = "custody.audit/v1";
/// Default number of records between checkpoints.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 100;
/// What a checkpoint signature covers: this prefix, the checkpoint's seq and the head hash.
const CHECKPOINT_CONTEXT: &str = "custody-audit-checkpoint/v1";

/// How an action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// It happened (or, for a verdict, the artifact passed).
    Ok,
    /// A check refused it (verification or policy failed, a tag was immutable).
    Refused,
    /// It could not run to the end.
    Failed,
}

/// What a caller records.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// CI identity or local user.
    pub actor: String,
    /// `push`, `copy`, `promote`, `sign`, `attest`, `verify`, `prune`, …
    pub action: String,
    pub artifact: Option<Digest>,
    pub reference: Option<String>,
    pub outcome: Outcome,
    pub details: serde_json::Value,
}

impl Record {
    pub fn new(actor: impl Into<String>, action: impl Into<String>, outcome: Outcome) -> Record {
        Record {
            actor: actor.into(),
            action: action.into(),
            artifact: None,
            reference: None,
            outcome,
            details: serde_json::Value::Null,
        }
    }
}

/// What an audited action did, from its typed outcome: a record's artifact and details are
/// read from these, never from what was printed.
#[derive(Clone, Debug)]
pub enum Done {
    Pushed(Box<PushOutcome>),
    Copied(Box<CopyOutcome>),
    /// `sign` or `attest`: the referrer written about `subject`.
    Attached {
        subject: Digest,
        pinned: String,
        predicate_type: String,
        referrer: Digest,
    },
    Pruned(Vec<Deletion>),
    /// A release, and whether what it published verified before the tag.
    Released {
        outcome: Box<ReleaseOutcome>,
        verified: bool,
    },
}

impl Done {
    /// A signature or attestation written by `sign` or `attest`; `pinned` names the subject.
    pub fn attached(pinned: String, attachment: &SignedAttachment) -> Done {
        Done::Attached {
            subject: attachment.subject.digest.clone(),
            pinned,
            predicate_type: attachment.predicate_type.clone(),
            referrer: attachment.referrer.digest.clone(),
        }
    }
}

impl Record {
    /// The record of `action` on `reference` that ended as `done` says.
    pub fn done(
        actor: impl Into<String>,
        action: impl Into<String>,
        reference: impl Into<String>,
        done: &Done,
    ) -> Record {
        let mut record = Record::new(actor, action, Outcome::Ok);
        record.reference = Some(reference.into());
        let (artifact, details) = match done {
            Done::Pushed(o) => (
                Some(o.digest.clone()),
                serde_json::json!({
                    "pinned": o.pinned,
                    "tag": o.tag,
                    "tagOutcome": o.tag_outcome,
                }),
            ),
            Done::Copied(o) => (
                o.digest.clone(),
                serde_json::json!({
                    "pinned": o.pinned,
                    "tag": o.tag,
                    "tagOutcome": o.tag_outcome,
                }),
            ),
            Done::Attached {
                subject,
                pinned,
                predicate_type,
                referrer,
            } => (
                Some(subject.clone()),
                serde_json::json!({
                    "pinned": pinned,
                    "predicateType": predicate_type,
                    "referrer": referrer,
                }),
            ),
            Done::Pruned(deletions) => (None, serde_json::json!({ "deletions": deletions })),
            Done::Released { outcome, verified } => (
                Some(outcome.digest.clone()),
                serde_json::json!({
                    "pinned": outcome.pinned,
                    "tag": outcome.tag,
                    "tagOutcome": outcome.tag_outcome,
                    "builderId": outcome.builder_id,
                    "verified": verified,
                }),
            ),
        };
        record.artifact = artifact;
        record.details = details;
        record
    }
}

/// A signed checkpoint, inside a `checkpoint` record and in the sidecar file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Checkpoint {
    /// The seq of the checkpoint record.
    pub seq: u64,
    /// The hash of the line before it: the head of everything it seals.
    pub head: Digest,
    /// base64 of SHA-256(DER SPKI) of the signing key, as cosign names keys.
    pub key_hint: String,
    /// base64 DER ECDSA signature over [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// The bytes signed: `custody-audit-checkpoint/v1\n<seq>\n<head>\n`.
    pub fn message(seq: u64, head: &Digest) -> Vec<u8> {
        format!("{CHECKPOINT_CONTEXT}\n{seq}\n{head}\n").into_bytes()
    }

    fn sign(seq: u64, head: &Digest, key: &KeySigner) -> Result<Checkpoint, SignError> {
        let message = Checkpoint::message(seq, head);
        Ok(Checkpoint {
            seq,
            head: head.clone(),
            key_hint: key.public_key().hint(),
            signature: STANDARD.encode(key.backend().sign_message(&message)?),
        })
    }

    fn verify(&self, key: &PublicKey) -> bool {
        let Ok(signature) = STANDARD.decode(&self.signature) else {
            return false;
        };
        key.verify(&Checkpoint::message(self.seq, &self.head), &signature)
            .is_ok()
    }
}

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Entry {
    #[serde(rename = "type")]
    pub record_type: String,
    pub seq: u64,
    pub time: Timestamp,
    pub actor: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// SHA-256 of the previous line's bytes (without its newline); zeros for the first.
    pub prev: Digest,
}

/// The `prev` of the first record.
pub fn genesis() -> Digest {
    Digest::from_raw([0; 32])
}

/// The action name of checkpoint records.
pub const ACTION_CHECKPOINT: &str = "checkpoint";
/// The action name of the record written after a torn line.
pub const ACTION_RECOVER: &str = "recover";

/// Where records go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Appended to a file (created when missing).
    File(PathBuf),
    /// Written to standard output as JSON lines, for a log shipper. The chain then runs within
    /// one process only; integrity across runs is the shipper's job.
    Stdout,
}

/// How to open the log.
#[derive(Debug)]
pub struct Config {
    pub destination: Destination,
    /// A checkpoint is written whenever the next seq is a multiple of this (0: never).
    pub checkpoint_every: u64,
    /// Signs checkpoints (any key kind). Without it no checkpoints are written.
    pub checkpoint_key: Option<KeySigner>,
}

impl Config {
    pub fn new(destination: Destination) -> Config {
        Config {
            destination,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            checkpoint_key: None,
        }
    }
}

/// Why the log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context} {path}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the last complete line of {path} is not an audit record ({reason}); refusing to extend a chain that cannot be read (run custody audit verify)"
    )]
    UnreadableTail { path: PathBuf, reason: String },
    #[error("record is {found} bytes, more than the {limit} a line may take")]
    RecordTooLarge { found: usize, limit: usize },
    #[error("{path} is larger than {limit} bytes")]
    LogTooLarge { path: PathBuf, limit: u64 },
    #[error("checkpoint file {path} is not valid: {reason}")]
    BadCheckpointFile { path: PathBuf, reason: String },
    /// The record before it was written; the checkpoint was not.
    #[error("the checkpoint key could not sign")]
    CheckpointKey(#[from] SignError),
}

/// An open audit log.
#[derive(Debug)]
pub struct Log {
    config: Config,
    /// For stdout: the last seq and line hash written by this process.
    stream_head: Option<(u64, Digest)>,
}

/// The sidecar file holding the latest checkpoint of `log`.
pub fn checkpoint_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".checkpoint");
    PathBuf::from(name)
}

impl Log {
    /// Opens (creating when missing) the log `config` names.
    pub fn open(config: Config) -> Result<Log, Error> {
        if let Destination::File(path) = &config.destination {
            open_append(path)?;
        }
        Ok(Log {
            config,
            stream_head: None,
        })
    }

    /// Appends `record` (and a checkpoint when one is due); returns what was written.
    pub fn append(&mut self, record: Record) -> Result<Vec<Entry>, Error> {
        self.append_at(
            record,
            Timestamp::from_system_time(std::time::SystemTime::now()),
        )
    }

    /// [`Log::append`] with a given time (tests, replays).
    pub fn append_at(&mut self, record: Record, time: Timestamp) -> Result<Vec<Entry>, Error> {
        match self.config.destination.clone() {
            Destination::Stdout => {
                let (seq, prev) = self.stream_head.clone().unwrap_or((0, genesis()));
                let mut out = std::io::stdout().lock();
                let mut sink = |line: &[u8]| {
                    out.write_all(line)
                        .and_then(|()| out.write_all(b"\n"))
                        .and_then(|()| out.flush())
                        .map_err(|source| Error::Io {
                            context: "cannot write the audit record to",
                            path: PathBuf::from("standard output"),
                            source,
                        })
                };
                let (written, head) = self.write_records(record, time, seq, prev, &mut sink)?;
                self.stream_head = Some(head);
                Ok(written)
            }
            Destination::File(path) => self.append_file(&path, record, time),
        }
    }

    fn append_file(
        &mut self,
        path: &Path,
        record: Record,
        time: Timestamp,
    ) -> Result<Vec<Entry>, Error> {
        let io = |context: &'static str| {
            let path = path.to_owned();
            move |source| Error::Io {
                context,
                path,
                source,
            }
        };
        let mut file = open_append(path)?;
        file.lock().map_err(io("cannot lock"))?;
        let tail = read_tail(&mut file).map_err(io("cannot read the end of"))?;
        let (mut seq, mut prev) = match &tail.last_line {
            None => (0, genesis()),
            Some(line) => match parse_line(line) {
                Ok(entry) => (entry.seq, Digest::of(line)),
                Err(reason) => {
                    return Err(Error::UnreadableTail {
                        path: path.to_owned(),
                        reason,
                    });
                }
            },
        };
        let mut sink = |line: &[u8]| {
            let mut bytes = Vec::with_capacity(line.len() + 1);
            bytes.extend_from_slice(line);
            bytes.push(b'\n');
            // One write per line: with O_APPEND the kernel places it at the end in one piece.
            file.write_all(&bytes).map_err(io("cannot append to"))?;
            file.sync_data().map_err(io("cannot flush"))
        };
        let mut written = Vec::new();
        if let Some(torn) = &tail.torn {
            sink(b"")?; // ends the torn line, so the next record starts on its own line
            let recover = Entry {
                record_type: RECORD_TYPE.to_owned(),
                seq: seq + 1,
                time: time.clone(),
                actor: record.actor.clone(),
                action: ACTION_RECOVER.to_owned(),
                artifact: None,
                reference: None,
                outcome: Outcome::Ok,
                details: serde_json::json!({
                    "tornBytes": torn.len(),
                    "tornSha256": Digest::of(torn),
                }),
                checkpoint: None,
                prev: prev.clone(),
            };
            let line = encode(&recover)?;
            sink(&line)?;
            seq += 1;
            prev = Digest::of(&line);
            written.push(recover);
        }
        let (mut entries, _) = self.write_records(record, time, seq, prev, &mut sink)?;
        written.append(&mut entries);
        if let Some(cp) = written.iter().rev().find_map(|e| e.checkpoint.clone()) {
            write_sidecar(path, &cp)?;
        }
        Ok(written)
    }

    /// Writes the record, then a checkpoint when one is due. Returns the entries and the new
    /// head (seq, hash of the last line).
    fn write_records(
        &self,
        record: Record,
        time: Timestamp,
        seq: u64,
        prev: Digest,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<(Vec<Entry>, (u64, Digest)), Error> {
        let entry = Entry {
            record_type: RECORD_TYPE.to_owned(),
            seq: seq + 1,
            time: time.clone(),
            actor: record.actor.clone(),
            action: record.action,
            artifact: record.artifact,
            reference: record.reference,
            outcome: record.outcome,
            details: record.details,
            checkpoint: None,
            prev,
        };
        let line = encode(&entry)?;
        sink(&line)?;
        let mut head = (entry.seq, Digest::of(&line));
        let mut written = vec![entry];
        let every = self.config.checkpoint_every;
        if let Some(key) = &self.config.checkpoint_key
            && every > 0
            && (head.0 + 1).is_multiple_of(every)
        {
            let seq = head.0 + 1;
            let cp = Entry {
                record_type: RECORD_TYPE.to_owned(),
                seq,
                time,
                actor: record.actor,
                action: ACTION_CHECKPOINT.to_owned(),
                artifact: None,
                reference: None,
                outcome: Outcome::Ok,
                details: serde_json::Value::Null,
                checkpoint: Some(Checkpoint::sign(seq, &head.1, key)?),
                prev: head.1.clone(),
            };
            let line = encode(&cp)?;
            sink(&line)?;
            head = (seq, Digest::of(&line));
            written.push(cp);
        }
        Ok((written, head))
    }
}

fn encode(entry: &Entry) -> Result<Vec<u8>, Error> {
    let line = serde_json::to_vec(entry).expect("audit entries serialise");
    if line.len() > MAX_LINE_BYTES {
        return Err(Error::RecordTooLarge {
            found: line.len(),
            limit: MAX_LINE_BYTES,
        });
    }
    Ok(line)
}

fn open_append(path: &Path) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    options.append(true).read(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o640);
    }
    options.open(path).map_err(|source| Error::Io {
        context: "cannot open the audit log",
        path: path.to_owned(),
        source,
    })
}

fn write_sidecar(log: &Path, cp: &Checkpoint) -> Result<(), Error> {
    let path = checkpoint_path(log);
    let mut file = crate::storage::store::AtomicFile::create(&path).map_err(|e| Error::Io {
        context: "cannot write the checkpoint file",
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let bytes = serde_json::to_vec_pretty(cp).expect("checkpoints serialise");
    file.write_all(&bytes)
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|source| Error::Io {
            context: "cannot write the checkpoint file",
            path: path.clone(),
            source,
        })?;
    file.commit().map_err(|e| Error::Io {
        context: "cannot write the checkpoint file",
        path,
        source: std::io::Error::other(e.to_string()),
    })
}

/// Reads a checkpoint file written next to a log (or kept elsewhere by its operator).
pub fn read_checkpoint_file(path: &Path) -> Result<Checkpoint, Error> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_LINE_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(|source| Error::Io {
            context: "cannot read the checkpoint file",
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() > MAX_LINE_BYTES {
        return Err(Error::BadCheckpointFile {
            path: path.to_owned(),
            reason: format!("larger than {MAX_LINE_BYTES} bytes"),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::BadCheckpointFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

struct Tail {
    /// The last newline-terminated line, without its newline.
    last_line: Option<Vec<u8>>,
    /// Bytes after the last newline: a line a crash cut short.
    torn: Option<Vec<u8>>,
}

/// Reads the end of the file backwards until the last complete line is found.
fn read_tail(file: &mut File) -> std::io::Result<Tail> {
    let len = file.seek(SeekFrom::End(0))?;
    let window = (2 * MAX_LINE_BYTES as u64 + 2).min(len);
    file.seek(SeekFrom::Start(len - window))?;
    let mut buf = Vec::with_capacity(window as usize);
    Read::by_ref(file).take(window).read_to_end(&mut buf)?;
    let (complete, torn) = match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => (&buf[..i], &buf[i + 1..]),
        None if window == len => (&buf[..0], &buf[..]),
        // No newline in the window: the tail is one oversized fragment.
        None => (&buf[..0], &buf[..]),
    };
    let torn = (!torn.is_empty()).then(|| torn.to_vec());
    let last_line = if complete.is_empty() && buf.first() != Some(&b'\n') {
        None
    } else {
        let start = complete
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        Some(complete[start..].to_vec())
    };
    Ok(Tail { last_line, torn })
}

/// Parses one line (without its newline) into an entry, bounded.
pub fn parse_line(line: &[u8]) -> Result<Entry, String> {
    if line.len() > MAX_LINE_BYTES {
        return Err(format!("line is longer than {MAX_LINE_BYTES} bytes"));
    }
    let entry: Entry = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if entry.record_type != RECORD_TYPE {
        return Err(format!(
            "type is {:?}, expected {RECORD_TYPE:?}",
            entry.record_type
        ));
    }
    if entry.action == ACTION_CHECKPOINT && entry.checkpoint.is_none() {
        return Err("checkpoint record without a checkpoint".into());
    }
    if let Some(cp) = &entry.checkpoint
        && (cp.seq != entry.seq || cp.head != entry.prev)
    {
        return Err("checkpoint does not name its own record's seq and prev".into());
    }
    Ok(entry)
}

// ------------------------------------------------------------------------------ verifying

/// What was done to the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tampering {
    /// A record's bytes changed (or it is no longer a record).
    Edited,
    /// Records are missing.
    Deleted,
    /// Records are out of order.
    Reordered,
    /// A record was written that does not extend the chain.
    OutOfChain,
    /// The log ends before a checkpoint known to exist.
    Truncated,
    /// A checkpoint's signature does not verify with the key.
    BadCheckpointSignature,
}

/// The first bad record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub kind: Tampering,
    /// 1-based line number in the file.
    pub line: usize,
    pub seq: Option<u64>,
    pub detail: String,
}

/// A line a crash cut short.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Torn {
    pub line: usize,
    pub bytes: usize,
}

/// What [`verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub records: usize,
    pub last_seq: Option<u64>,
    pub head: Option<Digest>,
    /// Checkpoints found, and how many were checked against a key.
    pub checkpoints: usize,
    pub checkpoints_verified: usize,
    pub last_checkpoint: Option<u64>,
    /// Records after the last checkpoint: nothing signed protects them against truncation.
    pub unsealed: usize,
    /// Lines a crash cut short that a `recover` record accounts for.
    pub recovered: Vec<usize>,
    /// A torn last line: a crash during the last write.
    pub torn_tail: Option<Torn>,
    /// The first sign of tampering; `None` when the log is intact.
    pub problem: Option<Problem>,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// What verification checks beyond the chain.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Checks every checkpoint's signature.
    pub key: Option<PublicKey>,
    /// A checkpoint known from elsewhere (the sidecar file, a copy kept off-host): the log must
    /// reach it and agree with it.
    pub known_checkpoint: Option<Checkpoint>,
}

struct Parsed<'a> {
    line_no: usize,
    bytes: &'a [u8],
    entry: Entry,
}

/// Reads and verifies a log file.
pub fn verify_file(path: &Path, options: &VerifyOptions) -> Result<Verification, Error> {
    let file = File::open(path).map_err(|source| Error::Io {
        context: "cannot open the audit log",
        path: path.to_owned(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_LOG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Io {
            context: "cannot read the audit log",
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_LOG_BYTES {
        return Err(Error::LogTooLarge {
            path: path.to_owned(),
            limit: MAX_LOG_BYTES,
        });
    }
    Ok(verify(&bytes, options))
}

/// Verifies a whole log: the chain, the order, the checkpoints and the known checkpoint.
pub fn verify(bytes: &[u8], options: &VerifyOptions) -> Verification {
    let mut v = Verification::default();
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // `split` yields an empty last piece when the file ends with a newline.
    let last = lines.pop().unwrap_or_default();
    if !last.is_empty() {
        v.torn_tail = Some(Torn {
            line: lines.len() + 1,
            bytes: last.len(),
        });
    }
    let mut parsed: Vec<Parsed> = Vec::new();
    let mut problem: Option<Problem> = None;
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        match parse_line(lines[i]) {
            Ok(entry) => parsed.push(Parsed {
                line_no,
                bytes: lines[i],
                entry,
            }),
            Err(reason) => {
                // A torn line ended by the next append is fine when a recover record names it.
                let accounted = lines
                    .get(i + 1)
                    .and_then(|l| parse_line(l).ok())
                    .is_some_and(|next| {
                        next.action == ACTION_RECOVER
                            && next.details.get("tornSha256").and_then(|h| h.as_str())
                                == Some(Digest::of(lines[i]).to_string().as_str())
                            && next.details.get("tornBytes").and_then(|n| n.as_u64())
                                == Some(lines[i].len() as u64)
                    });
                if accounted {
                    v.recovered.push(line_no);
                } else if problem.is_none() {
                    problem = Some(Problem {
                        kind: Tampering::Edited,
                        line: line_no,
                        seq: None,
                        detail: format!("line {line_no} is not an audit record: {reason}"),
                    });
                }
            }
        }
        i += 1;
    }
    v.records = parsed.len();
    if let Some(p) = chain_problem(&parsed, options, &mut v) {
        problem = match problem {
            Some(q) if q.line <= p.line => Some(q),
            _ => Some(p),
        };
    }
    if problem.is_none()
        && let Some(p) = known_checkpoint_problem(&parsed, options)
    {
        problem = Some(p);
    }
    if let Some(last) = parsed.last() {
        v.last_seq = Some(last.entry.seq);
        v.head = Some(Digest::of(last.bytes));
    }
    v.unsealed = match v.last_checkpoint {
        Some(cp) => parsed.iter().filter(|p| p.entry.seq > cp).count(),
        None => parsed.len(),
    };
    v.problem = problem;
    v
}

fn chain_problem(
    parsed: &[Parsed],
    options: &VerifyOptions,
    v: &mut Verification,
) -> Option<Problem> {
    let hashes: Vec<Digest> = parsed.iter().map(|p| Digest::of(p.bytes)).collect();
    let problem = |kind, p: &Parsed, detail: String| Problem {
        kind,
        line: p.line_no,
        seq: Some(p.entry.seq),
        detail,
    };
    // The last checkpoint with a good signature (or any checkpoint, without a key): a break
    // before it means a record it vouches for was edited, not that a record was slipped in.
    let vouched_up_to = parsed
        .iter()
        .filter(|p| {
            p.entry
                .checkpoint
                .as_ref()
                .is_some_and(|cp| options.key.as_ref().is_none_or(|k| cp.verify(k)))
        })
        .map(|p| p.entry.seq)
        .max();
    let mut first_problem = None;
    for (i, p) in parsed.iter().enumerate() {
        let e = &p.entry;
        if let Some(cp) = &e.checkpoint {
            v.checkpoints += 1;
            if let Some(key) = &options.key {
                if !cp.verify(key) {
                    first_problem.get_or_insert(problem(
                        Tampering::BadCheckpointSignature,
                        p,
                        format!(
                            "checkpoint seq {} does not verify with the given key (key hint {})",
                            e.seq, cp.key_hint
                        ),
                    ));
                } else {
                    v.checkpoints_verified += 1;
                }
            }
            v.last_checkpoint = Some(e.seq);
        }
        if first_problem.is_some() {
            continue;
        }
        let (expected_seq, expected_prev) = match i {
            0 => (1, genesis()),
            _ => (parsed[i - 1].entry.seq + 1, hashes[i - 1].clone()),
        };
        if e.seq != expected_seq {
            let later = parsed[i + 1..].iter().any(|q| q.entry.seq == expected_seq);
            first_problem = Some(if later {
                problem(
                    Tampering::Reordered,
                    p,
                    format!(
                        "record seq {} is at line {} where seq {expected_seq} belongs; seq {expected_seq} comes later",
                        e.seq, p.line_no
                    ),
                )
            } else if e.seq > expected_seq {
                let gap = if e.seq - 1 == expected_seq {
                    format!("record seq {expected_seq} is")
                } else {
                    format!("records seq {expected_seq}..={} are", e.seq - 1)
                };
                problem(
                    Tampering::Deleted,
                    p,
                    format!("{gap} missing before line {}", p.line_no),
                )
            } else {
                problem(
                    Tampering::OutOfChain,
                    p,
                    format!(
                        "record seq {} at line {} repeats a sequence number already used; it was written outside the chain",
                        e.seq, p.line_no
                    ),
                )
            });
            continue;
        }
        if e.prev != expected_prev && i == 0 {
            first_problem = Some(problem(
                Tampering::OutOfChain,
                p,
                format!(
                    "the first record, seq {}, does not start a chain (its prev is not the genesis hash)",
                    e.seq
                ),
            ));
        } else if e.prev != expected_prev {
            let forked = hashes[..i.saturating_sub(1)].contains(&e.prev);
            let vouched = vouched_up_to.is_some_and(|cp| cp >= e.seq);
            first_problem = Some(if forked {
                problem(
                    Tampering::OutOfChain,
                    p,
                    format!(
                        "record seq {} extends an older record, not the one before it: it was written outside the chain",
                        e.seq
                    ),
                )
            } else if vouched || i + 1 < parsed.len() {
                let before = &parsed[i - 1];
                Problem {
                    kind: Tampering::Edited,
                    line: before.line_no,
                    seq: Some(before.entry.seq),
                    detail: format!(
                        "record seq {} no longer hashes to the prev that record seq {} holds{}",
                        before.entry.seq,
                        e.seq,
                        if vouched {
                            " (a signed checkpoint vouches for the later record)"
                        } else {
                            " (or the later record was written outside the chain)"
                        }
                    ),
                }
            } else {
                problem(
                    Tampering::OutOfChain,
                    p,
                    format!(
                        "the last record, seq {}, does not extend the record before it: it was appended outside the chain",
                        e.seq
                    ),
                )
            });
        }
    }
    first_problem
}

fn known_checkpoint_problem(parsed: &[Parsed], options: &VerifyOptions) -> Option<Problem> {
    let known = options.known_checkpoint.as_ref()?;
    let last = parsed.last();
    let line_after = last.map_or(1, |p| p.line_no + 1);
    if let Some(key) = &options.key
        && !known.verify(key)
    {
        return Some(Problem {
            kind: Tampering::BadCheckpointSignature,
            line: line_after,
            seq: Some(known.seq),
            detail: format!(
                "the known checkpoint (seq {}) does not verify with the given key",
                known.seq
            ),
        });
    }
    match parsed.iter().find(|p| p.entry.seq == known.seq) {
        Some(p) if p.entry.prev == known.head => None,
        Some(p) => Some(Problem {
            kind: Tampering::Edited,
            line: p.line_no,
            seq: Some(p.entry.seq),
            detail: format!(
                "record seq {} has prev {}, but the known checkpoint sealed {}: the log before it was rewritten",
                p.entry.seq, p.entry.prev, known.head
            ),
        }),
        None => Some(Problem {
            kind: Tampering::Truncated,
            line: line_after,
            seq: last.map(|p| p.entry.seq),
            detail: format!(
                "the log ends at seq {} but a checkpoint at seq {} was signed: records were cut off",
                last.map_or(0, |p| p.entry.seq),
                known.seq
            ),
        }),
    }
}

// ------------------------------------------------------------------------------ showing

/// Filters for [`show`]; every set filter must match.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// A digest, or a substring of the reference.
    pub artifact: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

impl Filter {
    pub fn matches(&self, e: &Entry) -> bool {
        let artifact = self.artifact.as_deref().is_none_or(|a| {
            e.artifact.as_ref().is_some_and(|d| d.to_string() == a)
                || e.reference.as_deref().is_some_and(|r| r.contains(a))
        });
        artifact
            && self.actor.as_deref().is_none_or(|a| e.actor == a)
            && self.action.as_deref().is_none_or(|a| e.action == a)
            && self
                .since
                .as_ref()
                .is_none_or(|t| e.time.as_str() >= t.as_str())
            && self
                .until
                .as_ref()
                .is_none_or(|t| e.time.as_str() <= t.as_str())
    }
}

/// The records of a log that match `filter`, in order. Lines that are not records are skipped
/// (`audit verify` is what judges them).
pub fn show(bytes: &[u8], filter: &Filter) -> Vec<Entry> {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(|l| parse_line(l).ok())
        .filter(|e| filter.matches(e))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_built_from_typed_outcomes() {
        let digest = Digest::of(b"artifact");
        let outcome = ReleaseOutcome {
            digest: digest.clone(),
            pinned: format!("registry.example/app@{digest}"),
            tag: Some("v1".into()),
            tag_outcome: Some(crate::storage::transfer::TagOutcome::Created),
            source: None,
            builder_id: "https://custody.dev/local".into(),
            local_build: true,
            sbom_components: 0,
            lockfiles: Vec::new(),
            referrers: Vec::new(),
            legacy_tags: Vec::new(),
            already_released: false,
            platforms: Vec::new(),
            adopted: Vec::new(),
        };
        let done = Done::Released {
            outcome: Box::new(outcome),
            verified: true,
        };
        let r = Record::done("local:tester", "release", "registry.example/app:v1", &done);
        assert_eq!(r.outcome, Outcome::Ok);
        assert_eq!(r.artifact, Some(digest.clone()));
        assert_eq!(r.reference.as_deref(), Some("registry.example/app:v1"));
        assert_eq!(
            r.details,
            serde_json::json!({
                "pinned": format!("registry.example/app@{digest}"),
                "tag": "v1",
                "tagOutcome": { "result": "created" },
                "builderId": "https://custody.dev/local",
                "verified": true,
            })
        );

        let referrer = Digest::of(b"bundle");
        let done = Done::Attached {
            subject: digest.clone(),
            pinned: "oci:store@x".into(),
            predicate_type: "https://slsa.dev/provenance/v1".into(),
            referrer: referrer.clone(),
        };
        let r = Record::done("local:tester", "attest", "oci:store:v1", &done);
        assert_eq!(r.artifact, Some(digest));
        assert_eq!(r.details["referrer"], referrer.to_string());
        assert_eq!(r.details["predicateType"], "https://slsa.dev/provenance/v1");
        let r = Record::done(
            "local:tester",
            "prune",
            "oci:store",
            &Done::Pruned(Vec::new()),
        );
        assert_eq!(r.artifact, None);
        assert_eq!(r.details, serde_json::json!({ "deletions": [] }));
    }

    fn key() -> SigningKey {
        SigningKey::generate_p256().unwrap()
    }

    fn record(n: usize) -> Record {
        let mut r = Record::new("local:tester", "push", Outcome::Ok);
        r.artifact = Some(Digest::of(format!("artifact {n}").as_bytes()));
        r.reference = Some(format!("localhost/app:v{n}"));
        r
    }

    fn write_log(dir: &Path, n: usize, every: u64, key: Option<SigningKey>) -> PathBuf {
        let path = dir.join("audit.log");
        let mut config = Config::new(Destination::File(path.clone()));
        config.checkpoint_every = every;
        config.checkpoint_key = key.map(KeySigner::new);
        let mut log = Log::open(config).unwrap();
        for i in 0..n {
            log.append_at(record(i), Timestamp::from_unix(1_700_000_000 + i as u64))
                .unwrap();
        }
        path
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn rewrite(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    fn check(path: &Path, options: &VerifyOptions) -> Verification {
        verify(&std::fs::read(path).unwrap(), options)
    }

    #[test]
    fn an_untouched_log_verifies_with_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let k = key();
        let public = k.public_key();
        let path = write_log(dir.path(), 7, 4, Some(k));
        // 7 records + checkpoints at seq 4 and 8.
        assert_eq!(lines(&path).len(), 9);
        let known = read_checkpoint_file(&checkpoint_path(&path)).unwrap();
        assert_eq!(known.seq, 8);
        let v = check(
            &path,
            &VerifyOptions {
                key: Some(public),
                known_checkpoint: Some(known),
            },
        );
        assert_eq!(v.problem, None);
        assert_eq!(v.records, 9);
        assert_eq!(v.checkpoints, 2);
        assert_eq!(v.checkpoints_verified, 2);
        assert_eq!(v.last_seq, Some(9));
        assert_eq!(v.unsealed, 1);
    }

    fn problem_of(path: &Path, options: &VerifyOptions) -> Problem {
        check(path, options).problem.expect("tampering is detected")
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let k = key();
        let public = k.public_key();
        let path = write_log(dir.path(), 10, 5, Some(k));
        let original = lines(&path);
        let opts = VerifyOptions {
            key: Some(public.clone()),
            known_checkpoint: None,
        };

        // Edited: change the outcome of seq 2 (line 2).
        let mut l = original.clone();
        l[1] = l[1].replace("\"outcome\":\"ok\"", "\"outcome\":\"refused\"");
        rewrite(&path, &l);
        let p = problem_of(&path, &opts);
        assert_eq!((p.kind, p.line, p.seq), (Tampering::Edited, 2, Some(2)));

        // Edited into garbage.
        let mut l = original.clone();
        l[2] = "{not json".into();
        rewrite(&path, &l);
        let p = problem_of(&path, &opts);
        assert_eq!((p.kind, p.line), (Tampering::Edited, 3));

        // Deleted: drop line 3.
        let mut l = original.clone();
        l.remove(2);
        rewrite(&path, &l);
        let p = problem_of(&path, &opts);
        assert_eq!((p.kind, p.line, p.seq), (Tampering::Deleted, 3, Some(4)));
        assert!(p.detail.contains("record seq 3 is missing"), "{}", p.detail);

        // Reordered: swap lines 3 and 4.
        let mut l = original.clone();
        l.swap(2, 3);
        rewrite(&path, &l);
        let p = problem_of(&path, &opts);
        assert_eq!((p.kind, p.line, p.seq), (Tampering::Reordered, 3, Some(4)));

        // Appended out of chain: a well-formed record with the next seq but a made-up prev.
        let mut l = original.clone();
        let mut forged: Entry = serde_json::from_str(l.last().unwrap()).unwrap();
        forged.seq += 1;
        forged.prev = Digest::of(b"made up");
        forged.checkpoint = None;
        forged.action = "push".into();
        l.push(serde_json::to_string(&forged).unwrap());
        rewrite(&path, &l);
        let p = problem_of(&path, &opts);
        assert_eq!((p.kind, p.line), (Tampering::OutOfChain, 13));

        // Appended out of chain by replaying an old seq.
        let mut l = original.clone();
        l.push(original[3].clone());
        rewrite(&path, &l);
        let p = problem_of(&path, &opts);
        assert_eq!(
            (p.kind, p.line, p.seq),
            (Tampering::OutOfChain, 13, Some(4))
        );

        // A forged checkpoint: the chain recomputed after an edit, signature left as it was.
        let mut l = original.clone();
        let mut cp: Entry = serde_json::from_str(&l[4]).unwrap();
        assert_eq!(cp.action, ACTION_CHECKPOINT);
        l[3] = l[3].replace("localhost/app", "localhost/evil");
        cp.prev = Digest::of(l[3].as_bytes());
        cp.checkpoint.as_mut().unwrap().head = cp.prev.clone();
        l[4] = serde_json::to_string(&cp).unwrap();
        let mut prev = Digest::of(l[4].as_bytes());
        for line in l.iter_mut().skip(5) {
            let mut e: Entry = serde_json::from_str(line).unwrap();
            e.prev = prev;
            if let Some(c) = e.checkpoint.as_mut() {
                c.head = e.prev.clone();
            }
            *line = serde_json::to_string(&e).unwrap();
            prev = Digest::of(line.as_bytes());
        }
        rewrite(&path, &l);
        let p = problem_of(&path, &opts);
        assert_eq!(
            (p.kind, p.line, p.seq),
            (Tampering::BadCheckpointSignature, 5, Some(5))
        );
        // Without the key the rewrite is invisible: that is what the key is for.
        assert_eq!(check(&path, &VerifyOptions::default()).problem, None);

        // Truncated behind the last checkpoint (seq 10), known from the sidecar.
        let known = read_checkpoint_file(&checkpoint_path(&path)).unwrap();
        assert_eq!(known.seq, 10);
        rewrite(&path, &original[..7]);
        let p = problem_of(
            &path,
            &VerifyOptions {
                key: Some(public),
                known_checkpoint: Some(known),
            },
        );
        assert_eq!((p.kind, p.line, p.seq), (Tampering::Truncated, 8, Some(7)));
    }

    #[test]
    fn a_crash_mid_write_loses_only_that_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 3, 0, None);
        let original = std::fs::read(&path).unwrap();
        // A crash cut the fourth record short.
        let mut torn = original.clone();
        torn.extend_from_slice(br#"{"type":"custody.audit/v1","seq":4,"ti"#);
        std::fs::write(&path, &torn).unwrap();
        let v = check(&path, &VerifyOptions::default());
        assert_eq!(v.problem, None);
        assert_eq!(v.torn_tail, Some(Torn { line: 4, bytes: 38 }));
        assert_eq!(v.records, 3);

        // A torn tail does not hide earlier tampering.
        let mut edited = String::from_utf8(torn.clone()).unwrap();
        edited = edited.replacen("localhost/app:v0", "localhost/app:v9", 1);
        std::fs::write(&path, &edited).unwrap();
        let v = check(&path, &VerifyOptions::default());
        assert_eq!(
            v.problem.as_ref().map(|p| (p.kind, p.line)),
            Some((Tampering::Edited, 1))
        );
        assert!(v.torn_tail.is_some());

        // The next append ends the torn line, records the recovery, and the chain goes on.
        std::fs::write(&path, &torn).unwrap();
        let mut log = Log::open(Config::new(Destination::File(path.clone()))).unwrap();
        let written = log
            .append_at(record(4), Timestamp::from_unix(1_800_000_000))
            .unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(written[0].action, ACTION_RECOVER);
        assert_eq!(written[0].seq, 4);
        assert_eq!(written[0].details["tornBytes"], 38);
        assert_eq!(written[1].seq, 5);
        let v = check(&path, &VerifyOptions::default());
        assert_eq!(v.problem, None, "{v:?}");
        assert_eq!(v.recovered, vec![4]);
        assert_eq!(v.torn_tail, None);
        assert_eq!(v.last_seq, Some(5));
        // Everything written before the crash is byte for byte unchanged.
        assert_eq!(
            &std::fs::read(&path).unwrap()[..original.len()],
            &original[..]
        );
    }

    #[test]
    fn concurrent_writers_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let k = key();
        let pem = k.to_pkcs8_der().unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let path = path.clone();
                let der = pem.clone();
                std::thread::spawn(move || {
                    let mut config = Config::new(Destination::File(path));
                    config.checkpoint_every = 10;
                    config.checkpoint_key =
                        Some(KeySigner::new(SigningKey::from_pkcs8_der(&der).unwrap()));
                    let mut log = Log::open(config).unwrap();
                    for i in 0..25 {
                        log.append(record(t * 100 + i)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let v = check(
            &path,
            &VerifyOptions {
                key: Some(k.public_key()),
                known_checkpoint: Some(read_checkpoint_file(&checkpoint_path(&path)).unwrap()),
            },
        );
        assert_eq!(v.problem, None);
        // 100 records and a checkpoint at every multiple of 10 the sequence reached.
        assert_eq!(v.records, 111);
        assert_eq!(v.checkpoints_verified, 11);
    }

    #[test]
    fn appending_after_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, b"hello\n").unwrap();
        let mut log = Log::open(Config::new(Destination::File(path.clone()))).unwrap();
        let err = log.append(record(0)).unwrap_err();
        assert!(matches!(err, Error::UnreadableTail { .. }), "{err}");
    }

    #[test]
    fn malformed_lines_are_refused() {
        let good = {
            let dir = tempfile::tempdir().unwrap();
            let path = write_log(dir.path(), 1, 0, None);
            lines(&path).remove(0)
        };
        assert!(parse_line(good.as_bytes()).is_ok());
        for (line, needle) in [
            (String::new(), "EOF"),
            ("[]".into(), "invalid length"),
            (
                good.replace("custody.audit/v1", "other/v1"),
                "type is \"other/v1\"",
            ),
            (good.replace("\"seq\":1", "\"seq\":-1"), "invalid value"),
            (
                good.replace("\"seq\":1", "\"seq\":1,\"extra\":1"),
                "unknown field",
            ),
            (
                good.replace("\"outcome\":\"ok\"", "\"outcome\":\"maybe\""),
                "unknown variant",
            ),
            (
                good.replace("2023-11-14T22:13:20Z", "yesterday"),
                "not an rfc 3339",
            ),
            (
                good.replace("\"action\":\"push\"", "\"action\":\"checkpoint\""),
                "without a checkpoint",
            ),
            (
                format!("{}{}", good, " ".repeat(MAX_LINE_BYTES)),
                "longer than",
            ),
            (
                format!("{{\"details\":{}", "[".repeat(200)),
                "recursion limit",
            ),
        ] {
            let err = parse_line(line.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        // Random bytes never panic.
        let mut state = 7u64;
        for _ in 0..500 {
            let len = (state % 200) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (state >> 33) as u8
                })
                .collect();
            let _ = parse_line(&bytes);
            let _ = verify(&bytes, &VerifyOptions::default());
        }
    }

    #[test]
    fn show_filters() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(dir.path(), 5, 0, None);
        let bytes = std::fs::read(&path).unwrap();
        let d2 = Digest::of(b"artifact 2").to_string();
        let found = show(
            &bytes,
            &Filter {
                artifact: Some(d2.clone()),
                ..Default::default()
            },
        );
        assert_eq!(found.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3]);
        let found = show(
            &bytes,
            &Filter {
                since: Some(Timestamp::from_unix(1_700_000_001)),
                until: Some(Timestamp::from_unix(1_700_000_003)),
                ..Default::default()
            },
        );
        assert_eq!(
            found.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        let found = show(
            &bytes,
            &Filter {
                actor: Some("someone else".into()),
                ..Default::default()
            },
        );
        assert!(found.is_empty());
        let found = show(
            &bytes,
            &Filter {
                action: Some("push".into()),
                artifact: Some("app:v4".into()),
                ..Default::default()
            },
        );
        assert_eq!(found.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![5]);
    }
}
