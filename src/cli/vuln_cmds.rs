//! `custody scan`: match the components of an SBOM, a lockfile or an OCI artifact's SBOM
//! referrer against an offline OSV database; print a table or the typed report, write SARIF,
//! and exit 1 when a finding is at or above `--fail-on`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{Cli, ExitStatus, Failure, Printer, Report};
use custody::decisions::vuln::input::{self, SbomVerification, Source};
use custody::decisions::vuln::policy::{self, Verdict, VexDocument};
use custody::decisions::vuln::{self, Database, Finding, Limits, Rating, ScanReport, sarif};
use custody::foundation::reference::Reference;
use custody::storage::store;

#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// What to scan: a CycloneDX JSON SBOM (bare, in-toto statement or Sigstore bundle), a
    /// lockfile (Cargo.lock, package-lock.json, go.mod, uv.lock, poetry.lock,
    /// requirements*.txt), an OCI reference whose SBOM referrer is read, or `-` for an SBOM on
    /// standard input.
    pub input: String,
    /// OSV database: a folder of OSV JSON files, an osv.dev `all.zip`, or a folder of them.
    /// Repeatable.
    #[arg(long = "db", value_name = "PATH", required = true)]
    pub db: Vec<PathBuf>,
    /// Exit 1 when a finding is at or above this severity (low, medium, high, critical;
    /// `unknown` means any finding). Default: report only.
    #[arg(long, value_name = "SEVERITY")]
    pub fail_on: Option<Rating>,
    /// How findings without a score count for --fail-on.
    #[arg(long, value_name = "SEVERITY", default_value = "high")]
    pub unknown_severity_as: Rating,
    /// Also write the findings as SARIF 2.1.0 to this file.
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,
    /// VEX document, OpenVEX, CSAF 2.0 or CycloneDX (repeatable): findings it marks
    /// `not_affected` (with a justification) or `fixed` are listed apart and do not count for
    /// --fail-on.
    #[arg(long = "vex", value_name = "FILE")]
    pub vex: Vec<PathBuf>,
    /// Verify an OCI artifact's SBOM bundle against this policy (the scope for its
    /// repository: trusted signers, `sbom.signers`, subject = the artifact) before scanning it;
    /// an SBOM that does not verify is refused (exit 1). Keyless signers need --trusted-root.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Sign the scan result as an attestation (predicate
    /// https://cosign.sigstore.dev/attestation/vuln/v1, with the database identity and the
    /// scan time) and attach it to the scanned OCI artifact. Signs with --key, else keyless.
    #[arg(long)]
    pub attest: bool,
    /// Private key for --attest: a cosign key file, a PKCS#8 PEM file, or env://VAR.
    #[arg(long, value_name = "KEY", requires = "attest")]
    pub key: Option<String>,
    /// Keyless signing for --attest; --trusted-root also verifies keyless SBOM signers.
    #[command(flatten)]
    pub keyless: super::sign_cmds::KeylessArgs,
}

/// The predicate type of `custody scan --attest`: cosign's vulnerability-scan predicate, which
/// `cosign verify-attestation --type vuln` and admission controllers already read; its
/// free-form `scanner.result` carries custody's typed report.
pub const PREDICATE_VULN_SCAN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";

/// Runs the scan, prints, and maps the outcome to the exit code.
pub fn run(cli: &Cli, args: &ScanArgs, printer: &Printer) -> ExitStatus {
    match scan(cli, args) {
        Ok((report, failing)) => {
            super::ci_output::print_or_markdown(
                cli,
                printer,
                &report.human,
                &report.json,
                super::ci_output::scan_markdown,
            );
            ExitStatus::refused_unless(failing == 0)
        }
        Err(failure) => {
            printer.failure(&failure);
            failure.status
        }
    }
}

