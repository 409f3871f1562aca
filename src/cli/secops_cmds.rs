//! `sources check`, `prune`, `audit verify`, `audit show`, and the audit record every
//! storage-changing or deciding command appends (`CUSTODY_AUDIT_LOG`).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use super::diagnostics::render;
use super::{Cli, Command, ExitStatus, Failure, Printer, Report, store_options};
use custody::decisions::sources;
use custody::evidence::attest::Timestamp;
use custody::evidence::sign::PublicKey;
use custody::foundation::digest::Digest;
use custody::foundation::reference::Reference;
use custody::storage::store;
use custody::workflows::audit::{self, Outcome};
use custody::workflows::prune;

// ------------------------------------------------------------------------------ sources

#[derive(clap::Subcommand, Debug)]
pub enum SourcesCommand {
    /// Check that internal package namespaces were resolved from internal registries.
    Check(SourcesCheckArgs),
}

#[derive(clap::Args, Debug)]
pub struct SourcesCheckArgs {
    /// A CycloneDX JSON SBOM, or a lockfile (Cargo.lock, package-lock.json, …).
    pub input: PathBuf,
    /// The verification policy (YAML or JSON, schemas/policy.schema.json): the `sources:`
    /// section of one scope applies. The old sources-only JSON/TOML file is still read, with a
    /// note.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// The scope whose `sources:` rules apply, by name (default: the only scope that has one).
    #[arg(long, value_name = "NAME", conflicts_with = "repository")]
    pub scope: Option<String>,
    /// The scope that applies to an artifact in this repository, as `verify` chooses it.
    #[arg(long, value_name = "REPOSITORY")]
    pub repository: Option<String>,
}

/// How `sources check` and `audit verify` end: their report, and when they refuse, the error
/// that follows it.
pub enum Checked {
    Passed(Report),
    /// The report is printed (stdout, human or JSON), then the error and hint (stderr); exit 1.
    Refused {
        report: Report,
        failure: Failure,
    },
}

/// Prints a checked report and maps it to the exit status, the way `scan` and `promote` do: a
/// refusal prints the whole report first, so `--output json` readers get the violations or the
/// tampering in the report's own schema, not only the error document.
pub fn print_checked(printer: &Printer, result: Result<Checked, Failure>) -> ExitStatus {
    match result {
        Ok(Checked::Passed(report)) => {
            printer.report(&report.human, &report.json);
            ExitStatus::Success
        }
        Ok(Checked::Refused { report, failure }) => {
            printer.report(&report.human, &report.json);
            printer.stderr(&render(&failure.error, failure.hint.as_deref()));
            failure.status
        }
        Err(failure) => {
            printer.failure(&failure);
            failure.status
        }
    }
}

/// `custody sources check`: prints the report; exit 1 after it when a violation is found.
pub fn run_sources(cmd: &SourcesCommand, printer: &Printer) -> ExitStatus {
    print_checked(printer, sources(cmd, printer))
}

/// `custody audit verify | show`: prints the report; exit 1 after it when the log is tampered.
pub fn run_audit(cmd: &AuditCommand, printer: &Printer) -> ExitStatus {
    print_checked(printer, audit(cmd, printer))
}

/// The `sources:` rules `sources check` applies, from the verification policy (or the old
/// sources-only file, with a note saying where its rules now go).
fn sources_rules(
    args: &SourcesCheckArgs,
    printer: &Printer,
) -> Result<sources::SourcesRules, Failure> {
    use custody::decisions::policy::{Policy, ScopeChoice};
    let path = &args.policy;
    if sources::is_sources_only_file(path) {
        if args.scope.is_some() || args.repository.is_some() {
            return Err(Failure {
                error: anyhow::anyhow!(
                    "{} is a sources-only file; it has no scopes to choose from",
                    path.display()
                ),
                status: ExitStatus::Error,
                hint: Some(SOURCES_MOVE_HINT.into()),
            });
        }
        let rules = sources::read_rules(path)
            .with_context(|| format!("cannot use policy {}", path.display()))?;
        printer.stderr(&format!(
            "note: {} is the old sources-only format; {SOURCES_MOVE_HINT}\n",
            path.display()
        ));
        return Ok(rules);
    }
    let policy =
        Policy::load(path).with_context(|| format!("cannot use policy {}", path.display()))?;
    let choice = match (&args.scope, &args.repository) {
        (Some(name), _) => ScopeChoice::Named(name.clone()),
        (None, Some(repository)) => ScopeChoice::Repository(repository.clone()),
        (None, None) => ScopeChoice::Only,
    };
    let (_, rules) = policy
        .sources_rules(&choice)
        .with_context(|| format!("cannot use policy {}", path.display()))?;
    Ok(rules.clone())
}

