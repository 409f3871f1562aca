//! The GitHub Actions and GitLab CI/CD components: parsed by an independent YAML parser, every
//! input mapped to a real CLI flag (or a documented positional argument), and the workflows
//! that use them linted by actionlint.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{self, tool};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every YAML document in a file, as JSON, parsed by PyYAML (not by custody's own code).
fn yaml_documents(path: &Path) -> Vec<Value> {
    support::yaml_documents(path)
}

/// The long flags `custody <command> --help` documents.
fn flags_of(command: &str) -> BTreeSet<String> {
    let help = support::ok(&[command, "--help"]);
    help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_owned()
        })
        .collect()
}

/// Inputs that are not flags: positional arguments of the command, and the installer's own.
fn non_flag_inputs(command: &str) -> &'static [&'static str] {
    match command {
        "release" => &["files"],
        "verify" => &["reference"],
        "promote" => &["source", "destination"],
        _ => &[],
    }
}

/// Inputs that are flags of `custody trust update`, run before the command: (input, flag).
const TUF_INPUTS: [(&str, &str); 2] = [("tuf-mirror", "--mirror"), ("tuf-root", "--root")];

/// Whether `input` is a `trust update` input that `script` passes as its flag, and that flag
/// is a real one of `custody trust update`.
fn passes_tuf_input(input: &str, script: &str) -> bool {
    let Some((_, flag)) = TUF_INPUTS.iter().find(|(name, _)| *name == input) else {
        return false;
    };
    let help = support::ok(&["trust", "update", "--help"]);
    assert!(help.contains(flag), "`custody trust update` has {flag}");
    assert!(
        script.contains("trust=(trust update)") && script.contains(&format!("+=({flag} ")),
        "input {input} reaches `custody trust update` as {flag}"
    );
    true
}

/// Component inputs that choose the job, not custody's flags.
const INSTALLER_INPUTS: [&str; 3] = ["stage", "custody-version", "custody-image"];

/// Action inputs that are registry credentials (passed as CUSTODY_REGISTRY* for that registry).
const LOGIN_INPUTS: [&str; 3] = ["registry", "registry-username", "registry-password"];

