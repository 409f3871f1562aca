//! Output, exit codes and diagnostics shared by every command: a reader that closes the pipe
//! early ends custody quietly with 0; usage errors follow `--output json` like other failures.

use std::io::Read as _;
use std::process::{Output, Stdio};

use crate::support::{self, stderr, stdout, validate_against_schema};

/// Runs custody with stdout on a pipe whose reading end is closed before custody writes, the way
/// `custody … | head -1` ends once head has its line.
fn into_closed_pipe(args: &[&str], env: &[(&str, &str)]) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut cmd = support::custody();
    cmd.args(args).stdout(writer).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("custody runs");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut err)
        .expect("stderr reads");
    let status = child.wait().expect("custody ends");
    Output {
        status,
        stdout: Vec::new(),
        stderr: err.into_bytes(),
    }
}

fn assert_quiet_success(o: &Output, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what} into a closed pipe: {}",
        stderr(o)
    );
    assert_eq!(stderr(o), "", "{what} into a closed pipe says nothing");
}

#[test]
fn help_into_a_closed_pipe_ends_with_0() {
    assert_quiet_success(&into_closed_pipe(&["--help"], &[]), "custody --help");
}

#[test]
fn a_report_into_a_closed_pipe_ends_with_0() {
    // `policy init` printed with print!, which panics on a closed pipe (exit 101).
    assert_quiet_success(&into_closed_pipe(&["policy", "init"], &[]), "policy init");
    let dir = support::tempdir();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "a\n").unwrap();
    let file = file.to_str().unwrap();
    assert_quiet_success(
        &into_closed_pipe(&["--output", "json", "digest", file], &[]),
        "digest --output json",
    );
}

#[test]
fn a_refused_verification_into_a_closed_pipe_ends_quietly_and_still_refuses() {
    let dir = support::tempdir();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, "artifact\n").unwrap();
    let store = format!("oci:{}:v1", dir.path().join("layout").display());
    support::ok(&["push", file.to_str().unwrap(), "--to", &store]);
    let prefix = dir.path().join("k");
    let prefix = prefix.to_str().unwrap();
    let keygen = support::custody()
        .args(["keygen", "--output-key-prefix", prefix])
        .env("COSIGN_PASSWORD", "pw")
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{}", stderr(&keygen));
    let public = format!("{prefix}.pub");

    // Unsigned: refused (exit 1) when the whole report is read ...
    let read = support::run(&["verify", &store, "--key", &public]);
    assert_eq!(read.status.code(), Some(1), "{}", stderr(&read));
    assert!(stdout(&read).contains("REFUSED"), "{}", stdout(&read));
    // ... and still 1, quietly, when the reader stopped before custody wrote it: a closed pipe
    // never turns a refusal into a pass under `set -o pipefail`.
    let closed = into_closed_pipe(&["verify", &store, "--key", &public], &[]);
    assert_eq!(closed.status.code(), Some(1), "{}", stderr(&closed));
    assert!(!stderr(&closed).contains("panicked"), "{}", stderr(&closed));
}

#[test]
fn a_usage_error_with_output_json_prints_the_error_document() {
    let o = support::run(&["--output", "json", "verify"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("error: "),
        "clap's message on stderr: {}",
        stderr(&o)
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(&o)));
    validate_against_schema("error.schema.json", &doc);
    assert_eq!(doc["exitCode"], 2);
    assert!(
        doc["error"]
            .as_str()
            .is_some_and(|e| e.contains("required arguments were not provided")),
        "{doc}"
    );

    // Without --output json, stdout stays empty.
    let o = support::run(&["verify"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "");
}
