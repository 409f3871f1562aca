//! `custody rescan`: which stored artifacts today's advisories affect, what is new since the
//! last rescan, and which artifacts have no usable SBOM.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use super::{Cli, ExitStatus, Failure, OutputFormat, Printer};
use custody::decisions::vuln::{AdvisoryId, Database, Limits};
use custody::evidence::sign::verify::TrustedRoot;
use custody::foundation::reference::Reference;
use custody::storage::store;
use custody::workflows::rescan::{self, SbomStatus, State, Target};

#[derive(clap::Args, Debug)]
pub struct RescanArgs {
    /// Repositories: `registry/repo` or `oci:<dir>`. Every tag is rescanned.
    #[arg(required = true, value_name = "REPOSITORY")]
    pub repositories: Vec<String>,
    /// OSV database: a folder of OSV JSON files or an osv.dev `all.zip`. Repeatable.
    #[arg(long = "db", value_name = "PATH", required = true)]
    pub db: Vec<PathBuf>,
    /// Verify each SBOM against this policy (the scope of its repository); SBOMs that do not
    /// verify are listed, not scanned.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// trusted_root.json for keyless SBOM signers.
    #[arg(long, value_name = "FILE", requires = "policy")]
    pub trusted_root: Option<PathBuf>,
    /// State file: the findings of the previous rescan (read), and of this one (written
    /// atomically). Findings not in it are reported as new.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Only this advisory (an id or any alias, e.g. a CVE): which artifacts does it affect?
    /// The state file is read but not written.
    #[arg(long, value_name = "ID", value_parser = parse_advisory)]
    pub advisory: Option<AdvisoryId>,
    /// Requests in flight at once (tag resolution and SBOM reads).
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=rescan::MAX_CONCURRENCY as i64))]
    pub concurrency: u16,
    /// Exit 1 when a finding is new since the state file, or (with --policy) when an artifact
    /// has no SBOM that verifies: nothing can be said about what affects it.
    #[arg(long)]
    pub fail_on_new: bool,
    /// Exit 1 when an artifact has no SBOM that verifies against the policy.
    #[arg(long, requires = "policy")]
    pub fail_on_unverified: bool,
}

fn parse_advisory(s: &str) -> Result<AdvisoryId, String> {
    AdvisoryId::parse(s).map_err(|e| e.to_string())
}

pub fn run(cli: &Cli, args: &RescanArgs, printer: &Printer) -> ExitStatus {
    let mut out = Stream::new(printer, cli.output);
    match rescan_cmd(cli, args, &mut out) {
        Ok(status) => status,
        Err(failure) => {
            out.abandon();
            printer.failure(&failure);
            failure.status
        }
    }
}

/// The report as it is written: each artifact without a usable SBOM as soon as it is known
/// (one line each; in JSON, one compact element of `withoutSbom` per line), the rest at the
/// end. With 100,000 tags the report is never held whole.
struct Stream<'a> {
    printer: &'a Printer,
    format: OutputFormat,
    buf: String,
    /// Something was written: the human heading, or JSON's opening `{"withoutSbom": [`.
    started: bool,
    /// The human heading, written before the first line.
    heading: String,
}

impl<'a> Stream<'a> {
    /// Written in pieces of about this many bytes.
    const CHUNK: usize = 64 * 1024;