const SOURCES_MOVE_HINT: &str = "put its rules under the `sources:` of a scope in the verification policy (YAML or JSON, `custody policy init` writes one) and pass that file";

pub fn sources(cmd: &SourcesCommand, printer: &Printer) -> Result<Checked, Failure> {
    let SourcesCommand::Check(args) = cmd;
    let rules = sources_rules(args, printer)?;
    let components = sources::read_components(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let report = rules.evaluate(&components);
    let mut human = String::new();
    for v in &report.violations {
        let _ = writeln!(human, "VIOLATION {}", v.purl);
        let _ = writeln!(human, "  internal namespace: {}", v.pattern);
        let _ = writeln!(human, "  resolved from:      {}", v.resolved);
        let _ = writeln!(human, "  must come from:     {}", v.allowed.join(" or "));
    }
    let _ = writeln!(
        human,
        "{} component(s) checked, {} internal, {} violation(s)",
        report.checked,
        report.internal,
        report.violations.len()
    );
    let json = serde_json::to_value(&report).expect("serialisable");
    if report.violations.is_empty() {
        return Ok(Checked::Passed(Report { human, json }));
    }
    let failure = Failure {
        error: anyhow::anyhow!(
            "{} component(s) with an internal name came from outside the allowed registries",
            report.violations.len(),
        ),
        status: ExitStatus::Failure,
        hint: Some(
            "pin the internal registry for these names (npm: an @scope:registry line in .npmrc; cargo: `registry = \"...\"` on the dependency) and regenerate the lockfile".into(),
        ),
    };
    Ok(Checked::Refused {
        report: Report { human, json },
        failure,
    })
}

// ------------------------------------------------------------------------------ prune

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// The repository: registry/repo or oci:<dir>.
    pub repository: String,
    /// Keep the N most recently created artifacts.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Keep artifacts with a tag matching this glob (`v*`, `release-*`). Repeatable.
    #[arg(long = "keep-tag", value_name = "PATTERN")]
    pub keep_tags: Vec<String>,
    /// Keep artifacts created less than this long ago (30d, 12h, 2w, 1d12h).
    #[arg(long, value_name = "DURATION")]
    pub keep_younger_than: Option<String>,
    /// Keep the artifact this exact tag points to. Repeatable.
    #[arg(long = "protect-tag", value_name = "TAG")]
    pub protect_tags: Vec<String>,
    /// Delete. Without it prune only prints the plan.
    #[arg(long)]
    pub yes: bool,
}

