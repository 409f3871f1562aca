//! `custody scan` against the shared RustSec data (read in place, never copied), and
//! osv-scanner as the oracle on the same inputs and the same data packed as its offline database.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::support::{custody, stderr, stdout, tempdir, tools_bin};

fn shared_db() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/osv/crates.io")
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vuln/Cargo.lock")
}

fn scan_json(input: &Path, extra: &[&str]) -> (Value, i32) {
    let db = shared_db();
    let mut args = vec![
        "--output".to_owned(),
        "json".to_owned(),
        "scan".to_owned(),
        input.display().to_string(),
        "--db".to_owned(),
        db.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = custody().args(&args).output().expect("run custody");
    let code = out.status.code().expect("exit code");
    let json = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("custody scan printed no json ({e}): {}", stderr(&out)));
    (json, code)
}

/// (package, version, reported id, merged records) for every finding.
fn findings(report: &Value) -> Vec<(String, String, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["package"].as_str().unwrap().to_owned(),
                f["version"].as_str().unwrap().to_owned(),
                f["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const EXPECTED: [(&str, &str, &str); 19] = [
    ("chrono", "0.4.19", "RUSTSEC-2020-0159"),
    ("hyper", "0.14.10", "RUSTSEC-2022-0022"),
    ("openssl", "0.10.45", "RUSTSEC-2023-0022"),
    ("openssl", "0.10.45", "RUSTSEC-2023-0023"),
    ("openssl", "0.10.45", "RUSTSEC-2023-0024"),
    ("openssl", "0.10.45", "RUSTSEC-2023-0044"),
    ("openssl", "0.10.45", "RUSTSEC-2023-0072"),
    ("openssl", "0.10.45", "RUSTSEC-2024-0357"),
    ("openssl", "0.10.45", "RUSTSEC-2025-0004"),
    ("openssl", "0.10.45", "RUSTSEC-2025-0022"),
    ("regex", "1.5.4", "RUSTSEC-2022-0013"),
    ("smallvec", "0.6.9", "RUSTSEC-2018-0018"),
    ("smallvec", "0.6.9", "RUSTSEC-2019-0009"),
    ("smallvec", "0.6.9", "RUSTSEC-2019-0012"),
    ("smallvec", "0.6.9", "RUSTSEC-2021-0003"),
    ("time", "0.1.45", "RUSTSEC-2020-0071"),
    ("time", "0.3.20", "RUSTSEC-2026-0009"),
    ("tokio", "1.18.4", "RUSTSEC-2023-0005"),
    ("tokio", "1.18.4", "RUSTSEC-2025-0023"),
];

fn expected() -> Vec<(String, String, String)> {
    EXPECTED
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[test]
fn scan_of_the_cargo_lock_fixture_finds_exactly_the_known_advisories() {
    let (report, code) = scan_json(&fixture(), &[]);
    assert_eq!(code, 0, "no --fail-on: findings alone do not fail");
    assert_eq!(findings(&report), expected());
    assert_eq!(report["scanned"], 10);
    assert_eq!(report["input"]["kind"], "lockfile");
    assert_eq!(report["sbomVerification"]["status"], "not-applicable");
    assert_eq!(report["database"]["advisories"], 1172);
    assert_eq!(report["database"]["withdrawnSkipped"], 13);

    let by_id: BTreeMap<&str, &Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap(), f))
        .collect();
    let f = by_id["RUSTSEC-2019-0009"];
    assert_eq!(f["purl"], "pkg:cargo/smallvec@0.6.9");
    assert_eq!(
        f["aliases"],
        json!(["CVE-2019-15551", "GHSA-mm7v-vpv8-xfc3"])
    );
    assert_eq!(f["severity"]["rating"], "critical");
    assert_eq!(f["severity"]["score"], 9.8);
    assert_eq!(f["fixed"], json!(["0.6.10"]));
    assert_eq!(f["published"], "2019-06-06");
    // Two windows: the version sits in the first, so its fix is the first window's.
    assert_eq!(by_id["RUSTSEC-2021-0003"]["fixed"], json!(["0.6.14"]));
    assert_eq!(by_id["RUSTSEC-2026-0009"]["severity"]["rating"], "medium");
    assert_eq!(by_id["RUSTSEC-2026-0009"]["severity"]["score"], 6.8);
    assert_eq!(by_id["RUSTSEC-2022-0022"]["informational"], "unsound");
    assert_eq!(by_id["RUSTSEC-2020-0159"]["severity"]["rating"], "unknown");
}