fn scan(cli: &Cli, args: &ScanArgs) -> Result<(Report, usize), Failure> {
    if let Some(sarif) = &args.sarif {
        super::stdio::refuse_dash(
            sarif,
            "--sarif",
            "the report is standard output; give a file",
        )?;
    }
    let vex = args
        .vex
        .iter()
        .map(|p| VexDocument::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    if args.attest && Path::new(&args.input).exists() {
        return Err(anyhow::anyhow!(
            "--attest attaches the result to an OCI artifact; {} is a local file",
            args.input
        )
        .into());
    }
    let started =
        custody::evidence::attest::Timestamp::from_system_time(std::time::SystemTime::now());
    let components = read_input(cli, args)?;
    let db = Database::load(&args.db, &Limits::default())
        .context("could not load the vulnerability database")?;
    let report = vuln::scan_components(components, &db);
    let attested = if args.attest {
        Some(attest_scan(cli, args, &report, started)?)
    } else {
        None
    };
    let not_affected: Vec<(&Finding, Verdict)> = report
        .result
        .findings
        .iter()
        .filter_map(|f| policy::vex_not_affected(f, &vex).map(|v| (f, v)))
        .collect();
    let is_vexed = |f: &Finding| not_affected.iter().any(|(n, _)| std::ptr::eq(*n, f));
    let failing: Vec<&Finding> = match args.fail_on {
        Some(threshold) => report
            .result
            .findings
            .iter()
            .filter(|f| {
                f.severity
                    .rating
                    .at_least(threshold, args.unknown_severity_as)
                    && !is_vexed(f)
            })
            .collect(),
        None => Vec::new(),
    };
    if let Some(path) = &args.sarif {
        let log = sarif::to_sarif(
            &report.result.findings,
            &artifact_uri(&report.input),
            env!("CARGO_PKG_VERSION"),
        );
        let bytes = serde_json::to_vec_pretty(&log).expect("sarif serialises");
        std::fs::write(path, bytes)
            .with_context(|| format!("could not write sarif to {}", path.display()))?;
    }
    let mut human = human(&report, args.fail_on, failing.len());
    for (f, verdict) in &not_affected {
        if let Verdict::NotAffectedByVex {
            document,
            justification,
            ..
        } = verdict
        {
            let _ = writeln!(
                human,
                "not affected (vex {document}): {} {} {}: {justification}",
                f.package, f.version, f.id
            );
        }
    }
    let mut json = serde_json::to_value(&report).expect("reports serialise");
    json["notAffected"] = not_affected
        .iter()
        .map(|(f, verdict)| {
            let mut v = serde_json::to_value(verdict).expect("serialises");
            v["purl"] = f.purl.clone().into();
            v["id"] = f.id.to_string().into();
            v
        })
        .collect();
    if let Some((referrer, pinned)) = &attested {
        let _ = writeln!(
            human,
            "scan attested on {pinned}: referrer {referrer} ({PREDICATE_VULN_SCAN})"
        );
        json["attestation"] = serde_json::json!({
            "predicateType": PREDICATE_VULN_SCAN,
            "referrer": referrer,
            "subject": pinned,
        });
    }
    json["failOn"] = serde_json::to_value(args.fail_on).expect("serialises");
    json["failing"] = failing.len().into();
    Ok((Report { human, json }, failing.len()))
}

fn read_input(cli: &Cli, args: &ScanArgs) -> Result<input::Components, Failure> {
    let input = args.input.as_str();
    let path = Path::new(input);
    if super::stdio::is_dash(path) {
        let bytes = super::stdio::read(path, input::MAX_SBOM_BYTES)?;
        return Ok(input::from_sbom_bytes(&bytes, path)
            .context("cannot scan the SBOM on standard input")?);
    }
    if path.exists() {
        return Ok(input::from_file(path).with_context(|| format!("cannot scan {input}"))?);
    }
    let reference: Reference = input
        .parse()
        .with_context(|| format!("{input:?} is neither an existing file nor an oci reference"))?;
    let store = store::open_existing(&reference, &super::store_options(cli))
        .with_context(|| format!("cannot open {}", reference.repository()))?;
    let policy = args
        .policy
        .as_deref()
        .map(|p| {
            custody::decisions::policy::Policy::load(p)
                .with_context(|| format!("policy {} cannot be used", p.display()))
        })
        .transpose()?;
    let root = match &args.keyless.trusted_root {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read trusted root {}", path.display()))?;
            custody::evidence::sign::verify::TrustedRoot::from_json(&bytes)
                .with_context(|| format!("cannot use trusted root {}", path.display()))?
        }
        None => custody::evidence::sign::verify::TrustedRoot::empty(),
    };
    let scope = match &policy {
        None => None,
        Some(p) => Some(p.scope_for(&reference.repository()).ok_or_else(|| {
            anyhow::anyhow!(
                "no scope of policy {} matches {}",
                p.source,
                reference.repository()
            )
        })?),
    };
    let verifier = scope.map(
        |scope| custody::decisions::verify::gates::PolicySbomVerifier {
            scope,
            trusted_root: &root,
        },
    );
    match input::from_oci(
        store.as_ref(),
        &reference,
        verifier.as_ref().map(|v| v as &dyn input::SbomVerifier),
        &custody::storage::store::referrers::Limits {
            jobs: super::jobs(cli),
            ..custody::storage::store::referrers::Limits::DEFAULT
        },
    ) {
        Ok(c) => Ok(c),
        Err(e @ input::InputError::Verification { .. }) => Err(Failure {
            error: anyhow::Error::new(e).context(format!("the sbom of {reference} is refused")),
            status: ExitStatus::Failure,
            hint: Some(
                "the SBOM is not signed by a signer the policy trusts for this repository; its components were not scanned".into(),
            ),
        }),
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("cannot read the sbom of {reference}"))
            .into()),
    }
}