pub fn prune(cli: &Cli, args: &PruneArgs) -> Result<Audited, Failure> {
    let reference: Reference = args
        .repository
        .parse()
        .with_context(|| format!("cannot use {:?} as a repository", args.repository))?;
    if reference.tag.is_some() || reference.digest.is_some() {
        return Err(anyhow::anyhow!(
            "prune works on a whole repository; {} names a tag or digest",
            args.repository
        )
        .into());
    }
    let rules = prune::Rules {
        keep_last: args.keep_last,
        keep_tags: args.keep_tags.clone(),
        keep_younger_than: args
            .keep_younger_than
            .as_deref()
            .map(prune::parse_duration)
            .transpose()?,
        protect_tags: args.protect_tags.clone(),
    };
    let store = store::open(&reference, &store_options(cli))
        .with_context(|| format!("cannot open {}", reference.repository()))?;
    let now = now_unix();
    let plan = prune::plan(store.as_ref(), &rules, now)
        .with_context(|| format!("cannot plan the pruning of {}", store.name()))?;
    let mut human = String::new();
    let deleting = plan.to_delete().count();
    let _ = writeln!(
        human,
        "prune plan for {}: keep {}, delete {}",
        plan.repository,
        plan.candidates.len() - deleting,
        deleting
    );
    for c in &plan.candidates {
        let _ = writeln!(
            human,
            "  {:<6}  {}  {:<20}  {}",
            if c.keep { "keep" } else { "delete" },
            c.digest.short(),
            c.tags.join(","),
            c.reason
        );
        // Everything that goes with it, so --yes deletes nothing that was not shown.
        for d in c.deletes.iter().filter(|d| **d != c.digest) {
            let _ = writeln!(human, "          with {}", d.short());
        }
        if !c.drops_tags.is_empty() {
            let _ = writeln!(human, "          with tags {}", c.drops_tags.join(" "));
        }
    }
    if !plan.keep_closure.is_empty() {
        let _ = writeln!(
            human,
            "  kept because kept artifacts need them ({}):",
            plan.keep_closure.len()
        );
        for n in &plan.keep_closure {
            let _ = writeln!(human, "  keep    {}  {}", n.digest.short(), n.reason);
        }
    }
    if !plan.attachment_tags.is_empty() {
        let _ = writeln!(
            human,
            "  ({} attachment tag(s) follow their subjects)",
            plan.attachment_tags.len()
        );
    }
    if !args.yes {
        let _ = writeln!(
            human,
            "dry run: nothing deleted; pass --yes to delete {deleting} artifact(s) with their signatures and attestations"
        );
        return Ok(Audited {
            report: Report {
                human,
                json: serde_json::json!({ "plan": plan, "executed": false }),
            },
            done: audit::Done::Pruned(Vec::new()),
        });
    }
    let done = prune::execute(store.as_ref(), &plan);
    for d in &done.deletions {
        match &d.error {
            None => {
                let _ = writeln!(
                    human,
                    "deleted {} ({}): {} manifest(s){}",
                    d.digest,
                    d.tags.join(","),
                    d.deleted.len(),
                    if d.attachment_tags.is_empty() {
                        String::new()
                    } else {
                        format!(", attachment tags {}", d.attachment_tags.join(" "))
                    }
                );
            }
            Some(e) => {
                let _ = writeln!(
                    human,
                    "NOT deleted {} ({}): {e}",
                    d.digest,
                    d.tags.join(",")
                );
            }
        }
    }
    let json = serde_json::json!({ "plan": plan, "executed": true, "deletions": done.deletions });
    if done.complete() {
        return Ok(Audited {
            report: Report { human, json },
            done: audit::Done::Pruned(done.deletions),
        });
    }
    let failed = done.deletions.iter().filter(|d| d.error.is_some()).count();
    let unsupported = done.deletions.iter().any(|d| d.unsupported);
    Err(Failure {
        error: anyhow::anyhow!(
            "{failed} of {} artifact(s) could not be deleted from {}",
            done.deletions.len(),
            plan.repository
        ),
        status: ExitStatus::Failure,
        hint: Some(format!(
            "{human}{}",
            if unsupported {
                "the registry refuses deletes; enable them (distribution: storage.delete.enabled: true) or prune with the registry's own retention"
            } else {
                "run prune again: what was deleted is gone, the rest is planned anew"
            }
        )),
    })
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

// ------------------------------------------------------------------------------ audit

#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Check a log's hash chain, order and signed checkpoints; name the first bad record.
    Verify(AuditVerifyArgs),
    /// Print the records of a log, filtered.
    Show(AuditShowArgs),
}

#[derive(clap::Args, Debug)]
pub struct AuditVerifyArgs {
    /// The audit log (`CUSTODY_AUDIT_LOG` of the commands that wrote it).
    pub log: PathBuf,
    /// Public key (PEM) that signs the checkpoints; without it signatures are not checked.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// A checkpoint file kept elsewhere; default: `<log>.checkpoint` when present.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Refuse (exit 1) unless at least one checkpoint signature was verified with --key.
    #[arg(long)]
    pub require_checkpoint: bool,
}

