//! The GitLab components and the GitHub actions run by the local runners people use to try CI
//! (`scripts/install-ci-tools` installs both): gitlab-ci-local with its shell executor, and
//! nektos/act in host mode (no Docker), each against a local registry.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::release::keypair;
use crate::support::{self, HostileServer, Registry, Response, tool};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn custody_bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_custody"))
        .parent()
        .unwrap()
        .to_owned()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn git(repo: &Path, args: &[&str]) {
    let o = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .unwrap();
    assert!(o.status.success(), "git {args:?}: {}", text(&o));
}

/// A policy that trusts one public key for every repository.
fn key_policy(public: &str) -> String {
    format!(
        "version: 1\nscopes:\n  - name: all\n    repositories: [\"**\"]\n    signers:\n      - name: release-key\n        key: {public}\n    threshold: 1\n    key_transparency_log: skip\n"
    )
}

/// A project on "gitlab.example.com/acme/app" whose pipeline includes the three components of
/// this checkout by the commit SHA (gitlab-ci-local reads them from `templates/`).
fn gitlab_project(dir: &Path, pipeline: &str) -> PathBuf {
    let repo = dir.join("app");
    std::fs::create_dir_all(repo.join("templates")).unwrap();
    std::fs::create_dir_all(repo.join("dist")).unwrap();
    for name in ["release", "verify", "promote"] {
        std::fs::copy(
            repo_root().join("templates").join(format!("{name}.yml")),
            repo.join("templates").join(format!("{name}.yml")),
        )
        .unwrap();
    }
    std::fs::write(repo.join("dist/app file.tar"), b"the built artifact\n").unwrap();
    std::fs::write(repo.join("dist/notes.txt"), b"release notes\n").unwrap();
    std::fs::write(
        repo.join(".gitignore"),
        ".gitlab-ci-local/\ncustody-release.json\ncustody-verify.xml\n",
    )
    .unwrap();
    std::fs::write(repo.join(".gitlab-ci.yml"), pipeline).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(
        &repo,
        &[
            "remote",
            "add",
            "origin",
            "https://gitlab.example.com/acme/app.git",
        ],
    );
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "source"]);
    repo
}

/// gitlab-ci-local with every job on the host (the components name custody's image; custody is
/// on PATH instead), a private HOME, and the given extra arguments.
fn gitlab_ci_local(repo: &Path, args: &[&str]) -> Output {
    let home = repo.parent().unwrap().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut c = Command::new(tool("gitlab-ci-local"));
    c.current_dir(repo)
        .args(["--force-shell-executor", "--no-color"])
        .args(args)
        .env_clear()
        .env(
            "PATH",
            format!(
                "{}:{}",
                custody_bin_dir().display(),
                std::env::var("PATH").unwrap()
            ),
        )
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("CUSTODY_RETRY_BASE_MS", "20");
    c.output().expect("gitlab-ci-local runs")
}

fn components_pipeline(registry: &str, key: &str, public: &str, policy: &str) -> String {
    format!(
        r#"stages: [release, test, deploy]
include:
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/release@$CI_COMMIT_SHA
    inputs:
      files: |
        dist/app file.tar
        dist/notes.txt
      to: {registry}/acme/app:$CI_COMMIT_TAG
      key: {key}
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/verify@$CI_COMMIT_SHA
    inputs:
      reference: {registry}/acme/app:$CI_COMMIT_TAG
      key: {public}
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/promote@$CI_COMMIT_SHA
    inputs:
      source: {registry}/acme/app:$CI_COMMIT_TAG
      destination: {registry}/prod/app:$CI_COMMIT_TAG
      policy: {policy}
      key: {key}
"#
    )
}

