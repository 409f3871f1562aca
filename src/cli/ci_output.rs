//! Reports for CI: `--output markdown` (a GitHub job summary: for verify the verdict, a table
//! of the checks and the referrer tree; for tree, release, promote and scan their outcome and
//! key facts), `--junit FILE` (GitLab's test report widget), and the failed checks on
//! stderr when a refusal's report goes to stdout as JSON or Markdown, so a CI log always says why.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use super::diagnostics::{ExitStatus, Failure};
use super::printer::Printer;
use super::{Cli, Command, OutputChoice, Report};
use custody::decisions::verify::{Check, ManifestReport, Status, VerifyReport};

/// Rows of the checks table before it is cut short: a job summary holds at most 1 MiB.
const MAX_TABLE_ROWS: usize = 300;
/// Longest cell text kept (registry-supplied values can be long).
const MAX_CELL_CHARS: usize = 300;

/// `--output markdown` is refused (exit 2) for commands that have no Markdown report.
pub fn check_markdown_support(cli: &Cli) -> Result<(), Failure> {
    if cli.output_choice != OutputChoice::Markdown
        || matches!(
            cli.command,
            Command::Verify(_)
                | Command::Tree(_)
                | Command::Release(_)
                | Command::Promote(_)
                | Command::Scan(_)
        )
    {
        return Ok(());
    }
    Err(Failure {
        error: anyhow::anyhow!(
            "--output markdown is available for verify, tree, release, promote and scan only"
        ),
        status: ExitStatus::Error,
        hint: Some("use --output human or --output json with this command".into()),
    })
}

/// Prints the Markdown report when `--output markdown` asked for it; false otherwise.
pub fn print_verify_markdown(cli: &Cli, printer: &Printer, report: &VerifyReport) -> bool {
    if cli.output_choice != OutputChoice::Markdown {
        return false;
    }
    printer.stdout(&markdown(report));
    true
}

/// Prints the Markdown report of `tree` or `release` when `--output markdown` asked for it;
/// false otherwise (the caller prints the human or JSON report).
pub fn print_report_markdown(cli: &Cli, printer: &Printer, report: &Report) -> bool {
    if cli.output_choice != OutputChoice::Markdown {
        return false;
    }
    let text = match &cli.command {
        Command::Tree(_) => tree_markdown(&report.json, &report.human),
        Command::Release(_) => release_markdown(&report.json),
        _ => return false,
    };
    printer.stdout(&text);
    true
}

/// Prints `json` as Markdown through `render` when `--output markdown` asked for it, else
/// `human` or `json` as `--output` says (for promote and scan, which print their own reports).
pub fn print_or_markdown(
    cli: &Cli,
    printer: &Printer,
    human: &str,
    json: &serde_json::Value,
    render: fn(&serde_json::Value) -> String,
) {
    if cli.output_choice == OutputChoice::Markdown {
        printer.stdout(&render(json));
    } else {
        printer.report(human, json);
    }
}

/// A string field of a JSON report, or "" when absent.
fn text<'a>(value: &'a serde_json::Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

/// A value of a facts table: text, or a reference or digest shown as code.
enum Fact {
    Text(String),
    Code(String),
}

/// A two-column table of facts; empty values are left out.
fn facts(out: &mut String, rows: &[(&str, Fact)]) {
    out.push_str("| | |\n|---|---|\n");
    for (label, value) in rows {
        match value {
            Fact::Text(v) if !v.is_empty() => {
                let _ = writeln!(out, "| {label} | {} |", cell(v));
            }
            Fact::Code(v) if !v.is_empty() => {
                let _ = writeln!(out, "| {label} | `{}` |", code(v));
            }
            _ => {}
        }
    }
}

