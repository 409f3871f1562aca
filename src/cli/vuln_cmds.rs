//! `custody scan`: match the components of an SBOM, a lockfile or an OCI artifact's SBOM
//! referrer against an offline OSV database; print a table or the typed report, write SARIF,
//! and exit 1 when a finding is at or above `--fail-on`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::{Cli, EXIT_REFUSED, Failure, Report, print_failure, print_report};
use crate::reference::Reference;
use crate::store;
use crate::vuln::input::{self, SbomVerification, Source};
use crate::vuln::policy::{self, Verdict, VexDocument};
use crate::vuln::{self, Database, Finding, Limits, Rating, ScanReport, sarif};

#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// What to scan: a CycloneDX JSON SBOM (bare, in-toto statement or Sigstore bundle), a
    /// lockfile (Cargo.lock, package-lock.json, go.mod, uv.lock, poetry.lock,
    /// requirements*.txt), or an OCI reference whose SBOM referrer is read.
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
    /// OpenVEX document (repeatable): findings it marks `not_affected` (with a justification)
    /// are listed apart and do not count for --fail-on.
    #[arg(long = "vex", value_name = "FILE")]
    pub vex: Vec<PathBuf>,
}

/// Runs the scan, prints, and maps the outcome to the exit code.
pub fn run(cli: &Cli, args: &ScanArgs) -> ExitCode {
    match scan(cli, args) {
        Ok((report, failing)) => {
            print_report(cli.output, &report);
            if failing > 0 {
                ExitCode::from(EXIT_REFUSED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(failure) => {
            print_failure(cli.output, &failure);
            ExitCode::from(failure.code)
        }
    }
}

fn scan(cli: &Cli, args: &ScanArgs) -> Result<(Report, usize), Failure> {
    let vex = args
        .vex
        .iter()
        .map(|p| VexDocument::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let components = read_input(cli, &args.input)?;
    let db = Database::load(&args.db, &Limits::default())
        .context("could not load the vulnerability database")?;
    let report = vuln::scan_components(components, &db);
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
    json["failOn"] = serde_json::to_value(args.fail_on).expect("serialises");
    json["failing"] = failing.len().into();
    Ok((Report { human, json }, failing.len()))
}

fn read_input(cli: &Cli, input: &str) -> Result<input::Components, Failure> {
    let path = Path::new(input);
    if path.exists() {
        return Ok(input::from_file(path).with_context(|| format!("cannot scan {input}"))?);
    }
    let reference: Reference = input
        .parse()
        .with_context(|| format!("{input:?} is neither an existing file nor an oci reference"))?;
    let store = store::open(&reference, &super::store_options(cli))
        .with_context(|| format!("cannot open {}", reference.repository()))?;
    Ok(input::from_oci(store.as_ref(), &reference, None)
        .with_context(|| format!("cannot read the sbom of {reference}"))?)
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
    if let SbomVerification::Unverified { reason } = &report.sbom_verification {
        let _ = writeln!(out, "sbom: UNVERIFIED ({reason})");
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
