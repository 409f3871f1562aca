//! `custody sbom --image` on language packages installed for real: Python wheels from PyPI
//! installed by `pip install --no-index --target`, npm packages installed by
//! `npm install --offline`, both from the cache `scripts/install-lang-packages` fills (the tests
//! never reach the network). Oracles: pip's own `pip list --path`, npm's `npm ls --all --long`,
//! and syft where it is installed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::image::{syft, syft_scan};
use crate::support::{self, custody, stderr, tempdir, tool};

const SITE: &str = "usr/local/lib/python3.11/site-packages";

struct Fixtures {
    /// The `pip install --target` folder (inside `py_root`).
    site: PathBuf,
    /// The npm project folder `app` (inside `js_root`).
    app: PathBuf,
    py_layer: PathBuf,
    js_layer: PathBuf,
    /// Whiteouts for six's dist-info and for `node_modules/is-odd` (with its nested is-number).
    whiteout_layer: PathBuf,
    python: PathBuf,
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?} runs: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tar_create(out: &Path, root: &Path, paths: &[&str]) {
    sh(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(root)
        .args(paths));
}

/// Where `scripts/install-lang-packages` keeps the wheels and the npm cache.
fn lang_cache() -> PathBuf {
    let tools = std::env::var_os("CUSTODY_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            support::tools_bin()
                .parent()
                .expect("the tools bin has a parent")
                .to_path_buf()
        });
    tools.join("lang-packages")
}

/// A Python with pip: the tools venv's (scripts/install-python-tools), else `python3`.
fn python_with_pip() -> PathBuf {
    let venv = support::tools_bin()
        .parent()
        .expect("tools dir")
        .join("venv/bin/python");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        // Idempotent: downloads only when the cache lacks the package sets.
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-lang-packages");
        sh(&mut Command::new(script));
        let cache = lang_cache();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-lang-fixtures");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let python = python_with_pip();

        let py_root = dir.join("py");
        let site = py_root.join(SITE);
        sh(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-index",
                "--find-links",
            ])
            .arg(cache.join("wheels"))
            .arg("--target")
            .arg(&site)
            .arg("-r")
            .arg(cache.join("requirements.txt"))
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PIP_NO_INPUT", "1"));
        let py_layer = dir.join("py.tar");
        tar_create(&py_layer, &py_root, &["usr"]);

        let js_root = dir.join("js");
        let app = js_root.join("app");
        std::fs::create_dir_all(&app).expect("app dir");
        std::fs::copy(cache.join("package.json"), app.join("package.json")).expect("package.json");
        sh(Command::new("npm")
            .args(["install", "--offline", "--cache"])
            .arg(cache.join("npm-cache"))
            .args([
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--loglevel=error",
            ])
            .env("npm_config_update_notifier", "false")
            .current_dir(&app));
        let js_layer = dir.join("js.tar");
        tar_create(&js_layer, &js_root, &["app"]);

        let wh_root = dir.join("wh");
        std::fs::create_dir_all(wh_root.join(SITE)).expect("wh dir");
        std::fs::create_dir_all(wh_root.join("app/node_modules")).expect("wh dir");
        std::fs::write(wh_root.join(SITE).join(".wh.six-1.16.0.dist-info"), b"").expect("wh");
        std::fs::write(wh_root.join("app/node_modules/.wh.is-odd"), b"").expect("wh");
        let whiteout_layer = dir.join("wh.tar");
        tar_create(
            &whiteout_layer,
            &wh_root,
            &[
                &format!("{SITE}/.wh.six-1.16.0.dist-info"),
                "app/node_modules/.wh.is-odd",
            ],
        );
        Fixtures {
            site,
            app,
            py_layer,
            js_layer,
            whiteout_layer,
            python,
        }
    })
}

fn crane(args: &[&str]) -> String {
    sh(Command::new(tool("crane")).args(args))
}

/// Pushes the Python and npm layers, and the same with the whiteout layer on top.
fn push_images(host: &str) -> (String, String) {
    let f = fixtures();
    let base = format!("{host}/lang:1");
    let py = f.py_layer.to_string_lossy().into_owned();
    let js = f.js_layer.to_string_lossy().into_owned();
    crane(&[
        "append",
        "--insecure",
        "--oci-empty-base",
        "-f",
        &py,
        "-f",
        &js,
        "-t",
        &base,
    ]);
    let upper = format!("{host}/lang:wh");
    let wh = f.whiteout_layer.to_string_lossy().into_owned();
    crane(&["append", "--insecure", "-b", &base, "-f", &wh, "-t", &upper]);
    (base, upper)
}