#[test]
fn github_actions_map_every_input_to_a_real_flag() {
    for command in ["release", "verify", "promote"] {
        let path = root().join("actions").join(command).join("action.yml");
        let doc = yaml_documents(&path).remove(0);
        assert_eq!(doc["runs"]["using"], "composite", "{command}");
        let steps = doc["runs"]["steps"].as_array().expect("steps");
        let scripts: String = steps
            .iter()
            .filter_map(|s| s["run"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let env_block: String = steps
            .iter()
            .map(|s| s["env"].to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            scripts.contains("install.sh"),
            "{command}: installs custody pinned to the action's version"
        );
        let flags = flags_of(command);
        let inputs = doc["inputs"].as_object().expect("inputs");
        assert!(!inputs.is_empty());
        for trust in ["trusted-root", "tuf-mirror", "tuf-root"] {
            assert!(inputs.contains_key(trust), "{command}: has input {trust}");
        }
        for (name, spec) in inputs {
            assert!(
                spec["description"].as_str().is_some_and(|d| d.len() > 10),
                "{command}: input {name} is documented"
            );
            let env_name = format!("INPUT_{}", name.to_uppercase().replace('-', "_"));
            assert!(
                env_block.contains(&format!("inputs.{name} }}")) && scripts.contains(&env_name),
                "{command}: input {name} reaches the script through {env_name}"
            );
            if non_flag_inputs(command).contains(&name.as_str())
                || LOGIN_INPUTS.contains(&name.as_str())
                || passes_tuf_input(name, &scripts)
            {
                continue;
            }
            let flag = format!("--{name}");
            assert!(
                flags.contains(&flag),
                "{command}: input {name} has no flag {flag} in `custody {command} --help` (flags: {flags:?})"
            );
            assert!(
                scripts.contains(&flag),
                "{command}: the script passes input {name} as {flag}"
            );
        }
        for (name, spec) in doc["outputs"].as_object().expect("outputs") {
            assert!(
                spec["value"]
                    .as_str()
                    .is_some_and(|v| v.contains("steps.") && v.contains(name)),
                "{command}: output {name} comes from a step"
            );
        }
        // Credentials default to the job's own, for ghcr.io only, and reach custody scoped to it.
        assert_eq!(inputs["registry"]["default"], "ghcr.io", "{command}");
        assert_eq!(
            inputs["registry-username"]["default"], "${{ github.actor }}",
            "{command}"
        );
        assert_eq!(
            inputs["registry-password"]["default"], "${{ github.token }}",
            "{command}"
        );
        assert!(
            scripts.contains("custody_registry_env \"$INPUT_REGISTRY\" \"$INPUT_REGISTRY_USERNAME\" \"$INPUT_REGISTRY_PASSWORD\""),
            "{command}: credentials go to custody for that registry only"
        );
        assert!(
            scripts.contains("custody_lower_reference"),
            "{command}: references get a lower-case repository"
        );
        assert!(
            scripts.contains("GITHUB_STEP_SUMMARY"),
            "{command}: writes the job summary"
        );
        let description = doc["description"].as_str().unwrap_or_default();
        assert!(
            description.contains("permissions"),
            "{command}: the description says which permissions the job needs"
        );
    }
}

#[test]
fn gitlab_components_map_every_input_to_a_real_flag() {
    for command in ["release", "verify", "promote"] {
        let path = root().join("templates").join(format!("{command}.yml"));
        let docs = yaml_documents(&path);
        assert_eq!(
            docs.len(),
            2,
            "{command}: `spec:` header, `---`, then the jobs"
        );
        let inputs = docs[0]["spec"]["inputs"].as_object().expect("spec.inputs");
        for trust in ["trusted-root", "tuf-mirror", "tuf-root"] {
            assert!(inputs.contains_key(trust), "{command}: has input {trust}");
        }
        let jobs = docs[1].as_object().expect("jobs");
        assert_eq!(jobs.len(), 1, "{command}: one job");
        let (_, job) = jobs.iter().next().unwrap();
        let script = job["script"]
            .as_array()
            .expect("script")
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n");
        let variables = job["variables"].to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        // Runs in custody's image, pinned to a release; only in tag pipelines; nothing is
        // installed into the work tree; inputs are never word-split.
        let version = inputs["custody-version"]["default"].as_str().unwrap();
        assert!(
            semver::Version::parse(version.trim_start_matches('v')).is_ok(),
            "{command}: custody-version defaults to a release, not {version}"
        );
        assert_eq!(
            job["image"], "$[[ inputs.custody-image ]]:$[[ inputs.custody-version ]]-debian",
            "{command}"
        );
        assert_eq!(
            job["rules"],
            serde_json::json!([{"if": "$CI_COMMIT_TAG"}]),
            "{command}"
        );
        assert!(
            !text.contains("cargo install") && !text.contains("$CI_PROJECT_DIR"),
            "{command}: nothing is built or installed into the work tree"
        );
        assert!(
            !text.contains("$(echo") && !text.contains("for f in $"),
            "{command}: no word splitting"
        );
        if command != "verify" {
            assert_eq!(
                job["id_tokens"]["SIGSTORE_ID_TOKEN"]["aud"], "sigstore",
                "{command}: asks GitLab for a Sigstore identity token"
            );
        }
        let flags = flags_of(command);
        for (name, spec) in inputs {
            assert!(
                spec["description"].as_str().is_some_and(|d| d.len() > 10),
                "{command}: input {name} is documented"
            );
            assert!(
                text.contains(&format!("$[[ inputs.{name} ]]")),
                "{command}: input {name} is used"
            );
            if INSTALLER_INPUTS.contains(&name.as_str())
                || non_flag_inputs(command).contains(&name.as_str())
                || passes_tuf_input(name, &script)
            {
                continue;
            }
            let flag = format!("--{name}");
            assert!(
                flags.contains(&flag),
                "{command}: input {name} has no flag {flag} in `custody {command} --help`"
            );
            assert!(
                script.contains(&flag) && variables.contains(&format!("inputs.{name} ]]")),
                "{command}: the script passes input {name} as {flag}"
            );
        }
    }
}

/// The GitHub Actions workflow in the README, pointed at this checkout's actions, passes
/// actionlint, which also checks the inputs given against each action's metadata.
#[test]
fn readme_workflow_passes_actionlint() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let workflows = crate::readme::code_blocks(&readme, "yaml")
        .into_iter()
        .filter(|b| b.contains("runs-on:"))
        .collect::<Vec<_>>();
    assert!(
        !workflows.is_empty(),
        "the README shows a GitHub Actions workflow"
    );
    let dir = support::tempdir();
    let project = dir.path();
    // actionlint finds the project by its git repository.
    assert!(
        Command::new("git")
            .args(["init", "-q"])
            .current_dir(project)
            .status()
            .unwrap()
            .success()
    );
    std::fs::create_dir_all(project.join(".github/workflows")).unwrap();
    for action in ["release", "verify", "promote"] {
        std::fs::create_dir_all(project.join("actions").join(action)).unwrap();
        std::fs::copy(
            root().join("actions").join(action).join("action.yml"),
            project.join("actions").join(action).join("action.yml"),
        )
        .unwrap();
    }
    for (i, workflow) in workflows.iter().enumerate() {
        let local = workflow
            .lines()
            .map(|l| match l.find("uses: ") {
                Some(at) if l.contains("/actions/") => {
                    let action = l.rsplit("/actions/").next().unwrap();
                    let action = action.split('@').next().unwrap();
                    format!("{}uses: ./actions/{action}", &l[..at])
                }
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(
            project.join(format!(".github/workflows/readme-{i}.yml")),
            local,
        )
        .unwrap();
    }
    let out = Command::new(tool("actionlint"))
        .current_dir(project)
        .env("HOME", project)
        .output()
        .expect("actionlint runs");
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // actionlint must have looked at the workflows: a broken one is caught.
    std::fs::write(
        project.join(".github/workflows/broken.yml"),
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: ./actions/release\n        with:\n          no-such-input: x\n",
    )
    .unwrap();
    let out = Command::new(tool("actionlint"))
        .current_dir(project)
        .env("HOME", project)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "actionlint checks local action inputs"
    );
}

/// custody's own release pipeline passes actionlint, and it builds what the actions and the
/// container image expect: every release target, archives named as install.sh looks them up,
/// SHA256SUMS, keyless signing with custody, and the checksums the actions pin.
#[test]
fn release_workflow_passes_actionlint_and_builds_what_the_actions_install() {
    let workflow = root().join(".github/workflows/release.yml");
    let dir = support::tempdir();
    let project = dir.path();
    assert!(
        Command::new("git")
            .args(["init", "-q"])
            .current_dir(project)
            .status()
            .unwrap()
            .success()
    );
    std::fs::create_dir_all(project.join(".github/workflows")).unwrap();
    std::fs::copy(&workflow, project.join(".github/workflows/release.yml")).unwrap();
    let out = Command::new(tool("actionlint"))
        .current_dir(project)
        .env("HOME", project)
        .output()
        .expect("actionlint runs");
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let doc = yaml_documents(&workflow).remove(0);
    let targets: BTreeSet<String> = doc["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_array()
        .expect("a build matrix")
        .iter()
        .map(|e| e["target"].as_str().unwrap().to_owned())
        .collect();
    let install = std::fs::read_to_string(root().join("actions/install.sh")).unwrap();
    for target in &targets {
        assert!(
            install.contains(&format!("target={target}")),
            "install.sh knows the release target {target}"
        );
    }
    for needed in [
        "x86_64-unknown-linux-musl",
        "aarch64-unknown-linux-musl",
        "x86_64-apple-darwin",
        "aarch64-apple-darwin",
        "x86_64-pc-windows-msvc",
    ] {
        assert!(targets.contains(needed), "release builds {needed}");
    }
    let text = std::fs::read_to_string(&workflow).unwrap();
    for step in [
        "sha256sum custody-* > SHA256SUMS",
        "custody --output json release dist/custody-* dist/SHA256SUMS",
        "custody --output json release --image",
        "gh attestation verify",
        "actions/install.sh --pin",
        "--file Containerfile",
    ] {
        assert!(text.contains(step), "the release workflow runs `{step}`");
    }
    let release = &doc["jobs"]["release"]["permissions"];
    assert_eq!(release["id-token"], "write", "keyless signing");
    assert_eq!(release["packages"], "write", "pushes to ghcr.io");
    assert_eq!(doc["permissions"]["contents"], "read", "least privilege");
}

/// An artifact nobody signed, in an OCI layout, and a key that did not sign it.
fn unsigned_in_layout(dir: &Path) -> (String, String) {
    let (_, public) = crate::release::keypair(dir);
    let file = dir.join("unsigned.bin");
    std::fs::write(&file, b"never signed\n").unwrap();
    let reference = format!("oci:{}:v1", dir.join("layout").display());
    support::ok(&["push", file.to_str().unwrap(), "--to", &reference]);
    (reference, public)
}

#[test]
fn a_refusal_in_json_mode_still_prints_its_failed_checks_on_stderr() {
    let dir = support::tempdir();
    let (reference, public) = unsigned_in_layout(dir.path());
    let out = support::run(&["--output", "json", "verify", &reference, "--key", &public]);
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is the JSON report");
    assert_eq!(report["verified"], false);
    let stderr = support::stderr(&out);
    assert!(stderr.starts_with("refused: oci:"), "{stderr}");
    let failed = report["artifact"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "fail")
        .expect("a failed check");
    assert!(
        stderr.contains(&format!(
            "  ✗ {} (artifact)",
            failed["name"].as_str().unwrap()
        )),
        "{stderr}"
    );
    // Human mode already shows the failed checks on stdout; stderr stays quiet.
    let out = support::run(&["verify", &reference, "--key", &public]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!support::stderr(&out).contains("refused: "));
}

#[test]
fn verify_writes_markdown_and_junit_reports_of_a_refusal() {
    let dir = support::tempdir();
    let (reference, public) = unsigned_in_layout(dir.path());
    let junit = dir.path().join("report.xml");
    let out = support::run(&[
        "--output",
        "markdown",
        "verify",
        &reference,
        "--key",
        &public,
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let markdown = support::stdout(&out);
    assert!(
        markdown.starts_with("### ❌ custody verify: refused ("),
        "{markdown}"
    );
    assert!(markdown.contains("\n- artifact: `oci:"), "{markdown}");
    assert!(
        markdown.contains("| | Check | Where | Expected | Found | Hint |"),
        "{markdown}"
    );
    assert!(markdown.contains("\n| ❌ | "), "{markdown}");
    assert!(
        markdown.contains("<details><summary>Referrer tree</summary>"),
        "{markdown}"
    );
    assert!(
        support::stderr(&out).starts_with("refused: "),
        "the failed checks also reach the log"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testsuites name=\"custody verify\""), "{xml}");
    assert!(xml.contains("<failure message=\""), "{xml}");
    assert!(!xml.contains(" failures=\"0\""), "{xml}");
    // The JUnit file is well-formed XML (read by Python's parser, not custody's code).
    assert_ne!(support::junit_failures(&junit), 0);
}

#[test]
fn verify_writes_a_markdown_verdict_of_a_verified_release() {
    let dir = support::tempdir();
    let repo = crate::release::work_tree(dir.path());
    let (key, public) = crate::release::keypair(dir.path());
    let to = format!("oci:{}:v1", dir.path().join("layout").display());
    let o = crate::release::release_in(&repo, &["dist/app.bin", "--to", &to, "--key", &key]);
    assert!(o.status.success(), "{}", support::stderr(&o));
    let out = support::run(&["--output", "markdown", "verify", &to, "--key", &public]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let markdown = support::stdout(&out);
    assert!(
        markdown.starts_with("### ✅ custody verify: verified\n"),
        "{markdown}"
    );
    assert!(!markdown.contains("| ❌ |"), "{markdown}");
    assert!(
        !support::stderr(&out).contains("refused"),
        "{}",
        support::stderr(&out)
    );
}

#[test]
fn markdown_output_is_refused_where_a_command_has_none() {
    let out = support::run(&["--output", "markdown", "digest", "Cargo.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out).contains(
            "--output markdown is available for verify, tree, release, promote and scan only"
        ),
        "{}",
        support::stderr(&out)
    );
}

/// `custody --output markdown release ARGS` in `repo`, as `release::release_in` runs it.
fn release_markdown_in(repo: &Path, args: &[&str]) -> std::process::Output {
    support::custody()
        .args(["--output", "markdown", "release"])
        .args(args)
        .current_dir(repo)
        .env("COSIGN_PASSWORD", "release-pw")
        .env("HOME", repo.parent().unwrap())
        .env("XDG_CONFIG_HOME", repo.parent().unwrap().join(".config"))
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .output()
        .unwrap()
}

#[test]
fn release_tree_and_promote_write_markdown_reports() {
    let dir = support::tempdir();
    let repo = crate::release::work_tree(dir.path());
    let (key, public) = crate::release::keypair(dir.path());
    let to = format!("oci:{}:v1", dir.path().join("layout").display());
    let out = release_markdown_in(&repo, &["dist/app.bin", "--to", &to, "--key", &key]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let markdown = support::stdout(&out);
    assert!(
        markdown.starts_with("### ✅ custody release: released\n"),
        "{markdown}"
    );
    assert!(markdown.contains("\n| Pinned | `oci:"), "{markdown}");
    assert!(markdown.contains("@sha256:"), "{markdown}");
    assert!(
        markdown.contains("| Attached | Digest | Predicate type |"),
        "{markdown}"
    );
    for kind in ["signature", "provenance", "sbom"] {
        assert!(
            markdown.contains(&format!("\n| {kind} | `sha256:")),
            "{kind}: {markdown}"
        );
    }

    let out = support::run(&["--output", "markdown", "tree", &to]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let markdown = support::stdout(&out);
    assert!(markdown.starts_with("### custody tree\n"), "{markdown}");
    assert!(markdown.contains("\n| Artifact | `oci:"), "{markdown}");
    assert!(markdown.contains("\n| Referrers | 3 |"), "{markdown}");
    assert!(
        markdown.contains("\n```text\n"),
        "the tree is a code block: {markdown}"
    );
    // With a trusted key, the heading carries the verdict.
    let out = support::run(&["--output", "markdown", "tree", &to, "--key", &public]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let markdown = support::stdout(&out);
    assert!(
        markdown.starts_with("### ✅ custody tree: verified\n"),
        "{markdown}"
    );
    assert!(markdown.contains("\n| Policy | flags |"), "{markdown}");

    let digest = support::stdout(&support::run(&["resolve", &to]))
        .trim()
        .to_owned();
    let dst = format!("oci:{}:v1", dir.path().join("production").display());
    let out = support::run(&[
        "--output",
        "markdown",
        "promote",
        &to,
        &dst,
        "--trust-key",
        &public,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let markdown = support::stdout(&out);
    assert!(
        markdown.starts_with("### ✅ custody promote: promoted\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains(&format!("\n| To | `{dst}` |")),
        "{markdown}"
    );
    assert!(markdown.contains("\n| Verify | verified |"), "{markdown}");
    assert!(
        markdown.contains("\n| Referrers copied | 3 |"),
        "{markdown}"
    );
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert!(
        markdown.contains(&format!("\n| Digest | `{digest}` |")),
        "{markdown}"
    );

    // A refusal prints its Markdown verdict and still exits 1.
    let stranger_dir = dir.path().join("stranger");
    std::fs::create_dir(&stranger_dir).unwrap();
    let (_, stranger) = crate::release::keypair(&stranger_dir);
    let never = format!("oci:{}:never", dir.path().join("production").display());
    let out = support::run(&[
        "--output",
        "markdown",
        "promote",
        &to,
        &never,
        "--trust-key",
        &stranger,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    let markdown = support::stdout(&out);
    assert!(
        markdown.starts_with("### ❌ custody promote: refused, nothing copied\n"),
        "{markdown}"
    );
    assert!(markdown.contains("\n| Verify | refused |"), "{markdown}");
}

#[test]
fn scan_writes_a_markdown_table_of_findings_and_a_refusal_exits_1() {
    let fixture = root().join("tests/fixtures/vuln/Cargo.lock");
    let db = root().join("../shared/testdata/osv/crates.io");
    let args = |fail_on: &str| {
        support::run(&[
            "--output",
            "markdown",
            "scan",
            fixture.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--fail-on",
            fail_on,
        ])
    };
    let out = args("critical");
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    let markdown = support::stdout(&out);
    assert!(
        markdown.starts_with("### ❌ custody scan: 3 findings at or above critical\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains("\n| Id | Package | Version | Severity | Fixed in |\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains("\n| RUSTSEC-2022-0022 | hyper | 0.14.10 | unknown | 0.14.12 |\n"),
        "{markdown}"
    );
    assert!(markdown.contains("\n| Fail on | critical |"), "{markdown}");
}

#[test]
fn tree_exits_1_when_its_policy_refuses_as_verify_does() {
    let dir = support::tempdir();
    let repo = crate::release::work_tree(dir.path());
    let (key, _) = crate::release::keypair(dir.path());
    let stranger = dir.path().join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    let (_, untrusted) = crate::release::keypair(&stranger);
    let to = format!("oci:{}:v1", dir.path().join("layout").display());
    let out = release_markdown_in(&repo, &["dist/app.bin", "--to", &to, "--key", &key]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));

    // Signed by a key the flags do not trust: the tree is printed, and the exit code is 1.
    let out = support::run(&["--output", "markdown", "tree", &to, "--key", &untrusted]);
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    let markdown = support::stdout(&out);
    assert!(
        markdown.starts_with("### ❌ custody tree: refused\n"),
        "{markdown}"
    );
    let out = support::run(&["--output", "json", "tree", &to, "--key", &untrusted]);
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["verification"]["verified"], false);
    // Without trust there is no verdict to refuse with.
    let out = support::run(&["tree", &to]);
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
}