    fn new(printer: &'a Printer, format: OutputFormat) -> Stream<'a> {
        Stream {
            printer,
            format,
            buf: String::new(),
            started: false,
            heading: String::new(),
        }
    }

    fn start(&mut self) {
        if !self.started {
            self.started = true;
            match self.format {
                OutputFormat::Human => self.buf.push_str(&std::mem::take(&mut self.heading)),
                OutputFormat::Json => self.buf.push_str("{\n  \"withoutSbom\": ["),
            }
        } else if self.format == OutputFormat::Json {
            self.buf.push(',');
        }
    }

    fn artifact(&mut self, a: &rescan::Artifact) -> std::io::Result<()> {
        self.start();
        match self.format {
            OutputFormat::Human => {
                let why = match &a.sbom {
                    SbomStatus::Missing => "no SBOM".to_string(),
                    SbomStatus::Refused { reason } => format!("SBOM refused: {reason}"),
                    SbomStatus::Unreadable { reason } => format!("cannot read: {reason}"),
                    _ => String::new(),
                };
                let _ = writeln!(self.buf, "{} [{}] — {why}", a.pinned(), a.tags.join(", "));
            }
            OutputFormat::Json => {
                self.buf.push_str("\n    ");
                self.buf
                    .push_str(&serde_json::to_string(a).expect("reports serialise"));
            }
        }
        if self.buf.len() >= Self::CHUNK {
            self.flush();
        }
        Ok(())
    }

    fn flush(&mut self) {
        let text = std::mem::take(&mut self.buf);
        match self.format {
            OutputFormat::Human => self.printer.report(&text, &serde_json::Value::Null),
            OutputFormat::Json => self.printer.stdout(&text),
        }
    }

    /// The end of the report: `human`, or the JSON fields besides `withoutSbom`.
    fn finish(&mut self, human: &str, json: serde_json::Value) {
        match self.format {
            OutputFormat::Human => {
                if !self.started {
                    self.buf.push_str(&std::mem::take(&mut self.heading));
                }
                self.buf.push_str(human);
            }
            OutputFormat::Json => {
                if !self.started {
                    self.buf.push_str("{\n  \"withoutSbom\": [");
                } else {
                    self.buf.push_str("\n  ");
                }
                self.buf.push(']');
                if let serde_json::Value::Object(fields) = json {
                    for (key, value) in fields {
                        let value =
                            serde_json::to_string_pretty(&value).expect("reports serialise");
                        // JSON strings hold no raw newline: this only indents the structure.
                        let value = value.replace('\n', "\n  ");
                        let key = serde_json::to_string(&key).expect("keys serialise");
                        let _ = write!(self.buf, ",\n  {key}: {value}");
                    }
                }
                self.buf.push_str("\n}\n");
            }
        }
        self.started = true;
        self.flush();
    }

    /// A failure after output began: JSON's open document is closed, so that what was written
    /// still parses, before the error document follows.
    fn abandon(&mut self) {
        if self.started && self.format == OutputFormat::Json && !self.buf.ends_with("}\n") {
            self.buf.push_str("\n  ]\n}\n");
        }
        self.flush();
    }
}

fn rescan_cmd(cli: &Cli, args: &RescanArgs, out: &mut Stream<'_>) -> Result<ExitStatus, Failure> {
    let mut options = super::store_options(cli);
    options.progress = super::request_log(cli);
    let mut targets = Vec::new();
    for r in &args.repositories {
        let reference: Reference = r
            .parse()
            .with_context(|| format!("{r:?} is not a repository reference"))?;
        let store = store::open_existing(&reference, &options)
            .with_context(|| format!("cannot open {}", reference.repository()))?;
        targets.push(Target { reference, store });
    }
    let policy = args
        .policy
        .as_deref()
        .map(|p| {
            custody::decisions::policy::Policy::load(p)
                .with_context(|| format!("policy {} cannot be used", p.display()))
        })
        .transpose()?;
    let root = match &args.trusted_root {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read trusted root {}", path.display()))?;
            TrustedRoot::from_json(&bytes)
                .with_context(|| format!("cannot use trusted root {}", path.display()))?
        }
        None => TrustedRoot::empty(),
    };
    let previous = match &args.state {
        Some(path) => State::read(path)?,
        None => None,
    };
    let db = Database::load(&args.db, &Limits::default())
        .context("could not load the vulnerability database")?;
    out.heading = database_line(db.identity());
    let (report, state) = rescan::rescan(
        &targets,
        &db,
        policy.as_ref(),
        &root,
        previous.as_ref(),
        &rescan::Options {
            concurrency: usize::from(args.concurrency),
            advisory: args.advisory.clone(),
            jobs: super::jobs(cli),
            attestations: super::attestations_lookup(cli)?,
        },
        &mut |a| out.artifact(a),
    )?;
    let mut state_written = None;
    if let Some(path) = &args.state
        && args.advisory.is_none()
    {
        state.write(path)?;
        state_written = Some(path.clone());
    }
    let unreadable = report.unreadable
        + report
            .repositories
            .iter()
            .map(|r| r.unresolved.len())
            .sum::<usize>();
    let status = if unreadable > 0 {
        ExitStatus::Error
    } else if (args.fail_on_new && report.new_findings > 0)
        || ((args.fail_on_new || args.fail_on_unverified) && report.without_verified_sbom > 0)
    {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    };
    // Only the format asked for is built.
    match cli.output {
        OutputFormat::Human => out.finish(
            &human(&report, state_written.as_ref(), unreadable),
            serde_json::Value::Null,
        ),
        OutputFormat::Json => {
            let mut json = serde_json::to_value(&report).expect("reports serialise");
            json["stateWritten"] = serde_json::to_value(&state_written).expect("serialises");
            out.finish("", json);
        }
    }
    Ok(status)
}