/// `tree` as Markdown: the artifact, the verdict when a policy was given, and the referrer
/// tree as the human report draws it.
pub fn tree_markdown(json: &serde_json::Value, human: &str) -> String {
    let mut out = String::new();
    let heading = match json
        .pointer("/verification/verified")
        .and_then(|v| v.as_bool())
    {
        Some(true) => "✅ custody tree: verified",
        Some(false) => "❌ custody tree: refused",
        None => "custody tree",
    };
    let _ = writeln!(out, "### {heading}\n");
    let referrers = json["nodes"].as_array().map_or(0, Vec::len);
    facts(
        &mut out,
        &[
            ("Artifact", Fact::Code(text(json, "/pinned").to_owned())),
            (
                "Media type",
                Fact::Text(text(json, "/mediaType").to_owned()),
            ),
            ("Referrers", Fact::Text(referrers.to_string())),
            (
                "Policy",
                Fact::Text(text(json, "/verification/policy/source").to_owned()),
            ),
        ],
    );
    let _ = writeln!(out, "\n{}", fenced(human));
    out
}

/// `release` as Markdown: the pinned reference, the tag, the source, and what was attached.
pub fn release_markdown(json: &serde_json::Value) -> String {
    let mut out = String::new();
    let again = json["alreadyReleased"].as_bool() == Some(true);
    let verified = json["verified"].as_bool() == Some(true);
    let _ = writeln!(
        out,
        "### {} custody release: {}\n",
        if verified { "✅" } else { "❌" },
        if again {
            "already released"
        } else if verified {
            "released"
        } else {
            "released, not verified"
        }
    );
    let tag = match (text(json, "/tag"), json.pointer("/tagOutcome")) {
        ("", _) => String::new(),
        (tag, Some(outcome)) if !outcome.is_null() => format!("{tag} ({})", outcome_word(outcome)),
        (tag, _) => tag.to_owned(),
    };
    let source = match json.get("source") {
        Some(s) if s.is_object() => format!(
            "{} @ {}{}",
            s["repository"].as_str().unwrap_or("(no remote)"),
            text(s, "/commit"),
            if s["dirty"].as_bool() == Some(true) {
                " (dirty)"
            } else {
                ""
            }
        ),
        _ => "none".to_owned(),
    };
    facts(
        &mut out,
        &[
            ("Pinned", Fact::Code(text(json, "/pinned").to_owned())),
            ("Tag", Fact::Text(tag)),
            ("Source", Fact::Text(source)),
            ("Builder", Fact::Text(text(json, "/builderId").to_owned())),
            (
                "SBOM components",
                Fact::Text(
                    json["sbomComponents"]
                        .as_u64()
                        .map(|n| n.to_string())
                        .unwrap_or_default(),
                ),
            ),
        ],
    );
    let referrers = json["referrers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let _ = writeln!(
        out,
        "\n| {} | Digest | Predicate type |\n|---|---|---|",
        if again { "Found" } else { "Attached" }
    );
    for r in referrers.iter().take(MAX_TABLE_ROWS) {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} |",
            cell(text(r, "/kind")),
            code(text(r, "/digest")),
            cell(text(r, "/predicateType"))
        );
    }
    out
}