fn sbom_of(image: &str) -> serde_json::Value {
    let dir = tempdir();
    let out = dir.path().join("sbom.json");
    let o = custody()
        .args(["sbom", "--image", image, "-o"])
        .arg(&out)
        .output()
        .expect("custody runs");
    assert!(o.status.success(), "sbom --image failed: {}", stderr(&o));
    if let Some(why) = crate::support::sbom_violations(&out, "1.6") {
        panic!("{why}");
    }
    serde_json::from_slice(&std::fs::read(&out).expect("sbom written")).expect("sbom json")
}

fn components(bom: &serde_json::Value) -> &[serde_json::Value] {
    bom["components"].as_array().map_or(&[], Vec::as_slice)
}

fn prop<'a>(c: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    c["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == name)
        .filter_map(|p| p["value"].as_str())
        .collect()
}

fn of_type<'a>(bom: &'a serde_json::Value, ty: &str) -> Vec<&'a serde_json::Value> {
    components(bom)
        .iter()
        .filter(|c| {
            c["purl"]
                .as_str()
                .is_some_and(|p| p.starts_with(&format!("pkg:{ty}/")))
        })
        .collect()
}

fn layer_digests(image: &str) -> Vec<String> {
    let manifest: serde_json::Value =
        serde_json::from_str(&crane(&["manifest", "--insecure", image])).expect("manifest json");
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_owned())
        .collect()
}

