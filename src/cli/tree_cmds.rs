//! `custody tree`: an artifact and everything attached to it, with each referrer's claimed
//! signer and, when a policy or trust flags are given, the verdict `verify` reaches on it.
//! Exit 0 when the tree could be read (and, with a policy, verified), 1 when the policy
//! refuses it (as `custody verify` does), 2 when it could not be read.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use super::verify_cmds::{TrustArgs, could_not, policy_and_root};
use super::{Cli, ExitStatus, Failure, Printer, Report, store_options};
use custody::decisions::verify::{self, Status, VerifyOptions};
use custody::foundation::reference::Reference;
use custody::storage::store;
use custody::storage::store::elsewhere::Evidence;
use custody::workflows::tree::{self, Node, Tree};

#[derive(clap::Args, Debug)]
pub struct TreeArgs {
    /// The artifact: `registry/repo[:tag][@digest]` or `oci:<dir>[:tag][@digest]`.
    pub reference: String,
    /// Trust this public key (PEM file or env://VAR) for the verdicts. Repeatable.
    #[arg(long, value_name = "KEY")]
    pub key: Vec<String>,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// trusted_root.json: CAs, transparency logs and TSAs (for keyless identities).
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
}

/// `custody tree`: prints the tree (human, JSON or Markdown) and returns 0, or 1 when a policy
/// was given and refuses the artifact.
pub fn run(cli: &Cli, args: &TreeArgs, printer: &Printer) -> ExitStatus {
    match read(cli, args) {
        Ok(read) => {
            let verified = read.verification.as_ref().is_none_or(|v| v.verified);
            let report = Report {
                human: human(&read),
                json: serde_json::to_value(&read).expect("serialisable"),
            };
            if !super::ci_output::print_report_markdown(cli, printer, &report) {
                printer.report(&report.human, &report.json);
            }
            ExitStatus::refused_unless(verified)
        }
        Err(failure) => {
            printer.failure(&failure);
            failure.status
        }
    }
}

/// Reads the tree, with the policy's verdicts when trust was given.
fn read(cli: &Cli, args: &TreeArgs) -> Result<Tree, Failure> {
    let reference: Reference = args
        .reference
        .parse()
        .with_context(|| format!("bad reference {:?}", args.reference))?;
    let judge = args.trust.given() || !args.key.is_empty();
    let trust = if judge {
        Some(policy_and_root(
            &args.trust,
            &args.key,
            args.trusted_root.as_deref(),
        )?)
    } else {
        None
    };
    let mut options = store_options(cli);
    options.progress = super::request_log(cli);
    let store = store::open_existing(&reference, &options)
        .with_context(|| format!("cannot open {}", reference.repository()))?;
    let mut lookup = super::attestations_lookup(cli)?;
    lookup.store_options = options.clone();
    let repository = lookup.pick(
        trust
            .as_ref()
            .and_then(|(policy, _)| policy.scope_for(&reference.repository()))
            .and_then(|scope| scope.attestations_repository.as_ref()),
    );
    let elsewhere = match &repository {
        None => None,
        Some(r) => Some(r.open_existing(&options).with_context(|| {
            format!(
                "cannot open attestations repository {} (from {})",
                r.repository, r.source
            )
        })?),
    };
    let evidence = Evidence::new(store.as_ref(), elsewhere.as_deref());
    let mut read = tree::read_with(evidence, &reference, super::jobs(cli)).map_err(|e| {
        // A store that serves content other than its digests is a refusal, as everywhere.
        let lying = e
            .store_error()
            .is_some_and(store::Error::is_integrity_failure);
        let mut failure = could_not(anyhow::Error::new(e), None);
        if lying {
            failure.status = ExitStatus::Failure;
        }
        failure
    })?;
    if let Some((policy, root)) = trust {
        // The digest just read, never the tag again.
        let pinned = reference.with_digest(read.digest.clone());
        let options = VerifyOptions {
            trusted_root: root,
            vulnerability_db: super::verify_cmds::load_vulnerability_db(
                &policy,
                &reference.repository(),
                &args.trust.db,
            )
            .map_err(|e| could_not(e, None))?,
            jobs: super::jobs(cli),
            attestations: lookup,
            ..VerifyOptions::default()
        };
        let report = verify::artifact(store.as_ref(), &pinned, &policy, &options).map_err(|e| {
            could_not(
                anyhow::Error::new(e).context(format!("could not verify {pinned}")),
                None,
            )
        })?;
        read = read.with_report(&report);
    }
    Ok(read)
}

fn node_line(out: &mut String, node: &Node, branch: &str, next: &str) {
    let _ = writeln!(
        out,
        "{branch}{} {}  {}",
        node.kind.label(),
        node.manifest,
        node.predicate_type
            .as_deref()
            .or(node.artifact_type.as_deref())
            .unwrap_or(match node.kind {
                tree::NodeKind::LegacySignature => "simple signing",
                _ => "signature",
            })
    );
    if let Some(s) = &node.claimed_signer {
        let _ = writeln!(out, "{next}signer (claimed): {}", s.describe());
    }
    if let Some(created) = &node.created {
        let _ = writeln!(out, "{next}created: {created}");
    }
    if let Some(note) = &node.note {
        let _ = writeln!(out, "{next}not used: {note}");
    }
    if let Some(v) = &node.verdict {
        if v.trusted {
            let _ = writeln!(
                out,
                "{next}✓ trusted: {} ({})",
                v.signer.as_deref().unwrap_or("?"),
                v.signer_identity.as_deref().unwrap_or("?")
            );
        } else {
            let _ = writeln!(out, "{next}✗ not trusted");
        }
        for c in &v.failures {
            let _ = writeln!(
                out,
                "{next}  ✗ {}: expected {}, found {}",
                c.name,
                c.expected.as_deref().unwrap_or("-"),
                c.found.as_deref().unwrap_or("-")
            );
        }
    }
}