/// A tag outcome (`{"result": "created"}` or a bare word) as one word.
fn outcome_word(value: &serde_json::Value) -> String {
    value
        .as_str()
        .or_else(|| value["result"].as_str())
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// `promote` as Markdown: the verdict, from, to, digest, what was copied (or why nothing was).
pub fn promote_markdown(json: &serde_json::Value) -> String {
    let mut out = String::new();
    let verified = json["verified"].as_bool() == Some(true);
    let dry = json["dryRun"].as_bool() == Some(true);
    let heading = match (verified, dry) {
        (false, _) => "❌ custody promote: refused, nothing copied",
        (true, true) => "✅ custody promote: verified (dry run, nothing copied)",
        (true, false) => "✅ custody promote: promoted",
    };
    let _ = writeln!(out, "### {heading}\n");
    let copy = &json["copy"];
    let count = |key: &str| {
        copy[key]
            .as_array()
            .map(|a| a.len().to_string())
            .unwrap_or_default()
    };
    let referrers = copy["referrers"]
        .as_u64()
        .map(|n| n.to_string())
        .unwrap_or_default();
    facts(
        &mut out,
        &[
            ("From", Fact::Code(text(json, "/source").to_owned())),
            ("To", Fact::Code(text(json, "/destination").to_owned())),
            ("Digest", Fact::Code(text(json, "/digest").to_owned())),
            ("Pinned", Fact::Code(text(json, "/pinned").to_owned())),
            (
                "Verify",
                Fact::Text(if verified { "verified" } else { "refused" }.to_owned()),
            ),
            (
                "Policy",
                Fact::Text(text(json, "/verification/policy/source").to_owned()),
            ),
            ("Manifests copied", Fact::Text(count("manifests"))),
            ("Referrers copied", Fact::Text(referrers)),
            (
                "Tag",
                Fact::Text(
                    copy.get("tagOutcome")
                        .filter(|t| !t.is_null())
                        .map(outcome_word)
                        .unwrap_or_default(),
                ),
            ),
            (
                "Promotion attestation",
                Fact::Code(text(json, "/promotionAttestation").to_owned()),
            ),
        ],
    );
    out
}

/// `scan` as Markdown: the outcome against `--fail-on`, and the findings as a table.
pub fn scan_markdown(json: &serde_json::Value) -> String {
    let mut out = String::new();
    let findings = json["findings"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let failing = json["failing"].as_u64().unwrap_or(0);
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    if failing > 0 {
        let _ = writeln!(
            out,
            "### ❌ custody scan: {failing} finding{} at or above {}\n",
            plural(failing as usize),
            text(json, "/failOn")
        );
    } else {
        let _ = writeln!(
            out,
            "### ✅ custody scan: {} finding{}\n",
            findings.len(),
            plural(findings.len())
        );
    }
    facts(
        &mut out,
        &[
            ("Scanned packages", Fact::Text(json["scanned"].to_string())),
            (
                "Database",
                Fact::Code(text(json, "/database/contentDigest").to_owned()),
            ),
            ("Fail on", Fact::Text(text(json, "/failOn").to_owned())),
        ],
    );
    if findings.is_empty() {
        return out;
    }
    out.push_str("\n| Id | Package | Version | Severity | Fixed in |\n|---|---|---|---|---|\n");
    for f in findings.iter().take(MAX_TABLE_ROWS) {
        let fixed: Vec<&str> = f["fixed"]
            .as_array()
            .map(|v| v.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(text(f, "/id")),
            cell(text(f, "/package")),
            cell(text(f, "/version")),
            cell(text(f, "/severity/rating")),
            cell(&fixed.join(", "))
        );
    }
    if findings.len() > MAX_TABLE_ROWS {
        let _ = writeln!(
            out,
            "\n{} more findings are in `custody scan --output json`.",
            findings.len() - MAX_TABLE_ROWS
        );
    }
    out
}

/// What `verify` does besides its report: the JUnit file, and the failed checks on stderr when
/// stdout carries JSON or Markdown. A JUnit file that cannot be written fails the run (exit 2).
pub fn verify_extras(
    cli: &Cli,
    printer: &Printer,
    junit: Option<&Path>,
    result: &Result<VerifyReport, Failure>,
) -> Result<(), Failure> {
    if let Ok(report) = result
        && !report.verified
        && cli.output_choice != OutputChoice::Human
    {
        printer.stderr(&failed_checks(report));
    }
    let Some(path) = junit else { return Ok(()) };
    let xml = match result {
        Ok(report) => junit_report(report),
        Err(failure) => junit_error(&failure.error),
    };
    std::fs::write(path, xml)
        .with_context(|| format!("cannot write the junit report {}", path.display()))
        .map_err(|error| Failure {
            error,
            status: ExitStatus::Error,
            hint: None,
        })
}

/// Where a check was made: the artifact, a platform of an index, or one of their referrers.
struct Located<'a> {
    place: String,
    check: &'a Check,
}

fn located(report: &VerifyReport) -> Vec<Located<'_>> {
    fn walk<'a>(m: &'a ManifestReport, prefix: &str, out: &mut Vec<Located<'a>>) {
        let here = match &m.platform {
            Some(p) => format!("{prefix}{p}"),
            None if prefix.is_empty() => "artifact".to_owned(),
            None => match &m.digest {
                Some(d) => format!("{prefix}{}", d.short()),
                None => format!("{prefix}unresolved"),
            },
        };
        for c in &m.checks {
            out.push(Located {
                place: here.clone(),
                check: c,
            });
        }
        for r in &m.referrers {
            let what = r.predicate_type.as_deref().unwrap_or("signature");
            for c in &r.checks {
                out.push(Located {
                    place: format!("{here} › {} {what}", r.manifest.short()),
                    check: c,
                });
            }
        }
        for p in &m.platforms {
            walk(p, &format!("{here} › "), out);
        }
    }
    let mut out = Vec::new();
    walk(&report.artifact, "", &mut out);
    out
}