/// The cosign vuln/v1 predicate for a scan: the scanner (custody, its version, the database's
/// content digest and newest modification), custody's report as the result, and when it ran.
pub fn vuln_predicate(
    report: &ScanReport,
    started: &custody::evidence::attest::Timestamp,
    finished: &custody::evidence::attest::Timestamp,
) -> serde_json::Value {
    let db = &report.database;
    serde_json::json!({
        "invocation": {
            "parameters": db.sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "uri": "",
            "event_id": "",
            "builder.id": "",
        },
        "scanner": {
            "uri": "https://custody.dev/scanner",
            "version": env!("CARGO_PKG_VERSION"),
            "db": {
                "uri": db.content_digest.as_ref().map(|d| format!("osv:{d}")).unwrap_or_default(),
                "version": db.newest_modified.clone().unwrap_or_default(),
            },
            "result": serde_json::to_value(report).expect("reports serialise"),
        },
        "metadata": {
            "scanStartedOn": started.as_str(),
            "scanFinishedOn": finished.as_str(),
        },
    })
}

/// Signs the scan as an attestation about the scanned artifact and attaches it.
fn attest_scan(
    cli: &Cli,
    args: &ScanArgs,
    report: &ScanReport,
    started: custody::evidence::attest::Timestamp,
) -> Result<(custody::foundation::digest::Digest, String), Failure> {
    let Source::Oci {
        reference, digest, ..
    } = &report.input
    else {
        return Err(
            anyhow::anyhow!("--attest needs an OCI artifact to attach the result to").into(),
        );
    };
    let reference: Reference = reference.parse().context("bad reference")?;
    let options = super::sign_cmds::signer_options(args.key.as_deref(), &args.keyless)?;
    let signer =
        custody::evidence::sign::signer_from_options(&options, &super::sign_cmds::token_env())?;
    let store = store::open(&reference, &super::store_options(cli))
        .with_context(|| format!("cannot open {}", reference.repository()))?;
    let fetched = store
        .get_manifest(digest)
        .with_context(|| format!("cannot fetch {digest} to attest it"))?;
    let finished =
        custody::evidence::attest::Timestamp::from_system_time(std::time::SystemTime::now());
    let predicate = vuln_predicate(report, &started, &finished);
    let options = custody::evidence::attach::AttachOptions {
        repository: Some(reference.repository()),
        created: Some(finished),
        ..custody::evidence::attach::AttachOptions::default()
    };
    let attached = custody::evidence::attach::attest_artifact(
        store.as_ref(),
        &fetched.descriptor,
        custody::evidence::attach::AttestInput::Predicate {
            predicate_type: PREDICATE_VULN_SCAN.into(),
            predicate,
        },
        signer.as_ref(),
        &options,
    )
    .with_context(|| format!("cannot attest the scan of {}", reference.pinned(digest)))?;
    Ok((attached.referrer.digest, reference.pinned(digest)))
}

fn artifact_uri(source: &Source) -> String {
    match source {
        Source::Sbom { path, .. } | Source::Lockfile { path, .. } => {
            path.to_string_lossy().replace('\\', "/")
        }
        Source::Oci { reference, .. } => reference.clone(),
    }
}

fn describe(source: &Source) -> String {
    match source {
        Source::Sbom { path, envelope } => {
            format!("sbom {} ({})", path.display(), enum_word(envelope))
        }
        Source::Lockfile { path, format } => format!("{format} {}", path.display()),
        Source::Oci {
            reference,
            digest,
            sboms,
        } => {
            let read: Vec<String> = sboms
                .iter()
                .map(|s| {
                    let on = s
                        .platform
                        .as_ref()
                        .map_or_else(String::new, |p| format!(" on {p}"));
                    format!("{} ({}){on}", s.referrer, enum_word(&s.envelope))
                })
                .collect();
            format!("{reference} ({digest}), sbom referrer {}", read.join(", "))
        }
    }
}