/// PEP 503: lowercase, runs of `-`, `_`, `.` as one `-`.
fn pep503(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// npm's own view: every package in `npm ls --all --long --json`, the project included, as
/// (name, version, path inside the image).
fn npm_ls(app: &Path) -> BTreeSet<(String, String, String)> {
    let json: serde_json::Value = serde_json::from_str(&sh(Command::new("npm")
        .args(["ls", "--all", "--long", "--json"])
        .current_dir(app)))
    .expect("npm ls json");
    let root = app.parent().expect("app has a parent");
    let mut out = BTreeSet::new();
    let mut stack = vec![(json["name"].as_str().unwrap_or("").to_owned(), json.clone())];
    while let Some((name, node)) = stack.pop() {
        let path = Path::new(node["path"].as_str().expect("npm ls --long gives paths"));
        let inside = path.strip_prefix(root).expect("inside the tree");
        out.insert((
            name,
            node["version"].as_str().unwrap_or("").to_owned(),
            format!("/{}/package.json", inside.display()),
        ));
        if let Some(deps) = node["dependencies"].as_object() {
            stack.extend(deps.iter().map(|(n, d)| (n.clone(), d.clone())));
        }
    }
    out
}

#[test]
fn python_packages_match_pip_and_npm_packages_match_npm_ls() {
    let registry = support::shared_registry();
    let (base, _) = push_images(&registry.base);
    let f = fixtures();
    let layers = layer_digests(&base);
    assert_eq!(layers.len(), 2);
    let bom = sbom_of(&base);

    // Python: what pip lists in the --target folder, names PEP 503-normalised in the purl.
    let pip: serde_json::Value = serde_json::from_str(&sh(Command::new(&f.python)
        .args(["-m", "pip", "list", "--format", "json", "--path"])
        .arg(&f.site)
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")))
    .expect("pip list json");
    let pip_set: BTreeSet<String> = pip
        .as_array()
        .expect("pip list array")
        .iter()
        .map(|p| {
            format!(
                "pkg:pypi/{}@{}",
                pep503(p["name"].as_str().unwrap_or("")),
                p["version"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(pip_set.len(), 7, "{pip_set:?}");
    let python = of_type(&bom, "pypi");
    let ours: BTreeSet<String> = python
        .iter()
        .filter_map(|c| c["purl"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ours, pip_set);
    assert!(
        ours.contains("pkg:pypi/typing-extensions@4.10.0"),
        "{ours:?}"
    );
    for c in &python {
        assert_eq!(prop(c, "custody:layer:digest"), vec![layers[0].as_str()]);
        let path = prop(c, "custody:location:path");
        assert_eq!(path.len(), 1, "{c}");
        assert!(
            path[0].starts_with(&format!("/{SITE}/")) && path[0].ends_with(".dist-info/METADATA"),
            "{path:?}"
        );
    }
    let typing = python
        .iter()
        .find(|c| c["name"] == "typing_extensions")
        .expect("the name as the metadata writes it");
    assert_eq!(
        prop(typing, "custody:location:path"),
        vec![format!(
            "/{SITE}/typing_extensions-4.10.0.dist-info/METADATA"
        )]
    );

    // npm: what npm ls lists (the project and every package, nested ones too), where it is.
    let npm_set = npm_ls(&f.app);
    assert_eq!(npm_set.len(), 6, "{npm_set:?}");
    let npm = of_type(&bom, "npm");
    let ours: BTreeSet<(String, String, String)> = npm
        .iter()
        .flat_map(|c| {
            let name = c["name"].as_str().unwrap_or("").to_owned();
            let version = c["version"].as_str().unwrap_or("").to_owned();
            prop(c, "custody:location:path")
                .into_iter()
                .map(move |p| (name.clone(), version.clone(), p.to_owned()))
        })
        .collect();
    assert_eq!(ours, npm_set);
    let purls: BTreeSet<&str> = npm.iter().filter_map(|c| c["purl"].as_str()).collect();
    assert_eq!(
        purls,
        BTreeSet::from([
            "pkg:npm/%40isaacs/string-locale-compare@1.1.0",
            "pkg:npm/is-number@6.0.0",
            "pkg:npm/is-number@7.0.0",
            "pkg:npm/is-odd@3.0.1",
            "pkg:npm/lang-fixture@1.0.0",
            "pkg:npm/minimist@1.2.5",
        ])
    );
    for c in &npm {
        assert_eq!(prop(c, "custody:layer:digest"), vec![layers[1].as_str()]);
    }
}

#[test]
fn whiteouts_remove_python_and_npm_packages() {
    let registry = support::shared_registry();
    let (_, upper) = push_images(&registry.base);
    let bom = sbom_of(&upper);
    let purls: BTreeSet<&str> = components(&bom)
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .collect();
    // six's dist-info and node_modules/is-odd (with the is-number nested in it) are gone.
    assert_eq!(
        purls,
        BTreeSet::from([
            "pkg:npm/%40isaacs/string-locale-compare@1.1.0",
            "pkg:npm/is-number@7.0.0",
            "pkg:npm/lang-fixture@1.0.0",
            "pkg:npm/minimist@1.2.5",
            "pkg:pypi/certifi@2024.2.2",
            "pkg:pypi/charset-normalizer@3.3.2",
            "pkg:pypi/idna@3.6",
            "pkg:pypi/requests@2.31.0",
            "pkg:pypi/typing-extensions@4.10.0",
            "pkg:pypi/urllib3@2.2.1",
        ])
    );
}

/// Writes an advisory file into `dir`.
fn advisory(dir: &Path, id: &str, record: serde_json::Value) {
    std::fs::write(dir.join(format!("{id}.json")), record.to_string()).expect("advisory");
}

/// The image's SBOM scanned against PyPI and npm advisories in OSV's format. Two carry the
/// facts of real ones: GHSA-9wx4-h78v-vm56 (requests before 2.32.0 keeps `verify=False` for a
/// session's later requests) and GHSA-xvch-5gv4-984h (minimist prototype pollution, fixed in
/// 1.2.6 and 0.2.4). The others show PEP 503 names matching (`Typing_Extensions`), a version
/// past the fix (six), and the nested is-number 6.0.0 matched apart from 7.0.0.
#[test]
fn scan_of_the_image_sbom_reports_pypi_and_npm_advisories() {
    let registry = support::shared_registry();
    let (base, _) = push_images(&registry.base);
    let bom = sbom_of(&base);
    let dir = tempdir();
    let sbom = dir.path().join("sbom.json");
    std::fs::write(&sbom, bom.to_string()).expect("sbom");
    let db = dir.path().join("db");
    std::fs::create_dir_all(&db).expect("db dir");
    let affected = |ecosystem: &str, name: &str, ranges: &[(&str, &str)]| {
        let ranges: Vec<serde_json::Value> = ranges
            .iter()
            .map(|(introduced, fixed)| {
                serde_json::json!({"type": "ECOSYSTEM", "events": [{"introduced": introduced}, {"fixed": fixed}]})
            })
            .collect();
        serde_json::json!({"package": {"ecosystem": ecosystem, "name": name}, "ranges": ranges})
    };
    advisory(
        &db,
        "GHSA-9wx4-h78v-vm56",
        serde_json::json!({
            "id": "GHSA-9wx4-h78v-vm56", "modified": "2024-05-20T20:15:00Z",
            "aliases": ["CVE-2024-35195"],
            "summary": "Requests `Session` object does not verify requests after making first request with verify=False",
            "affected": [affected("PyPI", "requests", &[("0", "2.32.0")])],
        }),
    );
    advisory(
        &db,
        "GHSA-xvch-5gv4-984h",
        serde_json::json!({
            "id": "GHSA-xvch-5gv4-984h", "modified": "2024-02-16T00:00:00Z",
            "aliases": ["CVE-2021-44906"],
            "summary": "Prototype Pollution in minimist",
            "affected": [affected("npm", "minimist", &[("0", "0.2.4"), ("1.0.0", "1.2.6")])],
        }),
    );
    advisory(
        &db,
        "TEST-PY-NAMES",
        serde_json::json!({
            "id": "TEST-PY-NAMES", "modified": "2025-01-01T00:00:00Z",
            "affected": [
                affected("PyPI", "Typing_Extensions", &[("0", "4.11.0")]),
                affected("PyPI", "six", &[("0", "1.16.0")]),
            ],
        }),
    );
    advisory(
        &db,
        "TEST-NPM-NESTED",
        serde_json::json!({
            "id": "TEST-NPM-NESTED", "modified": "2025-01-01T00:00:00Z",
            "affected": [affected("npm", "is-number", &[("0", "7.0.0")])],
        }),
    );
    let out = custody()
        .args(["--output", "json", "scan"])
        .arg(&sbom)
        .arg("--db")
        .arg(&db)
        .args(["--fail-on", "unknown"])
        .output()
        .expect("custody scan runs");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("scan json ({e}): {}", stderr(&out)));
    let found: BTreeSet<(String, String)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap_or("").to_owned(),
                f["purl"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("GHSA-9wx4-h78v-vm56", "pkg:pypi/requests@2.31.0"),
        ("GHSA-xvch-5gv4-984h", "pkg:npm/minimist@1.2.5"),
        ("TEST-NPM-NESTED", "pkg:npm/is-number@6.0.0"),
        ("TEST-PY-NAMES", "pkg:pypi/typing-extensions@4.10.0"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(found, want, "{report}");
    // Every language component was matched.
    assert_eq!(
        report["notScanned"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "--fail-on unknown refuses any finding: {}",
        stderr(&out)
    );
}

/// syft (the peer tool, `scripts/get-syft`; skipped where it is absent) reads the same image:
/// its Python and npm packages agree with custody's purl for purl. syft, too, lists the project's
/// own `package.json` beside `node_modules` and normalises Python names as PEP 503 does. The
/// one rule that differs does not arise here: a `package.json` with a name and no version is a
/// package `UNKNOWN` to syft (its compliance stub) and no package to custody.
#[test]
fn syft_finds_the_same_python_and_npm_packages() {
    let Some(syft) = syft() else {
        return;
    };
    let registry = support::shared_registry();
    let (base, upper) = push_images(&registry.base);
    for image in [base, upper] {
        let dir = tempdir();
        let syft_json = syft_scan(&syft, &image, dir.path());
        let theirs: BTreeSet<String> = syft_json["artifacts"]
            .as_array()
            .expect("artifacts")
            .iter()
            .filter_map(|a| a["purl"].as_str())
            .filter(|p| p.starts_with("pkg:pypi/") || p.starts_with("pkg:npm/"))
            .map(str::to_owned)
            .collect();
        let bom = sbom_of(&image);
        let ours: BTreeSet<String> = components(&bom)
            .iter()
            .filter_map(|c| c["purl"].as_str())
            .filter(|p| p.starts_with("pkg:pypi/") || p.starts_with("pkg:npm/"))
            .map(str::to_owned)
            .collect();
        assert!(ours.len() >= 10, "{ours:?}");
        assert_eq!(ours, theirs, "{image}");
    }
}
