//! Policy scopes follow the one canonical spelling of a reference: on a real registry, writing
//! the registry host another way (upper case, a trailing dot, the default port) or writing the
//! policy's host another way picks the same scope, so refused stays refused.

use std::path::Path;
use std::process::Output;

use crate::release::keypair;
use crate::support::{self, Registry, stderr, stdout};

fn custody(args: &[&str]) -> Output {
    support::custody()
        .args(args)
        .env("COSIGN_PASSWORD", "release-pw")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .output()
        .unwrap()
}

fn must(args: &[&str]) -> serde_json::Value {
    let o = custody(&[&["--output", "json"][..], args].concat());
    assert!(
        o.status.success(),
        "custody {args:?}: {}\n{}",
        stdout(&o),
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A strict scope for `prod/` (only the prod key) and a lax catch-all (the dev key).
fn policy(dir: &Path, prod_pattern: &str, prod_key: &str, dev_key: &str) -> String {
    let path = dir.join(format!("policy-{}.yaml", prod_pattern.len()));
    std::fs::write(
        &path,
        format!(
            "version: 1\nscopes:\n  - name: prod\n    repositories: [\"{prod_pattern}\"]\n    signers:\n      - name: prod\n        key: {prod_key}\n  - name: anything\n    repositories: [\"**\"]\n    signers:\n      - name: dev\n        key: {dev_key}\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// `verify` as JSON: (exit code, scope, verified).
fn verify(reference: &str, host: &str, policy: &str) -> (Option<i32>, String, bool) {
    // --insecure-registry as written, so the old code reached the registry over plain HTTP
    // and chose the scope on the spelling.
    let o = custody(&[
        "--output",
        "json",
        "--insecure-registry",
        host,
        "verify",
        reference,
        "--policy",
        policy,
    ]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{reference}: not JSON ({e}): {}\n{}",
            stdout(&o),
            stderr(&o)
        )
    });
    (
        o.status.code(),
        report["scope"].as_str().unwrap_or_default().to_owned(),
        report["verified"].as_bool().unwrap_or_default(),
    )
}

/// Issue 10, finding 2: an artifact in `prod/` signed only by the dev key is refused by the
/// prod scope however the registry host is spelled, and by a policy whose prod pattern spells
/// it another way; only the catch-all would have accepted it.
#[test]
fn every_spelling_of_the_host_picks_the_same_scope() {
    // Its own registry: the test spells its bare host several ways in `repositories:` scopes.
    let registry = Registry::start();
    let port = registry.host.rsplit_once(':').unwrap().1.to_owned();
    let dir = support::tempdir();
    let d = dir.path();
    std::fs::create_dir_all(d.join("dev")).unwrap();
    std::fs::create_dir_all(d.join("prod")).unwrap();
    let (dev_key, dev_pub) = keypair(&d.join("dev"));
    let (_, prod_pub) = keypair(&d.join("prod"));
    std::fs::write(d.join("app.bin"), b"the artifact\n").unwrap();
    let file = d.join("app.bin").display().to_string();
    for repo in ["prod/app", "dev/app"] {
        let reference = format!("localhost:{port}/{repo}:v1");
        must(&["push", &file, "--to", &reference]);
        must(&["sign", &reference, "--key", &dev_key]);
    }

    let canonical = policy(d, &format!("localhost:{port}/prod/**"), &prod_pub, &dev_pub);
    // The catch-all does accept the dev key: what a missed scope would have let through.
    let control = format!("localhost:{port}/dev/app:v1");
    assert_eq!(
        verify(&control, &format!("localhost:{port}"), &canonical),
        (Some(0), "anything".into(), true)
    );
    for host in [
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("LocalHost:{port}"),
        format!("localhost.:{port}"),
        format!("LOCALHOST.:{port}"),
    ] {
        let reference = format!("{host}/prod/app:v1");
        assert_eq!(
            verify(&reference, &host, &canonical),
            (Some(1), "prod".into(), false),
            "{reference}"
        );
    }
    // The policy's own spelling of the host does not matter either.
    let shouted = policy(
        d,
        &format!("LOCALHOST.:{port}/prod/**"),
        &prod_pub,
        &dev_pub,
    );
    let reference = format!("localhost:{port}/prod/app:v1");
    assert_eq!(
        verify(&reference, &format!("localhost:{port}"), &shouted),
        (Some(1), "prod".into(), false)
    );
}