#[test]
fn fail_on_sets_the_exit_code() {
    let table = [("critical", 1, 3), ("high", 1, 17), ("unknown", 1, 19)];
    for (threshold, code, failing) in table {
        let (report, got) = scan_json(&fixture(), &["--fail-on", threshold]);
        assert_eq!(got, code, "--fail-on {threshold}");
        assert_eq!(report["failing"], failing, "--fail-on {threshold}");
    }
    let (report, got) = scan_json(
        &fixture(),
        &["--fail-on", "high", "--unknown-severity-as", "low"],
    );
    assert_eq!((got, report["failing"].as_u64()), (1, Some(4)));

    let dir = tempdir();
    let clean = dir.path().join("Cargo.lock");
    std::fs::write(
        &clean,
        "version = 4\n\n[[package]]\nname = \"serde\"\nversion = \"1.0.200\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n",
    )
    .unwrap();
    let (report, got) = scan_json(&clean, &["--fail-on", "low"]);
    assert_eq!((got, report["failing"].as_u64()), (0, Some(0)));
}

#[test]
fn scan_that_cannot_run_exits_2() {
    let dir = tempdir();
    let out = custody()
        .args(["scan", &fixture().display().to_string(), "--db"])
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("could not load the vulnerability database"));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"{\"id\": 5}").unwrap();
    let out = custody()
        .args(["scan", &fixture().display().to_string(), "--db"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad.json is not a valid osv record"),
        "{}",
        stderr(&out)
    );
    let out = custody()
        .args(["scan", "no/such/file.json", "--db"])
        .arg(shared_db())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn human_output_is_a_table() {
    let out = custody()
        .args(["scan", &fixture().display().to_string(), "--db"])
        .arg(shared_db())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("PACKAGE   VERSION  ADVISORY"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("smallvec  0.6.9    RUSTSEC-2019-0009  critical 9.8  0.6.10")),
        "{text}"
    );
    assert!(text.contains("19 finding(s): 3 critical, 1 high, 2 medium, 13 unknown"));
}

/// A CycloneDX SBOM of the fixture's crates, nested components included.
fn write_sbom(path: &Path, purls: &[String]) {
    let components: Vec<Value> = purls
        .iter()
        .map(|p| {
            let (name, version) = p
                .trim_start_matches("pkg:cargo/")
                .split_once('@')
                .expect("versioned purl");
            json!({"type": "library", "bom-ref": p, "name": name, "version": version, "purl": p})
        })
        .collect();
    let bom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {"component": {"type": "application", "name": "fixture", "bom-ref": "fixture"}},
        "components": components,
    });
    std::fs::write(path, serde_json::to_vec_pretty(&bom).unwrap()).unwrap();
}

fn fixture_purls() -> Vec<String> {
    let lock = custody::evidence::sbom::read_lockfile(&fixture()).expect("fixture parses");
    lock.packages.iter().map(|p| p.purl.to_string()).collect()
}

#[test]
fn an_sbom_and_its_sarif() {
    let dir = tempdir();
    let sbom = dir.path().join("bom.cdx.json");
    write_sbom(&sbom, &fixture_purls());
    let sarif = dir.path().join("scan.sarif");
    let (report, code) = scan_json(&sbom, &["--sarif", &sarif.display().to_string()]);
    assert_eq!(code, 0);
    assert_eq!(report["input"]["kind"], "sbom");
    assert_eq!(report["input"]["envelope"], "plain");
    assert_eq!(findings(&report), expected());

    let log: Value = serde_json::from_slice(&std::fs::read(&sarif).unwrap()).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert_eq!(rules.len(), 19);
    assert_eq!(results.len(), 19);
    let smallvec = results
        .iter()
        .find(|r| r["ruleId"] == "RUSTSEC-2019-0009")
        .unwrap();
    assert_eq!(smallvec["level"], "error");
    assert_eq!(
        rules[smallvec["ruleIndex"].as_u64().unwrap() as usize]["id"],
        "RUSTSEC-2019-0009"
    );
    assert_eq!(
        smallvec["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        sbom.display().to_string()
    );
}

/// Pushes a file artifact to an OCI layout and attaches `referrer_layer` (a CycloneDX SBOM or
/// a Sigstore bundle) as a referrer the way the attach module writes them.
fn attach(
    layout: &Path,
    tag: &str,
    artifact_type: &str,
    annotations: Value,
    layer_media_type: &str,
    body: &[u8],
) {
    use custody::foundation::digest::Digest;
    use custody::foundation::reference::Reference;
    use custody::storage::store;

    let reference: Reference = format!("oci:{}:{tag}", layout.display()).parse().unwrap();
    let store = store::open(&reference, &store::Options::default()).unwrap();
    let subject = custody::storage::transfer::resolve(store.as_ref(), &reference).unwrap();
    let empty = custody::foundation::oci::Descriptor::empty_config();
    store
        .put_blob(
            &empty,
            store::BlobSource::Bytes(custody::foundation::oci::EMPTY_JSON),
        )
        .unwrap();
    let layer = custody::foundation::oci::Descriptor::new(
        layer_media_type,
        Digest::of(body),
        body.len() as u64,
    );
    store
        .put_blob(&layer, store::BlobSource::Bytes(body))
        .unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": artifact_type,
        "config": empty,
        "layers": [layer],
        "subject": subject.descriptor,
        "annotations": annotations,
    });
    store
        .put_manifest(
            &serde_json::to_vec(&manifest).unwrap(),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .unwrap();
}