/// The README's GitLab pipeline shape, run for real: release (two files, one with a space in
/// its path), verify (JUnit report) and promote, in a tag pipeline, against a local registry.
#[test]
fn gitlab_components_run_under_gitlab_ci_local() {
    // Its own registry (not yet the shared one): the CI files under test are given a bare registry
    // host and lay out `{registry}/acme/app` themselves.
    let registry = Registry::start();
    let dir = support::tempdir();
    let (key, public) = keypair(dir.path());
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, key_policy(&public)).unwrap();
    let repo = gitlab_project(
        dir.path(),
        &components_pipeline(&registry.host, &key, &public, policy.to_str().unwrap()),
    );

    // A branch pipeline runs none of them: rules ask for a tag.
    let listed = gitlab_ci_local(&repo, &["--list"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let list = String::from_utf8_lossy(&listed.stdout);
    for job in ["custody-release", "custody-verify", "custody-promote"] {
        assert!(
            !list.contains(job),
            "{job} listed in a branch pipeline:\n{list}"
        );
    }

    let out = gitlab_ci_local(
        &repo,
        &[
            "--variable",
            "CI_COMMIT_TAG=v1.0.0",
            "--variable",
            "COSIGN_PASSWORD=release-pw",
        ],
    );
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    for job in ["custody-release", "custody-verify", "custody-promote"] {
        assert!(log.contains(&format!("PASS  {job}")), "{job}:\n{log}");
    }

    // Both files were released, the one with a space as one argument.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("custody-release.json")).unwrap()).unwrap();
    assert_eq!(report["verified"], true, "{report}");
    let pinned = report["pinned"].as_str().unwrap();
    assert!(
        pinned.starts_with(&format!("{}/acme/app@sha256:", registry.host)),
        "{pinned}"
    );
    let pulled = dir.path().join("pulled");
    support::ok(&["pull", pinned, "-o", pulled.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(pulled.join("app file.tar")).unwrap(),
        b"the built artifact\n"
    );
    assert_eq!(
        std::fs::read(pulled.join("notes.txt")).unwrap(),
        b"release notes\n"
    );

    // The verify job's JUnit report: every check a test case, none failed.
    let junit = std::fs::read_to_string(repo.join("custody-verify.xml")).unwrap();
    assert!(
        junit.contains("<testsuites name=\"custody verify\""),
        "{junit}"
    );
    assert!(junit.contains(" failures=\"0\""), "{junit}");
    assert!(junit.contains("<testcase "), "{junit}");

    // Promoted: the production tag names the released digest.
    let digest = report["digest"].as_str().unwrap();
    let resolved = support::ok(&["resolve", &format!("{}/prod/app:v1.0.0", registry.host)]);
    assert_eq!(resolved.trim(), digest);
}

/// A verify job whose artifact is not signed by the trusted key fails, and its log names the
/// failed check; the JUnit report carries the failure.
#[test]
fn a_refused_verify_fails_the_gitlab_job_with_its_reason() {
    // Its own registry: the GitLab job is given a bare registry host, as CI_REGISTRY is.
    let registry = Registry::start();
    let dir = support::tempdir();
    let (_, public) = keypair(dir.path());
    let unsigned = dir.path().join("unsigned.bin");
    std::fs::write(&unsigned, b"never signed\n").unwrap();
    let reference = format!("{}/acme/unsigned:v1.0.0", registry.host);
    support::ok(&["push", unsigned.to_str().unwrap(), "--to", &reference]);
    let pipeline = format!(
        r#"include:
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/verify@$CI_COMMIT_SHA
    inputs:
      reference: {reference}
      key: {public}
"#
    );
    let repo = gitlab_project(dir.path(), &pipeline);
    let out = gitlab_ci_local(&repo, &["--variable", "CI_COMMIT_TAG=v1.0.0"]);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("FAIL  custody-verify"), "{log}");
    assert!(
        log.contains("REFUSED"),
        "the human report is in the log:\n{log}"
    );
    assert!(log.contains("✗ "), "a failed check is named:\n{log}");
    let junit = std::fs::read_to_string(repo.join("custody-verify.xml")).unwrap();
    assert!(junit.contains("<failure message="), "{junit}");
}

/// Every component's `spec: inputs` header parses as gitlab-ci-local (GitLab's rules) reads it:
/// defaults fill a minimal include, and an unknown input is refused.
#[test]
fn component_inputs_parse_under_gitlab_ci_local() {
    let dir = support::tempdir();
    let pipeline = r#"stages: [release, test, deploy]
include:
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/release@$CI_COMMIT_SHA
    inputs:
      files: dist/notes.txt
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/verify@$CI_COMMIT_SHA
    inputs:
      reference: registry.example.com/acme/app:v1
  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/promote@$CI_COMMIT_SHA
    inputs:
      source: registry.example.com/acme/app:v1
      destination: registry.example.com/prod/app:v1
      policy: policy.yaml
"#;
    let repo = gitlab_project(dir.path(), pipeline);
    let out = gitlab_ci_local(&repo, &["--preview"]);
    assert!(out.status.success(), "{}", text(&out));
    let preview = String::from_utf8_lossy(&out.stdout);
    assert!(
        preview.contains("name: ghcr.io/custody-dev/custody:v0.1.0-debian"),
        "{preview}"
    );
    assert!(
        !preview.contains("$[["),
        "every input interpolated:\n{preview}"
    );
    for job in ["custody-release:", "custody-verify:", "custody-promote:"] {
        assert!(preview.contains(job), "{job}\n{preview}");
    }

    // GitLab's input rules hold: a required input must be given, a boolean must be one.
    let header =
        "stages: [test, deploy]\ninclude:\n  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/";
    for (include, refused) in [
        (
            "verify@$CI_COMMIT_SHA\n    inputs:\n      policy: p.yaml\n",
            "`reference` input: required value has not been provided",
        ),
        (
            "promote@$CI_COMMIT_SHA\n    inputs:\n      source: r/a:1\n      destination: r/b:1\n      policy: p.yaml\n      attest-promotion: sometimes\n",
            "`attest-promotion` input: provided value is not a boolean",
        ),
    ] {
        let dir = support::tempdir();
        let repo = gitlab_project(dir.path(), &format!("{header}{include}"));
        let out = gitlab_ci_local(&repo, &["--preview"]);
        assert!(!out.status.success(), "{}", text(&out));
        assert!(text(&out).contains(refused), "{}", text(&out));
    }
}

// ---------------------------------------------------------------------------------------------
// act

/// A copy of this checkout's actions and sources with a release pinned in
/// actions/checksums.txt: the custody binary under test, served by a local release host.
struct PinnedActions {
    dir: PathBuf,
    _host: HostileServer,
    release_url: String,
}

fn pinned_actions(work: &Path) -> PinnedActions {
    let dir = work.join("custody");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = Command::new("cp")
        .arg("-a")
        .args(["actions", "src", "Cargo.toml", "Cargo.lock"].map(|p| repo_root().join(p)))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(copy.success());
    // The release archive, packed as the release workflow packs it.
    let target = "x86_64-unknown-linux-musl";
    let top = work.join("pack").join(format!("custody-{target}"));
    std::fs::create_dir_all(&top).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_custody"), top.join("custody")).unwrap();
    let archive = work.join(format!("custody-{target}.tar.gz"));
    let o = Command::new("tar")
        .arg("-C")
        .arg(work.join("pack"))
        .args(["-I", "gzip -1", "-cf"])
        .arg(&archive)
        .arg(format!("custody-{target}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let bytes = std::fs::read(&archive).unwrap();
    let sums = work.join("SHA256SUMS");
    let o = Command::new("sha256sum")
        .arg(format!("custody-{target}.tar.gz"))
        .current_dir(work)
        .output()
        .unwrap();
    std::fs::write(&sums, &o.stdout).unwrap();
    let o = Command::new(dir.join("actions/install.sh"))
        .args(["--pin", "v0.0.1"])
        .arg(&sums)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(dir.join("actions/checksums.txt"), &o.stdout).unwrap();
    let path = format!("/v0.0.1/custody-{target}.tar.gz");
    let host = HostileServer::start(move |req| {
        if req.path == path {
            Response::new(200).body(bytes.clone())
        } else {
            Response::new(404)
        }
    });
    let release_url = format!("http://{}", host.host);
    PinnedActions {
        dir,
        _host: host,
        release_url,
    }
}

/// A stand-in for actions/checkout: copies the project into the job's workspace (act's host
/// mode starts every job in an empty folder).
fn checkout_stub(work: &Path) -> PathBuf {
    let dir = work.join("checkout");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("action.yml"),
        "name: checkout\ndescription: copies CHECKOUT_SOURCE into the workspace\nruns:\n  using: composite\n  steps:\n    - shell: bash\n      run: cp -a \"$CHECKOUT_SOURCE/.\" \"$GITHUB_WORKSPACE/\"\n",
    )
    .unwrap();
    dir
}

/// The README's GitHub workflow, pointed at a local registry, signing with a key (act has no
/// OIDC), each job ending by copying its step summaries out for the test to read.
fn readme_workflow(registry: &str, key: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let workflow = crate::readme::code_blocks(&readme, "yaml")
        .into_iter()
        .find(|b| b.contains("runs-on:") && b.contains("actions/promote@"))
        .expect("the README shows the release, verify and promote workflow");
    let mut out = String::new();
    let mut signs = false;
    for line in workflow.lines() {
        let line = line.replace("ghcr.io/", &format!("{registry}/"));
        out.push_str(&line);
        out.push('\n');
        let step = line.trim_start();
        if step.starts_with("uses: custody-dev/custody/actions/") {
            signs = !step.contains("/verify@");
        } else if signs && step == "with:" {
            let indent = line.len() - step.len();
            out.push_str(&format!("{}key: {key}\n", " ".repeat(indent + 2)));
            signs = false;
        }
    }
    out
}

fn act(
    project: &Path,
    workflow: &Path,
    actions: &PinnedActions,
    stub: &Path,
    env: &[(&str, &str)],
) -> Output {
    let home = project.parent().unwrap().join("act-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join(".actrc"), "-P ubuntu-latest=-self-hosted\n").unwrap();
    let event = project.parent().unwrap().join("event.json");
    std::fs::write(&event, r#"{"ref": "refs/tags/v1.0.0"}"#).unwrap();
    let mut c = Command::new(tool("act"));
    c.current_dir(project)
        .args([
            "push",
            "-P",
            "ubuntu-latest=-self-hosted",
            "--action-offline-mode",
            "--no-cache-server",
        ])
        .arg("-W")
        .arg(workflow)
        .arg("-e")
        .arg(&event)
        .arg("--local-repository")
        .arg(format!("custody-dev/custody@v1={}", actions.dir.display()))
        .arg("--local-repository")
        .arg(format!("actions/checkout@v4={}", stub.display()))
        .args(["--env", &format!("CHECKOUT_SOURCE={}", project.display())])
        .args([
            "--env",
            &format!("CUSTODY_RELEASE_URL={}", actions.release_url),
        ])
        .args(["--env", "COSIGN_PASSWORD=release-pw"])
        // act sets neither, and custody's provenance records both (GitHub always sets them).
        .args([
            "--env",
            "GITHUB_WORKFLOW_REF=Acme-Corp/App/.github/workflows/release.yml@refs/tags/v1.0.0",
        ])
        .args(["--env", "RUNNER_ENVIRONMENT=self-hosted"])
        .args(["--env", "CUSTODY_RETRY_BASE_MS=20"]);
    for (k, v) in env {
        c.args(["--env", &format!("{k}={v}")]);
    }
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", &home);
    c.output().expect("act runs")
}

/// A project on github.com/Acme-Corp/App (mixed case: ghcr.io names must be lower case) with
/// `make dist` and the deploy policy the README's workflow uses.
fn github_project(dir: &Path, public: &str) -> PathBuf {
    let repo = dir.join("App");
    std::fs::create_dir_all(repo.join("deploy")).unwrap();
    std::fs::write(
        repo.join("Makefile"),
        "dist:\n\tmkdir -p dist && printf 'the built artifact\\n' > dist/app.tar\n.PHONY: dist\n",
    )
    .unwrap();
    std::fs::write(repo.join(".gitignore"), "dist/\n").unwrap();
    std::fs::write(repo.join("deploy/policy.yaml"), key_policy(public)).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(
        &repo,
        &[
            "remote",
            "add",
            "origin",
            "https://github.com/Acme-Corp/App.git",
        ],
    );
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "source"]);
    repo
}

/// The README's workflow (release, then verify, then promote) under act in host mode: the
/// actions install the pinned release from the local release host (once: later jobs reuse it),
/// log in nowhere they should not, and write outputs and job summaries.
#[test]
fn readme_workflow_runs_under_act() {
    // Its own registry: the workflow is given a bare registry host and lays out its repositories
    // itself.
    let registry = Registry::start();
    let dir = support::tempdir();
    let (key, public) = keypair(dir.path());
    let project = github_project(dir.path(), &public);
    let actions = pinned_actions(dir.path());
    let stub = checkout_stub(dir.path());
    let workflow = dir.path().join("readme.yml");
    std::fs::write(&workflow, readme_workflow(&registry.host, &key)).unwrap();

    let out = act(&project, &workflow, &actions, &stub, &[]);
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    for job in ["release", "deploy", "promote"] {
        assert!(
            log.lines()
                .any(|l| l.starts_with(&format!("[release/{job}"))
                    && l.ends_with("🏁  Job succeeded")),
            "{job}:\n{log}"
        );
    }
    // Installed from the release host once, then reused.
    assert_eq!(
        log.matches("custody install: downloading custody v0.0.1")
            .count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("custody install: reusing release v0.0.1"),
        "{log}"
    );
    // The repository was lower-cased; the job output names the pinned release.
    let released = format!("released {}/acme-corp/app/app@sha256:", registry.host);
    assert!(log.contains(&released), "{log}");
    // Summaries: the release's referrers, the verify verdict, table and tree, the promotion.
    assert!(log.contains("Summary - ### ✅ custody release"), "{log}");
    assert!(
        log.contains("Summary - ### ✅ custody verify: verified"),
        "{log}"
    );
    assert!(log.contains("| ✅ |"), "{log}");
    assert!(log.contains("<summary>Referrer tree</summary>"), "{log}");
    assert!(log.contains("Summary - ### ✅ custody promote"), "{log}");
    let promoted = support::ok(&[
        "resolve",
        &format!("{}/acme-corp/app/app-prod:v1.0.0", registry.host),
    ]);
    let released_digest = support::ok(&[
        "resolve",
        &format!("{}/acme-corp/app/app:v1.0.0", registry.host),
    ]);
    assert_eq!(promoted, released_digest);
}

/// The verify action on an artifact nobody signed: the job fails, the log names the failed
/// check, and the summary says refused.
#[test]
fn an_unsigned_artifact_fails_the_verify_job_under_act() {
    // Its own registry: the workflow is given a bare registry host and lays out its repositories
    // itself.
    let registry = Registry::start();
    let dir = support::tempdir();
    let (_, public) = keypair(dir.path());
    let project = github_project(dir.path(), &public);
    let actions = pinned_actions(dir.path());
    let stub = checkout_stub(dir.path());
    let unsigned = dir.path().join("unsigned.bin");
    std::fs::write(&unsigned, b"never signed\n").unwrap();
    let reference = format!("{}/acme-corp/unsigned:v1.0.0", registry.host);
    support::ok(&["push", unsigned.to_str().unwrap(), "--to", &reference]);
    let workflow = dir.path().join("verify.yml");
    std::fs::write(
        &workflow,
        format!(
            "on: push\njobs:\n  deploy:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - uses: custody-dev/custody/actions/verify@v1\n        with:\n          reference: {}/Acme-Corp/unsigned:v1.0.0\n          policy: deploy/policy.yaml\n",
            registry.host
        ),
    )
    .unwrap();
    let out = act(&project, &workflow, &actions, &stub, &[]);
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(log.contains("🏁  Job failed"), "{log}");
    assert!(
        log.contains(&format!(
            "refused: {}/acme-corp/unsigned@sha256:",
            registry.host
        )),
        "{log}"
    );
    assert!(
        log.contains("  ✗ "),
        "the failed check is named in the log:\n{log}"
    );
    assert!(
        log.contains("Summary - ### ❌ custody verify: refused"),
        "{log}"
    );
    assert!(
        log.contains("was refused; its failed checks are in the log above"),
        "{log}"
    );
}
