//! Interop with the peer tools people already run: oras and crane, on a real registry.

use std::process::Command;

use custody::foundation::reference::Reference;
use custody::storage::store;

use crate::registry::attach_referrer;
use crate::support::{self, Registry, ok, ok_json, tool};

fn peer(name: &str, args: &[&str], cwd: &std::path::Path) -> String {
    let o = Command::new(tool(name))
        .args(args)
        .current_dir(cwd)
        .env("HOME", cwd)
        .output()
        .unwrap_or_else(|e| panic!("{name} runs: {e}"));
    assert!(
        o.status.success(),
        "{name} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn oras_pulls_what_custody_pushes_byte_identical() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    let a = dir.path().join("a.txt");
    let b = dir.path().join("b.bin");
    std::fs::write(&a, b"alpha\n").unwrap();
    support::write_data(&b, 9 * 1024 * 1024 + 5, 3);
    let r = format!("{}/interop/custody:v1", registry.base);
    ok(&["push", a.to_str().unwrap(), b.to_str().unwrap(), "--to", &r]);
    let out = dir.path().join("oras-out");
    std::fs::create_dir_all(&out).unwrap();
    peer(
        "oras",
        &["pull", "--plain-http", &r, "-o", out.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(
        std::fs::read(out.join("a.txt")).unwrap(),
        std::fs::read(&a).unwrap()
    );
    assert_eq!(
        std::fs::read(out.join("b.bin")).unwrap(),
        std::fs::read(&b).unwrap()
    );
}

#[test]
fn custody_pulls_what_oras_pushes() {
    let registry = support::shared_registry();
    let dir = support::tempdir();
    std::fs::write(dir.path().join("notes.md"), b"# notes\n").unwrap();
    let r = format!("{}/interop/oras:v1", registry.base);
    peer(
        "oras",
        &[
            "push",
            "--plain-http",
            &r,
            "notes.md:text/markdown",
            "--artifact-type",
            "application/vnd.example",
        ],
        dir.path(),
    );
    let out = dir.path().join("custody-out");
    let pulled = ok_json(&["pull", &r, "-o", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("notes.md")).unwrap(), b"# notes\n");
    let oras_digest = peer("oras", &["resolve", "--plain-http", &r], dir.path());
    assert_eq!(pulled["digest"], oras_digest.trim());
}

#[test]
fn crane_and_oras_see_the_same_digest_and_referrers_after_copy() {
    // Two registries of their own: the copy crosses hosts, as crane and oras see it.
    let registry = Registry::start();
    let other = Registry::start();
    let dir = support::tempdir();
    let f = dir.path().join("app.tar");
    std::fs::write(&f, b"pretend this is an image").unwrap();
    let src = format!("{}/stage/app:1.0", registry.host);
    let digest = ok_json(&["push", f.to_str().unwrap(), "--to", &src])["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = store::open(
        &src.parse::<Reference>().unwrap(),
        &store::Options::default(),
    )
    .unwrap();
    let subject = store
        .get_manifest(&digest.parse().unwrap())
        .unwrap()
        .descriptor;
    attach_referrer(
        store.as_ref(),
        &subject,
        b"bundle",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
    );

    let dst = format!("{}/prod/app:1.0", other.host);
    ok(&["copy", &src, &dst]);
    let crane_digest = peer("crane", &["digest", "--insecure", &dst], dir.path());
    assert_eq!(crane_digest.trim(), digest);

    let listed = peer(
        "oras",
        &["discover", "--plain-http", "--format", "json", &dst],
        dir.path(),
    );
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let types: Vec<&str> = v["referrers"]
        .as_array()
        .unwrap_or_else(|| panic!("oras discover output: {listed}"))
        .iter()
        .filter_map(|r| r["artifactType"].as_str())
        .collect();
    assert_eq!(
        types,
        vec!["application/vnd.dev.sigstore.bundle.v0.3+json"],
        "{listed}"
    );
}