#[derive(clap::Args, Debug)]
pub struct AuditShowArgs {
    /// The audit log (`CUSTODY_AUDIT_LOG` of the commands that wrote it).
    pub log: PathBuf,
    /// A digest, or part of a reference.
    #[arg(long)]
    pub artifact: Option<String>,
    #[arg(long)]
    pub actor: Option<String>,
    #[arg(long)]
    pub action: Option<String>,
    /// From this time (2026-01-02T03:04:05Z or 2026-01-02).
    #[arg(long)]
    pub since: Option<String>,
    /// Up to this time (2026-01-02T03:04:05Z or 2026-01-02, which means the whole day).
    #[arg(long)]
    pub until: Option<String>,
}

pub fn audit(cmd: &AuditCommand, printer: &Printer) -> Result<Checked, Failure> {
    match cmd {
        AuditCommand::Verify(args) => audit_verify(args, printer),
        AuditCommand::Show(args) => audit_show(args).map(Checked::Passed),
    }
}

fn audit_verify(args: &AuditVerifyArgs, printer: &Printer) -> Result<Checked, Failure> {
    let key = match &args.key {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read key {}", path.display()))?;
            Some(
                PublicKey::from_pem(&pem)
                    .with_context(|| format!("cannot use key {}", path.display()))?,
            )
        }
        None => None,
    };
    let sidecar = audit::checkpoint_path(&args.log);
    let checkpoint_file = match &args.checkpoint {
        Some(p) => Some(p.clone()),
        None => sidecar.is_file().then_some(sidecar),
    };
    let known_checkpoint = checkpoint_file
        .as_deref()
        .map(audit::read_checkpoint_file)
        .transpose()?;
    let v = audit::verify_file(
        &args.log,
        &audit::VerifyOptions {
            key: key.clone(),
            known_checkpoint: known_checkpoint.clone(),
        },
    )?;
    let mut human = String::new();
    let _ = writeln!(
        human,
        "{}: {} record(s), last seq {}, {} checkpoint(s){}",
        args.log.display(),
        v.records,
        v.last_seq.map_or("-".into(), |s| s.to_string()),
        v.checkpoints,
        match (&key, v.checkpoints) {
            (_, 0) => String::new(),
            (Some(_), _) => format!(", {} signature(s) verified", v.checkpoints_verified),
            (None, _) => ", signatures NOT checked (no --key)".into(),
        }
    );
    match (&known_checkpoint, &checkpoint_file) {
        (Some(cp), Some(path)) => {
            let _ = writeln!(
                human,
                "known checkpoint: seq {} from {}",
                cp.seq,
                path.display()
            );
        }
        _ => {
            let _ = writeln!(
                human,
                "no checkpoint file: cutting records off the end would not show"
            );
        }
    }
    if v.unsealed > 0 {
        let _ = writeln!(
            human,
            "{} record(s) after the last checkpoint are chained but not yet sealed by a signature",
            v.unsealed
        );
    }
    for line in &v.recovered {
        let _ = writeln!(
            human,
            "line {line}: a record torn by a crash, accounted for by the recover record after it"
        );
    }
    if let Some(t) = &v.torn_tail {
        let _ = writeln!(
            human,
            "line {}: torn last record ({} bytes): a crash during the last write; the next append records it",
            t.line, t.bytes
        );
    }
    let mut json = serde_json::to_value(&v).expect("serialisable");
    // A key that checked no signature proves nothing beyond the hash chain.
    let unsigned = v.checkpoints_verified == 0;
    if v.problem.is_none() && unsigned && (key.is_some() || args.require_checkpoint) {
        let why = if key.is_some() {
            "the log has no signed checkpoint, so --key checked nothing: only the hash chain was verified"
        } else {
            "no checkpoint signature was checked (no --key): only the hash chain was verified"
        };
        let hint = "sign checkpoints where the log is written: set CUSTODY_AUDIT_KEY (and CUSTODY_AUDIT_CHECKPOINT_EVERY)";
        json["warnings"] = serde_json::json!([why]);
        if args.require_checkpoint {
            let _ = writeln!(human, "REFUSED: {why}");
            return Ok(Checked::Refused {
                report: Report { human, json },
                failure: Failure {
                    error: anyhow::anyhow!("{}: {why}", args.log.display()),
                    status: super::ExitStatus::Failure,
                    hint: Some(hint.into()),
                },
            });
        }
        printer.stderr(&format!("warning: {why}\n  hint: {hint}\n"));
        let _ = writeln!(human, "warning: {why}");
        human.push_str("intact (hash chain only)\n");
        return Ok(Checked::Passed(Report { human, json }));
    }
    match &v.problem {
        None => {
            human.push_str("intact\n");
            Ok(Checked::Passed(Report { human, json }))
        }
        Some(p) => {
            let kind = serde_json::to_value(p.kind).expect("serialisable");
            let problem = format!(
                "{} at line {}{}: {}",
                kind.as_str().unwrap_or_default(),
                p.line,
                p.seq.map_or(String::new(), |s| format!(" (seq {s})")),
                p.detail
            );
            let _ = writeln!(human, "TAMPERED: {problem}");
            Ok(Checked::Refused {
                report: Report { human, json },
                failure: Failure {
                    error: anyhow::anyhow!("audit log tampered: {problem}"),
                    status: ExitStatus::Failure,
                    hint: Some(
                        "compare the log with a copy kept elsewhere (its head digest, the checkpoint file); records from the line named on are not to be trusted".into(),
                    ),
                },
            })
        }
    }
}