fn push_artifact(dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    let file = dir.join("app.bin");
    std::fs::write(&file, b"the artifact").unwrap();
    let out = custody()
        .args(["push", &file.display().to_string(), "--to"])
        .arg(format!("oci:{}:v1", layout.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    layout
}

#[test]
fn an_oci_artifact_is_scanned_through_its_sbom_referrer() {
    let dir = tempdir();
    let layout = push_artifact(dir.path());
    let oci_ref = format!("oci:{}:v1", layout.display());

    // No SBOM referrer yet: could not run.
    let out = custody()
        .args(["scan", &oci_ref, "--db"])
        .arg(shared_db())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("has no cyclonedx sbom referrer"),
        "{}",
        stderr(&out)
    );

    let sbom = dir.path().join("bom.json");
    write_sbom(&sbom, &fixture_purls());
    let bom = std::fs::read(&sbom).unwrap();
    attach(
        &layout,
        "v1",
        "application/vnd.cyclonedx+json",
        json!({}),
        "application/vnd.cyclonedx+json",
        &bom,
    );
    let (report, code) = scan_json(Path::new(&oci_ref), &[]);
    assert_eq!(code, 0);
    assert_eq!(report["input"]["kind"], "oci");
    assert_eq!(report["input"]["sboms"][0]["envelope"], "plain");
    assert_eq!(report["sbomVerification"]["status"], "unverified");
    assert_eq!(findings(&report), expected());

    // A Sigstore bundle with the SBOM as its statement's predicate is preferred, and reported
    // unverified: custody scan does not check its signature.
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app.bin", "digest": {"sha256": "00"}}],
        "predicateType": "https://cyclonedx.org/bom",
        "predicate": serde_json::from_slice::<Value>(&bom).unwrap(),
    });
    use base64::Engine as _;
    let payload =
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&statement).unwrap());
    let bundle = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {},
        "dsseEnvelope": {"payload": payload, "payloadType": "application/vnd.in-toto+json", "signatures": [{"sig": "AA=="}]},
    });
    attach(
        &layout,
        "v1",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        json!({"dev.sigstore.bundle.predicateType": "https://cyclonedx.org/bom"}),
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        &serde_json::to_vec(&bundle).unwrap(),
    );
    let (report, _) = scan_json(Path::new(&oci_ref), &[]);
    let sboms = report["input"]["sboms"].as_array().unwrap();
    assert_eq!(sboms.len(), 1);
    assert_eq!(sboms[0]["envelope"], "sigstore-bundle");
    assert_eq!(sboms[0]["others"].as_array().unwrap().len(), 1);
    assert_eq!(report["sbomVerification"]["status"], "unverified");
    assert_eq!(findings(&report), expected());
    let out = custody()
        .args(["scan", &oci_ref, "--db"])
        .arg(shared_db())
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("sbom: UNVERIFIED"),
        "{}",
        stdout(&out)
    );
}

// ------------------------------------------------------------------------------ the oracle

/// osv-scanner, built by scripts/install-osv-scanner. Missing is a failure, never a skip.
fn osv_scanner() -> PathBuf {
    let path = tools_bin().join("osv-scanner");
    assert!(
        path.is_file(),
        "osv-scanner is not installed at {}: run scripts/install-osv-scanner (scripts/test does)",
        path.display()
    );
    path
}

