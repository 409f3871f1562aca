//! `custody promote`: resolve the source once, verify that digest against the policy, refuse
//! with the verification report when it fails, else copy the digest with every referrer to the
//! destination (tag last, never moved unless forced), optionally with a signed promotion
//! attestation. Exit 0 promoted, 1 refused (verification, an existing tag), 2 could not run.

use std::fmt::Write as _;

use anyhow::Context as _;

use super::attach_cmds::{SignerArgs, signer_from_args};
use super::diagnostics::render;
use super::verify_cmds::{TrustArgs, could_not, policy_and_root};
use super::{Cli, ExitStatus, Failure, Printer, secops_cmds, store_options};
use custody::decisions::verify::{self, Verdict, VerifyOptions, VerifyReport};
use custody::evidence::attest::Timestamp;
use custody::evidence::sign::Signer;
use custody::foundation::reference::Reference;
use custody::storage::store;
use custody::storage::store::elsewhere::Evidence;
use custody::storage::transfer::{self, CopyOptions, TagOutcome, TagPolicy};
use custody::workflows::audit::{self, Outcome};
use custody::workflows::promote::{self, PromoteOutcome, PromotionRecord};

#[derive(clap::Args, Debug)]
pub struct PromoteArgs {
    /// The artifact to promote: `registry/repo:tag` or `registry/repo@sha256:…` (or an OCI
    /// layout). A tag is resolved once; the digest that verifies is the digest copied.
    pub source: String,
    /// Where to: `registry/repo[:tag]`. Without a tag, the source's tag.
    pub destination: String,
    /// Trust this public key (PEM file or env://VAR) when verifying the source. Repeatable.
    /// Replaces the policy's signers. (`--key` is the key that signs the promotion record.)
    #[arg(long = "trust-key", value_name = "KEY")]
    pub trust_key: Vec<String>,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Sign a promotion attestation (a SLSA VSA of the verification, whose subject says from,
    /// to and who) and attach it at the destination, before the tag is written.
    #[arg(long)]
    pub attest_promotion: bool,
    /// Verify, then say what would be copied; copy nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Move the destination tag even if it names another digest.
    #[arg(long)]
    pub force_tag: bool,
    /// Keep the copy's signatures and attestations in this repository at the destination
    /// (default: the destination scope's attestations_repository in the policy, else beside the artifact). The source's are read from
    /// --attestations-repository (or its environment variables) when set.
    #[arg(long, value_name = "REPO")]
    pub to_attestations_repository: Option<String>,
    /// Who signs the promotion attestation (with --attest-promotion). `--trusted-root` also
    /// serves verification (keyless identities in the policy).
    #[command(flatten)]
    pub signer: SignerArgs,
}

/// How a promotion ended, short of an error.
enum Promotion {
    /// The source did not verify: nothing was copied.
    Refused(Box<VerifyReport>),
    Promoted {
        report: Box<VerifyReport>,
        outcome: Box<PromoteOutcome>,
    },
}

/// `custody promote`: prints the outcome (or the refusing verification report) and records it
/// in the audit log.
pub fn promote(cli: &Cli, args: &PromoteArgs, printer: &Printer) -> ExitStatus {
    let result = run(cli, args);
    let written = secops_cmds::append_audit(audit_record(args, &result));
    match secops_cmds::with_audit("promote", result, written) {
        Ok(Promotion::Promoted { report, outcome }) => {
            super::ci_output::print_or_markdown(
                cli,
                printer,
                &human_promoted(&report, &outcome),
                &json(args, &report, Some(&outcome)),
                super::ci_output::promote_markdown,
            );
            ExitStatus::Success
        }
        Ok(Promotion::Refused(report)) => {
            let mut human = custody::decisions::verify::render::human(&report);
            let _ = writeln!(
                human,
                "not promoted: {} did not verify; nothing was copied to {}",
                report.pinned, args.destination
            );
            super::ci_output::print_or_markdown(
                cli,
                printer,
                &human,
                &json(args, &report, None),
                super::ci_output::promote_markdown,
            );
            printer.stderr(&render(
                &anyhow::anyhow!(
                    "{} does not satisfy the policy; not promoted",
                    report.pinned
                ),
                None,
            ));
            ExitStatus::Failure
        }
        Err(failure) => {
            printer.failure(&failure);
            failure.status
        }
    }
}

fn run(cli: &Cli, args: &PromoteArgs) -> Result<Promotion, Failure> {
    let parse = |s: &str| -> Result<Reference, Failure> {
        s.parse::<Reference>()
            .with_context(|| format!("bad reference {s:?}"))
            .map_err(|e| could_not(e, None))
    };
    let src_ref = parse(&args.source)?;
    let dst_ref = parse(&args.destination)?;
    let (policy, root) = policy_and_root(
        &args.trust,
        &args.trust_key,
        args.signer.keyless.trusted_root.as_deref(),
    )?;
    // The signer is set up before anything is copied: a promotion that cannot sign its record
    // stops here rather than half way.
    let signer = match (args.attest_promotion, args.dry_run) {
        (true, false) => Some(signer_from_args(&args.signer)?),
        _ => None,
    };

    let mut quiet = store_options(cli);
    quiet.progress = super::request_log(cli);
    let src = store::open_existing(&src_ref, &quiet)
        .with_context(|| format!("cannot open {}", src_ref.repository()))?;
    // Resolve once; everything after uses the digest.
    let digest = transfer::resolve(src.as_ref(), &src_ref)
        .with_context(|| format!("cannot resolve {src_ref}"))?
        .descriptor
        .digest;
    let pinned_src = src_ref.with_digest(digest.clone());
    let options = VerifyOptions {
        trusted_root: root,
        vulnerability_db: super::verify_cmds::load_vulnerability_db(
            &policy,
            &src_ref.repository(),
            &args.trust.db,
        )
        .map_err(|e| could_not(e, None))?,
        jobs: super::jobs(cli),
        attestations: super::attestations_lookup(cli)?,
        ..VerifyOptions::default()
    };
    let verified = match verify::verdict(src.as_ref(), &pinned_src, &policy, &options) {
        Ok(Verdict::Verified(verified)) => verified,
        Ok(Verdict::Refused(report)) => return Ok(Promotion::Refused(report)),
        Err(e) => {
            let own = Failure::from(
                anyhow::Error::new(e).context(format!("could not verify {pinned_src}")),
            );
            let hint = own.hint.unwrap_or_else(|| {
                "the source registry could not be read; nothing was verified or copied".into()
            });
            return Err(could_not(own.error, Some(&hint)));
        }
    };

    let dst = store::open(&dst_ref, &store_options(cli))
        .with_context(|| format!("cannot open {}", dst_ref.repository()))?;
    // The source's evidence is read where verification found it; the destination's goes to
    // --to-attestations-repository, else the destination scope's, else beside the copy.
    let src_elsewhere = match &verified.report().attestations_repository {
        Some(r) => Some(
            r.open_existing(&quiet)
                .with_context(|| format!("cannot open attestations repository {}", r.repository))?,
        ),
        None => None,
    };
    let dst_elsewhere = match &args.to_attestations_repository {
        Some(name) => super::open_named_attestations_repository(cli, Some(name))?,
        None => match policy
            .scope_for(&dst_ref.repository())
            .and_then(|s| s.attestations_repository.as_ref())
        {
            Some(r) => Some(r.open(&store_options(cli)).with_context(|| {
                format!("cannot open attestations repository {}", r.repository)
            })?),
            None => None,
        },
    };
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let record = match &signer {
        Some(_) => Some(
            PromotionRecord::of(&verified, secops_cmds::actor(), now.clone())
                .context("cannot describe the verification")?,
        ),
        None => None,
    };
    let copy_options = CopyOptions {
        tag_policy: if args.force_tag {
            TagPolicy::Force
        } else {
            TagPolicy::Immutable
        },
        dry_run: args.dry_run,
        jobs: super::jobs(cli),
    };
    let outcome = promote::promote_with(
        Evidence::new(src.as_ref(), src_elsewhere.as_deref()),
        &src_ref,
        Evidence::new(dst.as_ref(), dst_elsewhere.as_deref()),
        &dst_ref,
        &verified,
        &copy_options,
        record
            .as_ref()
            .zip(signer.as_ref().map(|s| s as &dyn Signer)),
        &now,
    )
    .map_err(|e| promote_failure(e, &pinned_src, &dst_ref))?;
    Ok(Promotion::Promoted {
        report: Box::new(verified.into_report()),
        outcome: Box::new(outcome),
    })
}

/// Unwraps the library error so the CLI's exit-code and hint mapping sees the store error
/// (an existing tag or a lying registry is a refusal, exit 1).
fn promote_failure(e: promote::Error, src: &Reference, dst: &Reference) -> Failure {
    let context = format!("cannot promote {src} to {dst}");
    let mut failure = match e {
        promote::Error::Transfer(t) => Failure::from(anyhow::Error::new(t).context(context)),
        promote::Error::Attach(a) => Failure::from(anyhow::Error::new(a).context(context)),
        other => Failure::from(anyhow::Error::new(other).context(context)),
    };
    if failure.status != ExitStatus::Failure {
        let rerun = "run the same promote again: what was copied is kept, and the tag is only written once everything is there";
        failure.hint = Some(match failure.hint.take() {
            Some(h) => format!("{h}; then {rerun}"),
            None => rerun.to_owned(),
        });
    }
    failure
}

fn audit_record(args: &PromoteArgs, result: &Result<Promotion, Failure>) -> audit::Record {
    let reference = format!("{} -> {}", args.source, args.destination);
    let mut record = match result {
        Err(f) => return secops_cmds::failure_record("promote", &reference, f),
        Ok(Promotion::Refused(report)) => {
            let mut r = secops_cmds::verdict_record("promote", &reference, report);
            r.outcome = Outcome::Refused;
            r
        }
        Ok(Promotion::Promoted { report, outcome }) => {
            let mut r = secops_cmds::verdict_record("promote", &reference, report);
            r.details["to"] = serde_json::json!(outcome.pinned);
            r.details["tag"] = serde_json::json!(outcome.copy.tag);
            r.details["tagOutcome"] = serde_json::json!(outcome.copy.tag_outcome);
            r.details["promotionAttestation"] = serde_json::json!(outcome.promotion_attestation);
            r.details["dryRun"] = serde_json::json!(outcome.dry_run);
            r
        }
    };
    record.details["from"] = serde_json::json!(args.source);
    record.details["destination"] = serde_json::json!(args.destination);
    record
}

fn json(
    args: &PromoteArgs,
    report: &VerifyReport,
    outcome: Option<&PromoteOutcome>,
) -> serde_json::Value {
    serde_json::json!({
        "source": outcome.map_or_else(|| report.pinned.clone(), |o| o.source.clone()),
        "destination": outcome.map_or_else(|| args.destination.clone(), |o| o.destination.clone()),
        "digest": report.digest,
        "pinned": outcome.map(|o| o.pinned.clone()),
        "verified": report.verified,
        "verification": report,
        "copy": outcome.map(|o| &o.copy),
        "promotionAttestation": outcome.and_then(|o| o.promotion_attestation.clone()),
        "dryRun": outcome.is_some_and(|o| o.dry_run),
    })
}

fn human_promoted(report: &VerifyReport, outcome: &PromoteOutcome) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "verified {} against {}{}",
        report.pinned,
        report.policy.source,
        report
            .scope
            .as_ref()
            .map(|s| format!(" (scope {s})"))
            .unwrap_or_default()
    );
    let c = &outcome.copy;
    let verb = if outcome.dry_run {
        "would copy"
    } else {
        "copied"
    };
    let _ = writeln!(
        out,
        "{verb} {} manifest(s) ({} referrer(s)), {} blob(s) / {}; {} mounted, {} already present",
        c.manifests.len(),
        c.referrers,
        c.blobs_copied,
        super::printer::size(c.bytes_copied),
        c.blobs_mounted,
        c.blobs_present
    );
    if outcome.dry_run {
        for m in &c.manifests {
            let _ = writeln!(
                out,
                "  {}  {}",
                m.digest,
                m.artifact_type.as_deref().unwrap_or(&m.media_type)
            );
        }
    }
    for t in &c.legacy_tags {
        let _ = writeln!(out, "legacy cosign tag {t}");
    }
    if let Some(a) = &outcome.promotion_attestation {
        let _ = writeln!(out, "promotion attestation {a}");
    }
    match (&c.tag, &c.tag_outcome) {
        (Some(t), Some(TagOutcome::Created)) => {
            let _ = writeln!(out, "tag {t}: created");
        }
        (Some(t), Some(TagOutcome::Unchanged)) => {
            let _ = writeln!(out, "tag {t}: already pointed at this digest");
        }
        (Some(t), Some(TagOutcome::Moved { previous })) => {
            let _ = writeln!(out, "tag {t}: MOVED by --force-tag (it named {previous})");
        }
        (Some(t), None) => {
            let _ = writeln!(out, "tag {t}: would be written last");
        }
        (None, _) => {}
    }
    if outcome.dry_run {
        let _ = writeln!(
            out,
            "dry run: nothing was copied to {}",
            outcome.destination
        );
    } else {
        let _ = writeln!(out, "promoted {}", outcome.pinned);
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_flags_the_action_and_template_pass_parse() {
        // Trust flags, signer flags and promote's own flags share one namespace.
        crate::cli::Cli::command().debug_assert();
        let cli = <crate::cli::Cli as clap::Parser>::try_parse_from([
            "custody",
            "--output",
            "json",
            "promote",
            "staging.example.com/app:1.2.3",
            "prod.example.com/app:1.2.3",
            "--policy",
            "policy.yaml",
            "--key",
            "cosign.key",
            "--attest-promotion",
            "--dry-run",
        ])
        .unwrap();
        let crate::cli::Command::Promote(args) = cli.command else {
            panic!("promote parses as promote");
        };
        assert_eq!(args.source, "staging.example.com/app:1.2.3");
        assert_eq!(args.destination, "prod.example.com/app:1.2.3");
        assert_eq!(
            args.trust.policy.as_deref(),
            Some(std::path::Path::new("policy.yaml"))
        );
        assert_eq!(args.signer.key.as_deref(), Some("cosign.key"));
        assert!(
            args.trust_key.is_empty(),
            "--key signs; it is not a trusted key"
        );
        assert!(args.attest_promotion && args.dry_run && !args.force_tag);
    }
}