fn time_arg(input: &str, end_of_day: bool) -> Result<Timestamp, Failure> {
    let full = if input.len() == 10 {
        format!(
            "{input}T{}Z",
            if end_of_day { "23:59:59" } else { "00:00:00" }
        )
    } else {
        input.to_owned()
    };
    Ok(Timestamp::parse(&full).with_context(|| format!("cannot use {input:?} as a time"))?)
}

fn audit_show(args: &AuditShowArgs) -> Result<Report, Failure> {
    let filter = audit::Filter {
        artifact: args.artifact.clone(),
        actor: args.actor.clone(),
        action: args.action.clone(),
        since: args
            .since
            .as_deref()
            .map(|s| time_arg(s, false))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| time_arg(s, true))
            .transpose()?,
    };
    let bytes =
        std::fs::read(&args.log).with_context(|| format!("cannot read {}", args.log.display()))?;
    let entries = audit::show(&bytes, &filter);
    let mut human = String::new();
    for e in &entries {
        let _ = writeln!(
            human,
            "{:>6}  {}  {:<10}  {:<8}  {}  {}",
            e.seq,
            e.time,
            e.action,
            serde_json::to_value(e.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            e.actor,
            e.reference
                .clone()
                .or_else(|| e.artifact.as_ref().map(Digest::to_string))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(human, "{} record(s)", entries.len());
    Ok(Report {
        human,
        json: serde_json::to_value(&entries).expect("serialisable"),
    })
}

/// Who acts: the CI identity when a CI runs us, else the local user.
pub(crate) fn actor() -> String {
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
    match custody::evidence::ci::detect(&env) {
        Ok(ctx) if ctx.platform == custody::evidence::ci::Platform::GithubActions => format!(
            "github-actions:{}@{}",
            get("GITHUB_ACTOR").unwrap_or_default(),
            ctx.builder_id
        ),
        Ok(ctx) if ctx.platform == custody::evidence::ci::Platform::GitlabCi => format!(
            "gitlab-ci:{}@{}",
            get("GITLAB_USER_LOGIN").unwrap_or_default(),
            ctx.builder_id
        ),
        _ => format!(
            "local:{}",
            get("USER")
                .or_else(|| get("USERNAME"))
                .unwrap_or_else(|| "unknown".into())
        ),
    }
}

/// The log `CUSTODY_AUDIT_LOG` names (a path, or `-` for standard output), with checkpoints
/// every `CUSTODY_AUDIT_CHECKPOINT_EVERY` records signed by `CUSTODY_AUDIT_KEY`.
pub fn audit_log() -> anyhow::Result<Option<audit::Log>> {
    let Some(location) = std::env::var_os("CUSTODY_AUDIT_LOG").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let destination = if location == "-" {
        audit::Destination::Stdout
    } else {
        audit::Destination::File(PathBuf::from(location))
    };
    let mut config = audit::Config::new(destination);
    if let Ok(every) = std::env::var("CUSTODY_AUDIT_CHECKPOINT_EVERY") {
        config.checkpoint_every = every
            .parse()
            .with_context(|| format!("CUSTODY_AUDIT_CHECKPOINT_EVERY={every:?} is not a number"))?;
    }
    if let Ok(key) = std::env::var("CUSTODY_AUDIT_KEY") {
        config.checkpoint_key = Some(
            super::sign_cmds::open_signing_key(&key).context("cannot load CUSTODY_AUDIT_KEY")?,
        );
    }
    Ok(Some(audit::Log::open(config)?))
}

/// Appends `record` to the configured audit log (none configured: nothing to do).
pub(crate) fn append_audit(record: audit::Record) -> anyhow::Result<()> {
    match audit_log()? {
        Some(mut log) => log.append(record).map(drop).map_err(anyhow::Error::from),
        None => Ok(()),
    }
}

/// The record of a verification verdict: the digest verified, the policy (source and digest)
/// and the scope, `ok` when verified and `refused` when not.
pub(crate) fn verdict_record(
    action: &str,
    reference: &str,
    report: &custody::decisions::verify::VerifyReport,
) -> audit::Record {
    let mut record = audit::Record::new(
        actor(),
        action,
        if report.verified {
            Outcome::Ok
        } else {
            Outcome::Refused
        },
    );
    record.reference = Some(reference.to_owned());
    record.artifact = report.digest.clone();
    record.details = serde_json::json!({
        "pinned": report.pinned,
        "policy": report.policy.source,
        "policyDigest": report.policy.digest,
        "scope": report.scope,
        "failed": report
            .failures()
            .iter()
            .map(|c| serde_json::to_value(c.kind).unwrap_or_default())
            .collect::<Vec<_>>(),
    });
    record
}

/// The record of a command that could not run to its end.
pub(crate) fn failure_record(action: &str, reference: &str, failure: &Failure) -> audit::Record {
    let mut record = audit::Record::new(
        actor(),
        action,
        if failure.status == ExitStatus::Failure {
            Outcome::Refused
        } else {
            Outcome::Failed
        },
    );
    record.reference = Some(reference.to_owned());
    record.details = serde_json::json!({ "error": format!("{:#}", failure.error) });
    record
}

/// A report with what the command did, for the audit log.
pub struct Audited {
    pub report: Report,
    pub done: audit::Done,
}

/// Appends the audit record of a finished command (push, copy, prune, sign, attest, release),
/// built from its typed outcome. When the record cannot be written the command fails: an action
/// that leaves no trace is not acceptable where an audit log is configured.
pub fn audited(command: &Command, result: Result<Audited, Failure>) -> Result<Report, Failure> {
    let (action, reference) = match command {
        Command::Push(a) => ("push", a.to.clone()),
        Command::Copy(a) if a.dry_run => return result.map(|a| a.report),
        Command::Copy(a) => ("copy", format!("{} -> {}", a.source, a.destination)),
        Command::Prune(a) if !a.yes => return result.map(|a| a.report),
        Command::Prune(a) => ("prune", a.repository.clone()),
        Command::Sign(a) => ("sign", a.reference.clone()),
        Command::Attest(a) => ("attest", a.reference.clone()),
        Command::Release(a) => (
            "release",
            a.to.clone()
                .or_else(|| a.image.clone())
                .unwrap_or_else(|| "the embedded store".into()),
        ),
        _ => return result.map(|a| a.report),
    };
    let record = match &result {
        Ok(a) => audit::Record::done(actor(), action, reference, &a.done),
        Err(f) => failure_record(action, &reference, f),
    };
    with_audit(action, result.map(|a| a.report), append_audit(record))
}

/// Combines a command's result with the outcome of writing its audit record.
pub(crate) fn with_audit<T>(
    action: &str,
    result: Result<T, Failure>,
    written: anyhow::Result<()>,
) -> Result<T, Failure> {
    match (result, written) {
        (result, Ok(())) => result,
        (Ok(_), Err(e)) => Err(Failure {
            error: e.context(format!(
                "{action} was done, but its audit record could not be written"
            )),
            status: ExitStatus::Error,
            hint: Some("check CUSTODY_AUDIT_LOG and run custody audit verify on it".into()),
        }),
        (Err(mut f), Err(e)) => {
            f.hint = Some(format!(
                "{}also, the audit record could not be written: {e:#}",
                f.hint.map(|h| format!("{h}\n")).unwrap_or_default()
            ));
            Err(f)
        }
    }
}