/// The shared advisories packed the way osv-scanner's offline mode reads them:
/// `<dir>/osv-scanner/crates.io/all.zip`.
fn osv_scanner_db(dir: &Path) -> PathBuf {
    let root = dir.join("osvdb");
    let eco = root.join("osv-scanner/crates.io");
    std::fs::create_dir_all(&eco).unwrap();
    let mut zip = zip::ZipWriter::new(std::fs::File::create(eco.join("all.zip")).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut files: Vec<PathBuf> = std::fs::read_dir(shared_db())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for f in files {
        zip.start_file(f.file_name().unwrap().to_string_lossy(), opts)
            .unwrap();
        zip.write_all(&std::fs::read(&f).unwrap()).unwrap();
    }
    zip.finish().unwrap();
    root
}

/// (package, version) → the advisory records osv-scanner matched, and its groups (ids).
type Matches = BTreeMap<(String, String), (BTreeSet<String>, BTreeSet<BTreeSet<String>>)>;

fn run_osv_scanner(db: &Path, input: &Path) -> Matches {
    let out = Command::new(osv_scanner())
        .env("OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY", db)
        .args(["scan", "source", "--offline", "--format", "json", "-L"])
        .arg(input)
        .output()
        .expect("run osv-scanner");
    // 0: nothing found, 1: vulnerabilities found; anything else is an error.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "osv-scanner failed: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Loaded crates.io local db"),
        "osv-scanner did not use the local db: {}",
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("osv-scanner json");
    let mut matches = Matches::new();
    for result in report["results"].as_array().into_iter().flatten() {
        for p in result["packages"].as_array().into_iter().flatten() {
            let key = (
                p["package"]["name"].as_str().unwrap().to_owned(),
                p["package"]["version"].as_str().unwrap().to_owned(),
            );
            let ids = p["vulnerabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["id"].as_str().unwrap().to_owned())
                .collect();
            let groups = p["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| {
                    g["ids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|i| i.as_str().unwrap().to_owned())
                        .collect()
                })
                .collect();
            matches.insert(key, (ids, groups));
        }
    }
    matches
}

fn custody_matches(input: &Path) -> Matches {
    let (report, _) = scan_json(input, &[]);
    let mut matches = Matches::new();
    for f in report["findings"].as_array().unwrap() {
        let key = (
            f["package"].as_str().unwrap().to_owned(),
            f["version"].as_str().unwrap().to_owned(),
        );
        let records: BTreeSet<String> = f["advisories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect();
        let entry = matches.entry(key).or_default();
        entry.0.extend(records.iter().cloned());
        entry.1.insert(records);
    }
    matches
}

/// Every version any range event names, for every crate with an advisory: each fix boundary,
/// each introduction, plus versions just around them, ~2,500 components.
fn boundary_purls() -> Vec<String> {
    let mut purls = BTreeSet::new();
    for entry in std::fs::read_dir(shared_db()).unwrap() {
        let v: Value =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        for a in v["affected"].as_array().into_iter().flatten() {
            let name = a["package"]["name"].as_str().unwrap();
            for r in a["ranges"].as_array().into_iter().flatten() {
                for e in r["events"].as_array().into_iter().flatten() {
                    for (_, version) in e.as_object().unwrap() {
                        let version = version.as_str().unwrap();
                        if version != "0" && semver_ok(version) {
                            purls.insert(format!("pkg:cargo/{name}@{version}"));
                        }
                    }
                }
            }
            // A version above every event, and one in the middle of nowhere.
            purls.insert(format!("pkg:cargo/{name}@999.0.0"));
            purls.insert(format!("pkg:cargo/{name}@0.1.0"));
        }
    }
    purls.into_iter().collect()
}

fn semver_ok(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    core.split('.').count() == 3 && core.split('.').all(|p| p.parse::<u64>().is_ok())
}

/// Differences between custody and osv-scanner, as (package, version, what).
fn differences(custody: &Matches, osv: &Matches) -> Vec<String> {
    let keys: BTreeSet<&(String, String)> = custody.keys().chain(osv.keys()).collect();
    let empty = (BTreeSet::new(), BTreeSet::new());
    let mut out = Vec::new();
    for key in keys {
        let c = custody.get(key).unwrap_or(&empty);
        let o = osv.get(key).unwrap_or(&empty);
        if c.0 != o.0 {
            out.push(format!(
                "{} {}: custody {:?}, osv-scanner {:?}",
                key.0, key.1, c.0, o.0
            ));
        } else if c.1 != o.1 {
            out.push(format!(
                "{} {}: grouping differs: custody {:?}, osv-scanner {:?}",
                key.0, key.1, c.1, o.1
            ));
        }
    }
    out
}

#[test]
fn oracle_osv_scanner_agrees_on_the_fixture_lockfile() {
    let osv = osv_scanner();
    assert!(osv.is_file());
    let dir = tempdir();
    let db = osv_scanner_db(dir.path());
    let ours = custody_matches(&fixture());
    let theirs = run_osv_scanner(&db, &fixture());
    assert_eq!(differences(&ours, &theirs), Vec::<String>::new());

    // custody reads the packed archive too, and knows it for the same database.
    let zip = db.join("osv-scanner/crates.io/all.zip");
    let out = custody()
        .args(["--output", "json", "scan"])
        .arg(fixture())
        .arg("--db")
        .arg(&zip)
        .output()
        .unwrap();
    let from_zip: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let (from_folder, _) = scan_json(&fixture(), &[]);
    assert_eq!(findings(&from_zip), expected());
    assert_eq!(
        from_zip["database"]["contentDigest"],
        from_folder["database"]["contentDigest"]
    );
    assert!(
        from_zip["database"]["contentDigest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // And it is the expected list, not two tools agreeing on nothing.
    assert_eq!(ours.values().map(|v| v.0.len()).sum::<usize>(), 19);
}

#[test]
fn oracle_osv_scanner_agrees_on_custodys_own_lockfile() {
    let dir = tempdir();
    let db = osv_scanner_db(dir.path());
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock");
    // osv-scanner reads Cargo.lock by file name; so does custody.
    let copy = dir.path().join("Cargo.lock");
    std::fs::copy(&own, &copy).unwrap();
    let ours = custody_matches(&copy);
    let theirs = run_osv_scanner(&db, &copy);
    assert_eq!(differences(&ours, &theirs), Vec::<String>::new());
}

#[test]
fn oracle_osv_scanner_agrees_at_every_range_boundary_of_the_rustsec_data() {
    let dir = tempdir();
    let db = osv_scanner_db(dir.path());
    let sbom = dir.path().join("boundaries.cdx.json");
    let purls = boundary_purls();
    assert!(purls.len() > 2_000, "{} components", purls.len());
    write_sbom(&sbom, &purls);
    let ours = custody_matches(&sbom);
    let theirs = run_osv_scanner(&db, &sbom);
    let found: usize = ours.values().map(|v| v.0.len()).sum();
    assert!(
        found > 1_000,
        "only {found} matches: the test would prove little"
    );
    assert_eq!(differences(&ours, &theirs), Vec::<String>::new());
}

// ------------------------------------------- made-up advisories for npm, Go and PyPI

/// Advisories written by the test (the shared data is crates.io only), each aimed at one rule
/// of an ecosystem's version order or of OSV range evaluation.
fn made_up_advisories() -> Vec<(&'static str, Value)> {
    let adv = |id: &str,
               aliases: &[&str],
               eco: &str,
               name: &str,
               ranges: Value,
               versions: &[&str]| {
        json!({
            "schema_version": "1.6.0",
            "id": id, "modified": "2026-01-01T00:00:00Z", "published": "2025-01-01T00:00:00Z",
            "aliases": aliases, "summary": format!("made-up advisory {id}"),
            "affected": [{"package": {"ecosystem": eco, "name": name}, "ranges": ranges, "versions": versions}],
        })
    };
    let eco = |events: Value| json!([{"type": "ECOSYSTEM", "events": events}]);
    let sem = |events: Value| json!([{"type": "SEMVER", "events": events}]);
    vec![
        // npm
        (
            "npm",
            adv(
                "GHSA-aaaa-aaaa-0001",
                &["CVE-2099-0001"],
                "npm",
                "lodash",
                sem(json!([{"introduced": "0"}, {"fixed": "4.17.21"}])),
                &[],
            ),
        ),
        // A second record of the same problem: merged with the first.
        (
            "npm",
            adv(
                "TEST-NPM-2",
                &["CVE-2099-0001"],
                "npm",
                "lodash",
                sem(json!([{"introduced": "4.0.0"}, {"fixed": "4.17.21"}])),
                &[],
            ),
        ),
        (
            "npm",
            adv(
                "GHSA-aaaa-aaaa-0003",
                &[],
                "npm",
                "@babel/traverse",
                sem(json!([{"introduced": "0"}, {"fixed": "7.23.2"}])),
                &[],
            ),
        ),
        // Fixed exactly at the installed version.
        (
            "npm",
            adv(
                "GHSA-aaaa-aaaa-0004",
                &[],
                "npm",
                "minimist",
                sem(json!([{"introduced": "1.0.0"}, {"fixed": "1.2.6"}])),
                &[],
            ),
        ),
        // A pre-release of the introducing version is below it.
        (
            "npm",
            adv(
                "GHSA-aaaa-aaaa-0005",
                &[],
                "npm",
                "semver",
                sem(json!([{"introduced": "7.0.0"}])),
                &[],
            ),
        ),
        (
            "npm",
            adv(
                "GHSA-aaaa-aaaa-0006",
                &[],
                "npm",
                "left-pad",
                json!([]),
                &["1.3.0"],
            ),
        ),
        // Go
        (
            "Go",
            adv(
                "GO-2099-0001",
                &[],
                "Go",
                "golang.org/x/net",
                sem(json!([{"introduced": "0"}, {"fixed": "0.7.0"}])),
                &[],
            ),
        ),
        (
            "Go",
            adv(
                "GO-2099-0002",
                &[],
                "Go",
                "github.com/gin-gonic/gin",
                sem(json!([{"introduced": "0"}, {"fixed": "1.9.1"}])),
                &[],
            ),
        ),
        (
            "Go",
            adv(
                "GO-2099-0003",
                &[],
                "Go",
                "github.com/docker/docker",
                sem(json!([{"introduced": "0"}, {"fixed": "20.10.11+incompatible"}])),
                &[],
            ),
        ),
        (
            "Go",
            adv(
                "GO-2099-0004",
                &[],
                "Go",
                "github.com/stretchr/testify",
                sem(json!([{"introduced": "1.0.0"}, {"fixed": "1.8.4"}])),
                &[],
            ),
        ),
        (
            "Go",
            adv(
                "GO-2099-0005",
                &[],
                "Go",
                "github.com/BurntSushi/toml",
                sem(json!([{"introduced": "0"}, {"last_affected": "0.3.1"}])),
                &[],
            ),
        ),
        // PyPI
        (
            "PyPI",
            adv(
                "PYSEC-2099-1",
                &[],
                "PyPI",
                "Django",
                eco(json!([{"introduced": "0"}, {"fixed": "4.2.post1"}])),
                &[],
            ),
        ),
        (
            "PyPI",
            adv(
                "PYSEC-2099-2",
                &[],
                "PyPI",
                "requests",
                eco(json!([{"introduced": "2.0"}, {"fixed": "2.31.0"}])),
                &[],
            ),
        ),
        (
            "PyPI",
            adv(
                "PYSEC-2099-3",
                &[],
                "PyPI",
                "flask",
                eco(json!([{"introduced": "2.0.0"}])),
                &[],
            ),
        ),
        (
            "PyPI",
            adv("PYSEC-2099-4", &[], "PyPI", "jinja2", json!([]), &["3.1.2"]),
        ),
        (
            "PyPI",
            adv(
                "PYSEC-2099-5",
                &[],
                "PyPI",
                "zope.interface",
                eco(json!([{"introduced": "0"}, {"fixed": "5.1"}])),
                &[],
            ),
        ),
        (
            "PyPI",
            adv(
                "PYSEC-2099-7",
                &[],
                "PyPI",
                "urllib3",
                eco(json!([{"introduced": "1.26.0"}, {"last_affected": "1.26.5"}])),
                &[],
            ),
        ),
    ]
}

const PACKAGE_LOCK: &str = r#"{
  "name": "web", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
  "packages": {
    "": {"name": "web", "version": "1.0.0"},
    "node_modules/lodash": {"version": "4.17.20", "resolved": "https://registry.npmjs.org/lodash/-/lodash-4.17.20.tgz"},
    "node_modules/@babel/traverse": {"version": "7.22.0", "resolved": "https://registry.npmjs.org/@babel/traverse/-/traverse-7.22.0.tgz"},
    "node_modules/minimist": {"version": "1.2.6", "resolved": "https://registry.npmjs.org/minimist/-/minimist-1.2.6.tgz"},
    "node_modules/semver": {"version": "7.0.0-beta.1", "resolved": "https://registry.npmjs.org/semver/-/semver-7.0.0-beta.1.tgz"},
    "node_modules/left-pad": {"version": "1.3.0", "resolved": "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz"}
  }
}"#;

const GO_MOD: &str = "module example.com/app\n\ngo 1.22\n\nrequire (\n\
    \tgolang.org/x/net v0.0.0-20220127200216-cd36cc0744dd\n\
    \tgithub.com/gin-gonic/gin v1.9.0\n\
    \tgithub.com/docker/docker v20.10.0+incompatible\n\
    \tgithub.com/stretchr/testify v1.8.4\n\
    \tgithub.com/BurntSushi/toml v0.3.1\n)\n";

const REQUIREMENTS: &str = "Django==4.2\nrequests==2.31.0\nflask==2.0.0rc1\njinja2==3.1.2\n\
    zope.interface==5.0\nurllib3==1.26.5\n";

/// Writes the lockfiles and the advisories (a folder per ecosystem for custody, the
/// `osv-scanner/<ecosystem>/all.zip` layout for osv-scanner).
fn made_up_world(dir: &Path) -> (PathBuf, PathBuf) {
    let custody_db = dir.join("advisories");
    let osv_db = dir.join("osvdb");
    let mut zips: BTreeMap<&str, zip::ZipWriter<std::fs::File>> = BTreeMap::new();
    for (eco, advisory) in made_up_advisories() {
        let bytes = serde_json::to_vec_pretty(&advisory).unwrap();
        let name = format!("{}.json", advisory["id"].as_str().unwrap());
        std::fs::create_dir_all(custody_db.join(eco)).unwrap();
        std::fs::write(custody_db.join(eco).join(&name), &bytes).unwrap();
        let zip = zips.entry(eco).or_insert_with(|| {
            let d = osv_db.join("osv-scanner").join(eco);
            std::fs::create_dir_all(&d).unwrap();
            zip::ZipWriter::new(std::fs::File::create(d.join("all.zip")).unwrap())
        });
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(&bytes).unwrap();
    }
    for (_, zip) in zips {
        zip.finish().unwrap();
    }
    for (dir_name, file, text) in [
        ("npm", "package-lock.json", PACKAGE_LOCK),
        ("go", "go.mod", GO_MOD),
        ("py", "requirements.txt", REQUIREMENTS),
    ] {
        std::fs::create_dir_all(dir.join(dir_name)).unwrap();
        std::fs::write(dir.join(dir_name).join(file), text).unwrap();
    }
    (custody_db, osv_db)
}

/// Names and versions as both tools can be compared: Go module paths lowercased and versions
/// without `v` (custody's purls are lowercase, osv-scanner drops the `v`), PyPI names
/// normalised.
fn normalised(matches: Matches) -> Matches {
    matches
        .into_iter()
        .map(|((name, version), v)| {
            let name = name.to_ascii_lowercase();
            // Only PyPI names (the ones without a `/` here) are PEP 503 normalised.
            let name = if name.contains('/') {
                name
            } else {
                name.replace(['_', '.'], "-")
            };
            let version = version.trim_start_matches('v').to_owned();
            ((name, version), v)
        })
        .collect()
}

fn custody_matches_with(input: &Path, db: &Path) -> Matches {
    let out = custody()
        .args(["--output", "json", "scan"])
        .arg(input)
        .arg("--db")
        .arg(db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let mut matches = Matches::new();
    for f in report["findings"].as_array().unwrap() {
        let key = (
            f["package"].as_str().unwrap().to_owned(),
            f["version"].as_str().unwrap().to_owned(),
        );
        let records: BTreeSet<String> = f["advisories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect();
        let entry = matches.entry(key).or_default();
        entry.0.extend(records.iter().cloned());
        entry.1.insert(records);
    }
    matches
}

/// (package, version, advisory records) of one expected finding.
type Expected<'a> = (&'a str, &'a str, &'a [&'a str]);

#[test]
fn npm_go_and_pypi_lockfiles_match_as_expected_and_as_osv_scanner_does() {
    let dir = tempdir();
    let (custody_db, osv_db) = made_up_world(dir.path());
    let expected: [(&str, &[Expected]); 3] = [
        (
            "npm/package-lock.json",
            &[
                ("@babel/traverse", "7.22.0", &["GHSA-aaaa-aaaa-0003"]),
                ("left-pad", "1.3.0", &["GHSA-aaaa-aaaa-0006"]),
                ("lodash", "4.17.20", &["GHSA-aaaa-aaaa-0001", "TEST-NPM-2"]),
            ],
        ),
        (
            "go/go.mod",
            &[
                ("github.com/burntsushi/toml", "0.3.1", &["GO-2099-0005"]),
                (
                    "github.com/docker/docker",
                    "20.10.0+incompatible",
                    &["GO-2099-0003"],
                ),
                ("github.com/gin-gonic/gin", "1.9.0", &["GO-2099-0002"]),
                (
                    "golang.org/x/net",
                    "0.0.0-20220127200216-cd36cc0744dd",
                    &["GO-2099-0001"],
                ),
            ],
        ),
        (
            "py/requirements.txt",
            &[
                ("django", "4.2", &["PYSEC-2099-1"]),
                ("jinja2", "3.1.2", &["PYSEC-2099-4"]),
                ("urllib3", "1.26.5", &["PYSEC-2099-7"]),
                ("zope-interface", "5.0", &["PYSEC-2099-5"]),
            ],
        ),
    ];
    for (input, want) in expected {
        let input = dir.path().join(input);
        let ours = normalised(custody_matches_with(&input, &custody_db));
        let want: Matches = want
            .iter()
            .map(|(n, v, ids)| {
                let ids: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
                (
                    (n.to_string(), v.to_string()),
                    (ids.clone(), BTreeSet::from([ids])),
                )
            })
            .collect();
        assert_eq!(ours, want, "{}", input.display());
        let theirs = normalised(run_osv_scanner_any(&osv_db, &input));
        let explained: Vec<String> = OSV_SCANNER_DIFFERENCES
            .iter()
            .filter(|(file, _, _)| input.ends_with(file))
            .map(|(_, difference, _)| difference.to_string())
            .collect();
        assert_eq!(
            differences(&ours, &theirs),
            explained,
            "{}",
            input.display()
        );
    }
}

/// Where osv-scanner 2.4.0 (offline) and custody disagree, and why custody is right.
///
/// PyPI project names are case-insensitive and treat `-`, `_` and `.` alike (PEP 503; pip and
/// the index compare names that way), so an advisory for `Django` or `zope.interface` applies
/// to `Django==4.2` and `zope.interface==5.0`. custody normalises both sides. osv-scanner's
/// local-database matcher does not: checked by hand with one-advisory databases, it matched an
/// advisory spelled `django` to `Django==4.2` but not one spelled `Django`, and matched neither
/// `zope.interface` nor `zope-interface` to `zope.interface==5.0`.
const OSV_SCANNER_DIFFERENCES: [(&str, &str, &str); 2] = [
    (
        "py/requirements.txt",
        "django 4.2: custody {\"PYSEC-2099-1\"}, osv-scanner {}",
        "advisory spells the project `Django`; osv-scanner offline compares names case-sensitively",
    ),
    (
        "py/requirements.txt",
        "zope-interface 5.0: custody {\"PYSEC-2099-5\"}, osv-scanner {}",
        "advisory spells the project `zope.interface`; osv-scanner offline does not apply PEP 503",
    ),
];

/// osv-scanner on any ecosystem's lockfile (offline, local databases only).
fn run_osv_scanner_any(db: &Path, input: &Path) -> Matches {
    let out = Command::new(osv_scanner())
        .env("OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY", db)
        .args(["scan", "source", "--offline", "--format", "json", "-L"])
        .arg(input)
        .output()
        .expect("run osv-scanner");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "osv-scanner failed: {}",
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("osv-scanner json");
    let mut matches = Matches::new();
    for result in report["results"].as_array().into_iter().flatten() {
        for p in result["packages"].as_array().into_iter().flatten() {
            let key = (
                p["package"]["name"].as_str().unwrap().to_owned(),
                p["package"]["version"].as_str().unwrap().to_owned(),
            );
            let ids = p["vulnerabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["id"].as_str().unwrap().to_owned())
                .collect();
            let groups = p["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| {
                    g["ids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|i| i.as_str().unwrap().to_owned())
                        .collect()
                })
                .collect();
            matches.insert(key, (ids, groups));
        }
    }
    matches
}

#[test]
fn vex_not_affected_findings_do_not_fail_the_scan() {
    let dir = tempdir();
    let vex = dir.path().join("app.openvex.json");
    std::fs::write(
        &vex,
        serde_json::to_vec(&json!({
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "https://example.com/vex/1",
            "author": "release team",
            "timestamp": "2026-01-01T00:00:00Z",
            "version": 1,
            "statements": [{
                "vulnerability": {"name": "CVE-2019-15551"},
                "products": [{"@id": "pkg:oci/app", "subcomponents": [{"@id": "pkg:cargo/smallvec@0.6.9"}]}],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
            }]
        }))
        .unwrap(),
    )
    .unwrap();
    let vex_arg = vex.display().to_string();
    let (report, code) = scan_json(&fixture(), &["--fail-on", "critical", "--vex", &vex_arg]);
    assert_eq!(code, 1);
    assert_eq!(report["failing"], 2);
    assert_eq!(
        report["notAffected"],
        json!([{
            "decision": "not-affected-by-vex",
            "document": vex_arg,
            "vulnerability": "CVE-2019-15551",
            "justification": "vulnerable_code_not_in_execute_path",
            "status": "not_affected",
            "purl": "pkg:cargo/smallvec@0.6.9",
            "id": "RUSTSEC-2019-0009",
        }])
    );
    // The finding is still reported: VEX explains it, it does not hide it.
    assert_eq!(findings(&report).len(), 19);

    std::fs::write(
        &vex,
        b"{\"@context\": \"https://example.com\", \"statements\": []}",
    )
    .unwrap();
    let out = custody()
        .args([
            "scan",
            &fixture().display().to_string(),
            "--vex",
            &vex_arg,
            "--db",
        ])
        .arg(shared_db())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not an openvex one"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_index_is_scanned_through_its_platform_manifests_sboms() {
    use custody::foundation::reference::Reference;
    use custody::storage::store;

    let dir = tempdir();
    let layout = dir.path().join("layout");
    for (tag, body) in [("amd64", "amd64 build"), ("arm64", "arm64 build")] {
        let file = dir.path().join(format!("app-{tag}"));
        std::fs::write(&file, body).unwrap();
        let out = custody()
            .args(["push", &file.display().to_string(), "--to"])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let multi: Reference = format!("oci:{}:multi", layout.display()).parse().unwrap();
    let store = store::open(&multi, &store::Options::default()).unwrap();
    let mut manifests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let r: Reference = format!("oci:{}:{arch}", layout.display()).parse().unwrap();
        let m = custody::storage::transfer::resolve(store.as_ref(), &r).unwrap();
        let mut d = serde_json::to_value(&m.descriptor).unwrap();
        d["platform"] = json!({"os": "linux", "architecture": arch});
        manifests.push(d);
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    let descriptor = store
        .put_manifest(&index, "application/vnd.oci.image.index.v1+json")
        .unwrap();
    let fetched = store.get_manifest(&descriptor.digest).unwrap();
    store.tag(multi.tag.as_ref().unwrap(), &fetched).unwrap();

    let sbom = dir.path().join("bom.json");
    for (arch, purls) in [
        ("amd64", vec!["pkg:cargo/smallvec@0.6.9".to_owned()]),
        (
            "arm64",
            vec![
                "pkg:cargo/regex@1.5.4".to_owned(),
                "pkg:cargo/smallvec@0.6.9".to_owned(),
            ],
        ),
    ] {
        write_sbom(&sbom, &purls);
        attach(
            &layout,
            arch,
            "application/vnd.cyclonedx+json",
            json!({}),
            "application/vnd.cyclonedx+json",
            &std::fs::read(&sbom).unwrap(),
        );
    }
    let (report, code) = scan_json(Path::new(&multi.to_string()), &[]);
    assert_eq!(code, 0);
    let sboms = report["input"]["sboms"].as_array().unwrap();
    let platforms: Vec<&str> = sboms
        .iter()
        .map(|s| s["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    // The two platforms' components are scanned together, each package once.
    assert_eq!(report["scanned"], 2);
    let ids: Vec<String> = findings(&report).into_iter().map(|f| f.2).collect();
    assert_eq!(
        ids,
        [
            "RUSTSEC-2022-0013",
            "RUSTSEC-2018-0018",
            "RUSTSEC-2019-0009",
            "RUSTSEC-2019-0012",
            "RUSTSEC-2021-0003"
        ]
    );
}