/// A BuildKit attestation manifest under its platform: unsigned, so never marked trusted.
fn unsigned_lines(
    out: &mut String,
    a: &custody::evidence::buildkit::UnsignedAttestations,
    next: &str,
) {
    let _ = writeln!(
        out,
        "{next}· {} attestation manifest {} (unsigned, not trusted)",
        a.source, a.manifest
    );
    if let Some(note) = &a.note {
        let _ = writeln!(out, "{next}    {note}");
    }
    for s in &a.statements {
        let _ = writeln!(
            out,
            "{next}    {}{}",
            s.predicate_type
                .as_deref()
                .unwrap_or("(unknown predicate type)"),
            s.note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        );
    }
}

/// One platform of an index: its manifest, its verdict, then its referrers under it.
fn platform_lines(out: &mut String, p: &tree::PlatformTree, branch: &str, next: &str) {
    let _ = writeln!(
        out,
        "{branch}platform {} {}  {}",
        p.platform.as_deref().unwrap_or("(unnamed)"),
        p.digest,
        p.media_type
    );
    if let Some(v) = &p.verification {
        let _ = writeln!(
            out,
            "{next}{}",
            if v.verified {
                "✓ verified"
            } else {
                "✗ refused"
            }
        );
        for c in v.checks.iter().filter(|c| c.failed()) {
            let _ = writeln!(
                out,
                "{next}  ✗ {}: expected {}, found {}",
                c.name,
                c.expected.as_deref().unwrap_or("-"),
                c.found.as_deref().unwrap_or("-")
            );
        }
    }
    if let Some(note) = &p.note {
        let _ = writeln!(out, "{next}cannot list: {note}");
    }
    if p.nodes.is_empty() && p.note.is_none() && p.unsigned.is_empty() {
        let _ = writeln!(out, "{next}(nothing attached)");
    }
    for a in &p.unsigned {
        unsigned_lines(out, a, next);
    }
    for (i, node) in p.nodes.iter().enumerate() {
        let (b, n) = if i + 1 == p.nodes.len() {
            ("└── ", "      ")
        } else {
            ("├── ", "│     ")
        };
        node_line(out, node, &format!("{next}{b}"), &format!("{next}{n}"));
    }
}

/// The tree as text: the artifact, then one branch per referrer, then (for an index) one
/// branch per platform manifest with its own referrers under it.
pub fn human(t: &Tree) -> String {
    let mut out = format!("{}\n{}\n", t.pinned, t.media_type);
    if let Some(r) = &t.attestations_repository {
        let _ = writeln!(out, "evidence in {r}");
    }
    let total = t.nodes.len() + t.platforms.len();
    let branches = |i: usize, indent: &str| {
        if i + 1 == total {
            (format!("{indent}└── "), format!("{indent}      "))
        } else {
            (format!("{indent}├── "), format!("{indent}│     "))
        }
    };
    for (i, node) in t.nodes.iter().enumerate() {
        let (branch, next) = branches(i, "");
        node_line(&mut out, node, &branch, &next);
    }
    for a in &t.unsigned {
        unsigned_lines(&mut out, a, "");
    }
    if t.nodes.is_empty() && t.unsigned.is_empty() {
        out.push_str("(nothing attached)\n");
    }
    for (i, p) in t.platforms.iter().enumerate() {
        let (branch, next) = branches(t.nodes.len() + i, "");
        platform_lines(&mut out, p, &branch, &next);
    }
    if let Some(v) = &t.verification {
        let _ = writeln!(
            out,
            "policy {}{}{}",
            v.policy.source,
            v.policy
                .digest
                .as_ref()
                .map(|d| format!(" ({})", d.short()))
                .unwrap_or_default(),
            v.scope
                .as_ref()
                .map(|s| format!(", scope {s}"))
                .unwrap_or_default()
        );
        for c in v.checks.iter().filter(|c| c.status != Status::Skip) {
            let mark = if c.failed() { "✗" } else { "✓" };
            let _ = write!(out, "  {mark} {}", c.name);
            match (c.failed(), &c.expected, &c.found) {
                (true, e, f) => {
                    let _ = writeln!(
                        out,
                        ": expected {}, found {}",
                        e.as_deref().unwrap_or("-"),
                        f.as_deref().unwrap_or("-")
                    );
                }
                (false, _, Some(f)) => {
                    let _ = writeln!(out, ": {f}");
                }
                (false, _, None) => out.push('\n'),
            }
        }
        let _ = writeln!(
            out,
            "{} {}",
            if v.verified { "verified" } else { "REFUSED" },
            t.pinned
        );
    }
    out
}