fn enum_word(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn human(report: &ScanReport, fail_on: Option<Rating>, failing: usize) -> String {
    let mut out = String::new();
    let db = &report.database;
    let _ = writeln!(
        out,
        "scanned {} package(s) from {}",
        report.result.scanned,
        describe(&report.input)
    );
    let _ = writeln!(
        out,
        "database: {} advisories, newest modified {}, content {}",
        db.advisories,
        db.newest_modified.as_deref().unwrap_or("-"),
        db.content_digest
            .as_ref()
            .map_or_else(|| "-".to_owned(), |d| d.to_string())
    );
    match &report.sbom_verification {
        SbomVerification::Unverified { reason } => {
            let _ = writeln!(out, "sbom: UNVERIFIED ({reason})");
        }
        SbomVerification::Verified { signer } => {
            let _ = writeln!(out, "sbom: verified, signed by {signer}");
        }
        SbomVerification::NotApplicable => {}
    }
    let findings = &report.result.findings;
    if findings.is_empty() {
        let _ = writeln!(out, "no known vulnerabilities found");
    } else {
        let rows: Vec<[String; 6]> = findings
            .iter()
            .map(|f| {
                let severity = match f.severity.score {
                    Some(score) => format!("{} {score:.1}", f.severity.rating),
                    None => f.severity.rating.to_string(),
                };
                let mut summary = f.summary.clone();
                if let Some(kind) = &f.informational {
                    summary = format!("[{kind}] {summary}");
                }
                if summary.chars().count() > 70 {
                    summary = summary.chars().take(69).collect::<String>() + "…";
                }
                [
                    f.package.clone(),
                    f.version.clone(),
                    f.id.to_string(),
                    severity,
                    if f.fixed.is_empty() {
                        "-".to_owned()
                    } else {
                        f.fixed.join(", ")
                    },
                    summary,
                ]
            })
            .collect();
        let header = [
            "PACKAGE", "VERSION", "ADVISORY", "SEVERITY", "FIXED", "SUMMARY",
        ];
        let mut widths = header.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let mut l = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(cell);
                } else {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    l.push_str(cell);
                    l.push_str(&" ".repeat(pad + 2));
                }
            }
            l.trim_end().to_owned()
        };
        let _ = writeln!(out, "{}", line(&header.map(str::to_owned)));
        for row in &rows {
            let _ = writeln!(out, "{}", line(row));
        }
        let mut counts = std::collections::BTreeMap::new();
        for f in findings {
            *counts.entry(f.severity.rating.as_str()).or_insert(0usize) += 1;
        }
        let by: Vec<String> = ["critical", "high", "medium", "low", "none", "unknown"]
            .iter()
            .filter_map(|r| counts.get(r).map(|n| format!("{n} {r}")))
            .collect();
        let _ = writeln!(out, "{} finding(s): {}", findings.len(), by.join(", "));
    }
    for n in &report.result.not_scanned {
        let _ = writeln!(out, "not scanned: {}", enum_word_reason(n));
    }
    if !report.components_without_purl.is_empty() {
        let _ = writeln!(
            out,
            "not scanned: {} component(s) without a purl",
            report.components_without_purl.len()
        );
    }
    for w in &report.result.warnings {
        let _ = writeln!(out, "warning: {} on {}: {}", w.advisory, w.purl, w.message);
    }
    if let Some(threshold) = fail_on {
        let _ = writeln!(
            out,
            "{failing} finding(s) at or above {threshold}{}",
            if failing > 0 { ": failing" } else { "" }
        );
    }
    out
}

fn enum_word_reason(n: &vuln::NotScanned) -> String {
    match n {
        vuln::NotScanned::NoPurl { name } => format!("{name} (no purl)"),
        vuln::NotScanned::BadPurl { purl } => format!("{purl} (malformed purl)"),
        vuln::NotScanned::UnsupportedType { purl } => {
            format!("{purl} (no ecosystem custody matches)")
        }
        vuln::NotScanned::NoVersion { purl } => format!("{purl} (no version)"),
        vuln::NotScanned::BadVersion { purl, message } => format!("{purl} ({message})"),
        vuln::NotScanned::NoRelease { purl } => format!("{purl} (no distro release)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn scan_arguments_parse() {
        let cli = Cli::try_parse_from([
            "custody",
            "scan",
            "Cargo.lock",
            "--db",
            "a",
            "--db",
            "b.zip",
            "--fail-on",
            "high",
            "--sarif",
            "out.sarif",
        ])
        .unwrap();
        let super::super::Command::Scan(args) = cli.command else {
            panic!("not scan")
        };
        assert_eq!(args.db.len(), 2);
        assert_eq!(args.fail_on, Some(Rating::High));
        assert_eq!(args.unknown_severity_as, Rating::High);
        assert!(Cli::try_parse_from(["custody", "scan", "Cargo.lock"]).is_err());
        assert!(
            Cli::try_parse_from(["custody", "scan", "x", "--db", "a", "--fail-on", "severe"])
                .is_err()
        );
    }
}