/// The failed checks as plain lines, for stderr.
pub fn failed_checks(report: &VerifyReport) -> String {
    let mut out = format!("refused: {}\n", report.pinned);
    for l in located(report)
        .iter()
        .filter(|l| l.check.status == Status::Fail)
    {
        let c = l.check;
        let _ = writeln!(out, "  ✗ {} ({})", c.name, l.place);
        if let Some(e) = &c.expected {
            let _ = writeln!(out, "      expected: {e}");
        }
        if let Some(f) = &c.found {
            let _ = writeln!(out, "      found:    {f}");
        }
        if let Some(h) = &c.hint {
            let _ = writeln!(out, "      hint:     {h}");
        }
    }
    out
}

/// Text made safe for a Markdown table cell: one line, bounded, every character Markdown or
/// HTML would interpret escaped (values come from registries and signed statements).
fn cell(text: &str) -> String {
    let mut out = String::new();
    for (i, ch) in text.chars().enumerate() {
        if i == MAX_CELL_CHARS {
            out.push('…');
            break;
        }
        match ch {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '!' | '~' | '@' => {
                out.push('\\');
                out.push(ch);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text for a code span: one line, no backticks (escapes do not work inside code spans).
fn code(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '`' && !c.is_control())
        .take(MAX_CELL_CHARS)
        .collect()
}

/// A fenced block that its content cannot close: the fence is longer than any backtick run.
fn fenced(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}text\n{}\n{fence}\n", text.trim_end())
}

fn status_mark(s: Status) -> &'static str {
    match s {
        Status::Pass => "✅",
        Status::Fail => "❌",
        Status::Skip => "➖",
    }
}

/// The verify report as GitHub-flavoured Markdown: verdict, the checks as a table (failed
/// first), and the referrer tree as the human report draws it.
pub fn markdown(report: &VerifyReport) -> String {
    let mut out = String::new();
    let failed = report.failures().len();
    if report.verified {
        let _ = writeln!(out, "### ✅ custody verify: verified\n");
    } else {
        let _ = writeln!(
            out,
            "### ❌ custody verify: refused ({} failed check{})\n",
            failed.max(1),
            if failed == 1 { "" } else { "s" }
        );
    }
    let _ = writeln!(out, "- artifact: `{}`", code(&report.pinned));
    let _ = writeln!(
        out,
        "- policy: {}{}\n",
        cell(&report.policy.source),
        report
            .scope
            .as_deref()
            .map(|s| format!(", scope {}", cell(s)))
            .unwrap_or_default()
    );
    let mut rows = located(report);
    // Failed checks first, so a long table never hides them.
    rows.sort_by_key(|l| l.check.status != Status::Fail);
    out.push_str("| | Check | Where | Expected | Found | Hint |\n|---|---|---|---|---|---|\n");
    for l in rows.iter().take(MAX_TABLE_ROWS) {
        let c = l.check;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            status_mark(c.status),
            cell(&c.name),
            cell(&l.place),
            cell(c.expected.as_deref().unwrap_or("")),
            cell(c.found.as_deref().unwrap_or("")),
            cell(c.hint.as_deref().unwrap_or(""))
        );
    }
    if rows.len() > MAX_TABLE_ROWS {
        let _ = writeln!(
            out,
            "\n{} more checks are in `custody verify --output json`.",
            rows.len() - MAX_TABLE_ROWS
        );
    }
    let _ = writeln!(
        out,
        "\n<details><summary>Referrer tree</summary>\n\n{}\n</details>",
        fenced(&custody::decisions::verify::render::human(report))
    );
    out
}