fn database_line(db: &custody::decisions::vuln::DbIdentity) -> String {
    format!(
        "database: {} advisories, newest modified {}, content {}\n",
        db.advisories,
        db.newest_modified.as_deref().unwrap_or("-"),
        db.content_digest
            .as_ref()
            .map_or_else(|| "-".to_owned(), |d| d.to_string())
    )
}

fn human(report: &rescan::Report, state: Option<&PathBuf>, unreadable: usize) -> String {
    let mut out = String::new();
    if let Some(a) = &report.advisory {
        let _ = writeln!(
            out,
            "advisory {}: {}",
            a.id,
            a.matched
                .iter()
                .map(AdvisoryId::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for r in &report.repositories {
        let _ = writeln!(
            out,
            "{}: {} tag(s), {} artifact(s){}",
            r.repository,
            r.tags,
            r.artifacts,
            r.scope
                .as_ref()
                .map_or(String::new(), |s| format!(", policy scope {s}"))
        );
        for u in &r.unresolved {
            let _ = writeln!(out, "  cannot resolve {u}");
        }
    }
    if report.affected.is_empty() {
        let _ = writeln!(
            out,
            "no scanned artifact is affected{}",
            if report.without_verified_sbom > 0 {
                "; some artifacts could not be scanned (above)"
            } else {
                ""
            }
        );
    }
    for a in &report.affected {
        let _ = writeln!(
            out,
            "{} [{}] — {} finding(s){}",
            a.pinned(),
            a.tags.join(", "),
            a.findings.len(),
            match &a.sbom {
                SbomStatus::Unverified { .. } => ", sbom UNVERIFIED",
                _ => "",
            }
        );
        for f in &a.findings {
            let aliases = if f.aliases.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    f.aliases
                        .iter()
                        .map(AdvisoryId::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let _ = writeln!(
                out,
                "  {}{} {}{aliases} {} {} {}",
                if f.new { "NEW " } else { "" },
                f.severity,
                f.id,
                f.package,
                f.version,
                if f.fixed.is_empty() {
                    "no fix".to_string()
                } else {
                    format!("fixed in {}", f.fixed.join(", "))
                },
            );
        }
    }
    let _ = writeln!(
        out,
        "{} artifact(s) scanned ({} with an unverified SBOM), {} affected, {} new finding(s){}, {} without a usable SBOM",
        report.scanned,
        report.unverified,
        report.affected.len(),
        report.new_findings,
        if report.previous_state {
            " since the last rescan"
        } else {
            " (no previous state)"
        },
        report.without_sbom
    );
    if report.without_verified_sbom > 0 {
        let _ = writeln!(
            out,
            "{} artifact(s) without a verified SBOM: a failure with --fail-on-new or --fail-on-unverified",
            report.without_verified_sbom
        );
    }
    if unreadable > 0 {
        let _ = writeln!(out, "{unreadable} tag(s) or artifact(s) could not be read");
    }
    if let Some(path) = state {
        let _ = writeln!(out, "state written to {}", path.display());
    }
    out
}