/// Text made safe for XML 1.0 character data and attribute values.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(ch),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The checks as a JUnit XML report: one test case per check, failed checks as failures with
/// what was expected, found and the hint; skipped checks as skipped.
pub fn junit_report(report: &VerifyReport) -> String {
    let rows = located(report);
    let failures = rows
        .iter()
        .filter(|l| l.check.status == Status::Fail)
        .count();
    let skipped = rows
        .iter()
        .filter(|l| l.check.status == Status::Skip)
        .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"custody verify\" tests=\"{}\" failures=\"{failures}\">",
        rows.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" errors=\"0\">",
        xml(&report.pinned),
        rows.len()
    );
    for l in &rows {
        let c = l.check;
        let open = format!(
            "    <testcase classname=\"{}\" name=\"{}\"",
            xml(&l.place),
            xml(&c.name)
        );
        match c.status {
            Status::Pass => {
                let _ = writeln!(out, "{open}/>");
            }
            Status::Skip => {
                let _ = writeln!(
                    out,
                    "{open}>\n      <skipped message=\"{}\"/>\n    </testcase>",
                    xml(c.found.as_deref().unwrap_or("skipped"))
                );
            }
            Status::Fail => {
                let mut detail = String::new();
                for (label, value) in [
                    ("expected", &c.expected),
                    ("found", &c.found),
                    ("hint", &c.hint),
                ] {
                    if let Some(v) = value {
                        let _ = writeln!(detail, "{label}: {v}");
                    }
                }
                let _ = writeln!(
                    out,
                    "{open}>\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                    xml(&format!("{} failed", c.name)),
                    xml(&detail)
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// A JUnit report for a verification that could not run (exit 2): one test case in error.
pub fn junit_error(error: &anyhow::Error) -> String {
    let causes: Vec<String> = error.chain().map(|c| c.to_string()).collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"custody verify\" tests=\"1\" errors=\"1\">\n  <testsuite name=\"custody verify\" tests=\"1\" failures=\"0\" errors=\"1\">\n    <testcase classname=\"artifact\" name=\"verify\">\n      <error message=\"{}\">{}</error>\n    </testcase>\n  </testsuite>\n</testsuites>\n",
        xml(&error.to_string()),
        xml(&causes.join("\ncaused by: "))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_cannot_break_the_table_or_inject_html() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(
            cell("<img src=x onerror=alert(1)>"),
            "&lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(cell("[x](javascript:1)"), "\\[x\\](javascript:1)");
        assert_eq!(cell("\u{1b}[31mred"), "\\[31mred");
        let long = "x".repeat(MAX_CELL_CHARS + 50);
        assert_eq!(cell(&long).chars().count(), MAX_CELL_CHARS + 1);
    }

    #[test]
    fn scan_findings_are_escaped_and_capped() {
        let hostile = serde_json::json!({
            "id": "X-1", "package": "a|b<script>", "version": "1\n2",
            "severity": {"rating": "high"}, "fixed": ["2.0"],
        });
        let json = serde_json::json!({
            "scanned": 1, "failing": 0,
            "findings": vec![hostile; MAX_TABLE_ROWS + 2],
        });
        let out = scan_markdown(&json);
        assert!(
            out.contains("\n| X-1 | a\\|b&lt;script&gt; | 1 2 | high | 2.0 |\n"),
            "{out}"
        );
        assert_eq!(out.matches("\n| X-1 |").count(), MAX_TABLE_ROWS);
        assert!(out.contains("\n2 more findings are in `custody scan --output json`."));
    }

    #[test]
    fn a_fence_is_longer_than_any_backtick_run_inside() {
        let block = fenced("a ``` b ```` c");
        assert!(block.starts_with("`````text\n"), "{block}");
        assert!(block.ends_with("\n`````\n"), "{block}");
        assert!(fenced("plain").starts_with("```text\n"));
    }

    #[test]
    fn xml_text_is_escaped_and_control_characters_dropped() {
        assert_eq!(
            xml("a<b>&\"'\u{0}\u{1b}c\n"),
            "a&lt;b&gt;&amp;&quot;&apos;c\n"
        );
    }

    #[test]
    fn a_junit_error_names_the_causes() {
        let error = anyhow::anyhow!("connection refused").context("cannot resolve r:1");
        let out = junit_error(&error);
        assert!(
            out.contains("<error message=\"cannot resolve r:1\">"),
            "{out}"
        );
        assert!(out.contains("caused by: connection refused"), "{out}");
    }
}
