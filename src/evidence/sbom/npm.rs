//! `package-lock.json` / `npm-shrinkwrap.json`, lockfile versions 2 and 3 (the `packages`
//! map): scoped packages, nested `node_modules`, dev and optional flags, workspace links.
//! Version 1 files (only the legacy `dependencies` tree) are refused.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use super::lockfile::{
    Lock, LockError, Origin, Package, RootPackage, Scope, check_count, check_nesting, read_bounded,
    sri_hashes, syntax,
};
use super::purl::{Purl, PurlType};

const NPM_REGISTRY: &str = "https://registry.npmjs.org/";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PackageLock {
    lockfile_version: Option<u32>,
    name: Option<String>,
    version: Option<String>,
    packages: Option<BTreeMap<String, Entry>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Entry {
    name: Option<String>,
    version: Option<String>,
    resolved: Option<String>,
    integrity: Option<String>,
    #[serde(default)]
    link: bool,
    #[serde(default)]
    dev: bool,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    dev_optional: bool,
    #[serde(default)]
    dependencies: BTreeMap<String, String>,
    #[serde(default)]
    optional_dependencies: BTreeMap<String, String>,
    #[serde(default)]
    peer_dependencies: BTreeMap<String, String>,
    #[serde(default)]
    dev_dependencies: BTreeMap<String, String>,
}

pub fn parse(path: &Path) -> Result<Lock, LockError> {
    let text = read_bounded(path)?;
    parse_str(path, &text)
}

pub(crate) fn parse_str(path: &Path, text: &str) -> Result<Lock, LockError> {
    check_nesting(path, text, false)?;
    let lock: PackageLock =
        serde_json::from_str(text).map_err(|e| syntax(path, "package-lock.json", e))?;
    let version = lock.lockfile_version.unwrap_or(1);
    let entries = match (version, lock.packages) {
        (2 | 3, Some(packages)) => packages,
        _ => {
            return Err(LockError::UnsupportedVersion {
                path: path.to_owned(),
                version: version.to_string(),
            });
        }
    };
    check_count(path, entries.len())?;

    // Keys of installed packages (everything but the root ""), links resolved to targets.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut keys: Vec<&str> = Vec::new();
    for (key, entry) in &entries {
        if key.is_empty() || entry.link {
            continue;
        }
        index.insert(key.as_str(), keys.len());
        keys.push(key.as_str());
    }
    let links: HashMap<&str, &str> = entries
        .iter()
        .filter(|(_, e)| e.link)
        .filter_map(|(k, e)| Some((k.as_str(), e.resolved.as_deref()?)))
        .collect();
    let lookup = |key: &str| -> Option<usize> {
        let target = links.get(key).copied().unwrap_or(key);
        index.get(target).copied()
    };

    let mut packages = Vec::with_capacity(keys.len());
    for key in &keys {
        let entry = &entries[*key];
        let name = match &entry.name {
            Some(n) => n.clone(),
            None => package_name(key)
                .ok_or_else(|| {
                    LockError::invalid(path, format!("cannot tell the name of {key:?}"))
                })?
                .to_owned(),
        };
        let version = entry
            .version
            .clone()
            .ok_or_else(|| LockError::invalid(path, format!("package {key:?} has no version")))?;
        let in_node_modules = key.starts_with("node_modules/") || key.contains("/node_modules/");
        let (origin, qualifiers) = origin(key, entry, in_node_modules, &name);
        let purl =
            Purl::new(PurlType::Npm, &name, Some(&version), &qualifiers).map_err(|source| {
                LockError::Purl {
                    path: path.to_owned(),
                    name: name.clone(),
                    source,
                }
            })?;
        let scope = if entry.dev {
            Scope::Excluded
        } else if entry.optional || entry.dev_optional {
            Scope::Optional
        } else {
            Scope::Required
        };
        let workspace = !in_node_modules;
        let mut deps = Vec::new();
        let mut wanted: Vec<(&String, bool)> = entry
            .dependencies
            .keys()
            .map(|d| (d, true))
            .chain(entry.optional_dependencies.keys().map(|d| (d, false)))
            .chain(entry.peer_dependencies.keys().map(|d| (d, false)))
            .collect();
        if workspace {
            wanted.extend(entry.dev_dependencies.keys().map(|d| (d, false)));
        }
        check_count(path, wanted.len())?;
        for (dep, _required) in wanted {
            // A missing optional or peer dependency was not installed; a missing regular one
            // was deduplicated away by npm in a way the lock does not show: both are skipped.
            if let Some(found) = find(key, dep, &lookup) {
                deps.push(found);
            }
        }
        deps.sort_unstable();
        deps.dedup();
        let (group, short) = match name.split_once('/') {
            Some((scope, short)) if scope.starts_with('@') => {
                (Some(scope.to_owned()), short.to_owned())
            }
            _ => (None, name.clone()),
        };
        packages.push(Package {
            purl,
            name: short,
            group,
            version,
            hashes: entry
                .integrity
                .as_deref()
                .map(sri_hashes)
                .unwrap_or_default(),
            scope: Some(scope),
            origin,
            dependencies: Some(deps),
            properties: Vec::new(),
        });
    }

    let root_entry = entries.get("");
    let mut direct = Vec::new();
    if let Some(root) = root_entry {
        for dep in root
            .dependencies
            .keys()
            .chain(root.optional_dependencies.keys())
            .chain(root.peer_dependencies.keys())
            .chain(root.dev_dependencies.keys())
        {
            if let Some(found) = find("", dep, &lookup) {
                direct.push(found);
            }
        }
    }
    direct.sort_unstable();
    direct.dedup();
    let root_name = root_entry.and_then(|e| e.name.clone()).or(lock.name);
    let root_version = root_entry.and_then(|e| e.version.clone()).or(lock.version);
    let root = root_name.map(|name| RootPackage {
        purl: Purl::new(
            PurlType::Npm,
            &name,
            root_version.as_deref(),
            &BTreeMap::new(),
        )
        .ok(),
        name,
        version: root_version,
    });

    Ok(Lock {
        path: path.to_owned(),
        format: "package-lock.json",
        root,
        packages,
        direct: Some(direct),
    })
}

/// `node_modules/a/node_modules/@s/b` → `@s/b`.
fn package_name(key: &str) -> Option<&str> {
    let tail = key.rsplit_once("node_modules/").map(|(_, t)| t)?;
    (!tail.is_empty()).then_some(tail)
}

/// Node's resolution: `<from>/node_modules/<dep>`, then each ancestor's `node_modules`.
fn find(from: &str, dep: &str, lookup: &impl Fn(&str) -> Option<usize>) -> Option<usize> {
    let mut base = from.to_owned();
    loop {
        let candidate = if base.is_empty() {
            format!("node_modules/{dep}")
        } else {
            format!("{base}/node_modules/{dep}")
        };
        if let Some(found) = lookup(&candidate) {
            return Some(found);
        }
        if base.is_empty() {
            return None;
        }
        // Step out of the innermost `node_modules/<name>` (or the workspace folder).
        base = match base.rfind("/node_modules/") {
            Some(at) => base[..at].to_owned(),
            None => String::new(),
        };
    }
}

fn origin(
    key: &str,
    entry: &Entry,
    in_node_modules: bool,
    name: &str,
) -> (Origin, BTreeMap<String, String>) {
    let mut qualifiers = BTreeMap::new();
    let origin = match entry.resolved.as_deref() {
        _ if !in_node_modules => Origin::Path {
            path: key.to_owned(),
        },
        Some(r) if r.starts_with("git+") || r.starts_with("git:") || r.starts_with("github:") => {
            let (url, rev) = match r.split_once('#') {
                Some((u, rev)) => (u.to_owned(), Some(rev.to_owned())),
                None => (r.to_owned(), None),
            };
            qualifiers.insert("vcs_url".to_owned(), r.replacen('#', "@", 1));
            Origin::Git { url, rev }
        }
        Some(r) if r.starts_with("file:") => Origin::Path {
            path: r.trim_start_matches("file:").to_owned(),
        },
        Some(r) if r.starts_with("https://") || r.starts_with("http://") => {
            let marker = format!("/{name}/-/");
            match r.find(&marker) {
                Some(at) => {
                    let registry = format!("{}/", &r[..at]);
                    if registry != NPM_REGISTRY {
                        qualifiers.insert(
                            "repository_url".to_owned(),
                            registry.trim_end_matches('/').to_owned(),
                        );
                    }
                    Origin::Registry {
                        url: registry,
                        artifact: Some(r.to_owned()),
                    }
                }
                None => {
                    qualifiers.insert("download_url".to_owned(), r.to_owned());
                    Origin::Url { url: r.to_owned() }
                }
            }
        }
        Some(r) => Origin::Path { path: r.to_owned() },
        None => Origin::Unrecorded,
    };
    (origin, qualifiers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: &str = r#"{
  "name": "web", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
  "packages": {
    "": { "name": "web", "version": "1.0.0", "workspaces": ["packages/*"],
          "dependencies": { "@babel/core": "^7", "a": "^1" },
          "devDependencies": { "jest": "^29" } },
    "node_modules/@babel/core": { "version": "7.24.0",
      "resolved": "https://registry.npmjs.org/@babel/core/-/core-7.24.0.tgz",
      "integrity": "sha1-2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "dependencies": { "a": "^2" } },
    "node_modules/@babel/core/node_modules/a": { "version": "2.0.0",
      "resolved": "https://registry.npmjs.org/a/-/a-2.0.0.tgz" },
    "node_modules/a": { "version": "1.0.0",
      "resolved": "https://npm.corp.example/a/-/a-1.0.0.tgz" },
    "node_modules/jest": { "version": "29.0.0", "dev": true,
      "resolved": "https://registry.npmjs.org/jest/-/jest-29.0.0.tgz" },
    "node_modules/fsevents": { "version": "2.3.3", "optional": true },
    "node_modules/lib": { "resolved": "packages/lib", "link": true },
    "packages/lib": { "name": "lib", "version": "0.1.0", "dependencies": { "a": "^1" } }
  }
}"#;

    #[test]
    fn v3_nested_scoped_dev_and_links() {
        let lock = parse_str(Path::new("package-lock.json"), V3).unwrap();
        let by_purl: BTreeMap<&str, &Package> =
            lock.packages.iter().map(|p| (p.purl.as_str(), p)).collect();
        let purls: Vec<&str> = by_purl.keys().copied().collect();
        assert_eq!(
            purls,
            [
                "pkg:npm/%40babel/core@7.24.0",
                "pkg:npm/a@1.0.0?repository_url=https:%2F%2Fnpm.corp.example",
                "pkg:npm/a@2.0.0",
                "pkg:npm/fsevents@2.3.3",
                "pkg:npm/jest@29.0.0",
                "pkg:npm/lib@0.1.0",
            ]
        );
        let core = by_purl["pkg:npm/%40babel/core@7.24.0"];
        assert_eq!(core.group.as_deref(), Some("@babel"));
        assert_eq!(core.name, "core");
        // The nested a@2 wins over the hoisted a@1 for @babel/core.
        let core_deps: Vec<&str> = core
            .dependencies
            .as_ref()
            .unwrap()
            .iter()
            .map(|i| lock.packages[*i].purl.as_str())
            .collect();
        assert_eq!(core_deps, ["pkg:npm/a@2.0.0"]);
        assert_eq!(by_purl["pkg:npm/jest@29.0.0"].scope, Some(Scope::Excluded));
        assert_eq!(
            by_purl["pkg:npm/fsevents@2.3.3"].scope,
            Some(Scope::Optional)
        );
        assert!(matches!(
            by_purl["pkg:npm/lib@0.1.0"].origin,
            Origin::Path { .. }
        ));
        assert_eq!(lock.root.as_ref().unwrap().name, "web");
        let direct: Vec<&str> = lock
            .direct
            .as_ref()
            .unwrap()
            .iter()
            .map(|i| lock.packages[*i].purl.as_str())
            .collect();
        assert_eq!(direct.len(), 3, "{direct:?}");
    }

    #[test]
    fn malformed_inputs_are_errors_naming_the_file() {
        let p = Path::new("x/package-lock.json");
        let table: [(&str, super::super::lockfile::ErrorCheck); 5] = [
            (
                r#"{"lockfileVersion": 1, "dependencies": {}}"#,
                |e| matches!(e, LockError::UnsupportedVersion { version, .. } if version == "1"),
            ),
            (
                r#"{"lockfileVersion": 3, "packages": {"node_modules/a": {"version": 1}}}"#,
                |e| matches!(e, LockError::Syntax { .. }),
            ),
            (
                r#"{"lockfileVersion": 3, "packages": {"node_modules/a": {}}}"#,
                |e| matches!(e, LockError::Invalid { message, .. } if message.contains("no version")),
            ),
            ("{\"lockfileVersion\": 3,", |e| {
                matches!(e, LockError::Syntax { .. })
            }),
            (
                "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
                |e| matches!(e, LockError::TooDeep { .. }),
            ),
        ];
        for (input, check) in table {
            let err = parse_str(p, input).unwrap_err();
            assert!(check(&err), "{input:?} gave {err:?}");
            assert!(err.to_string().contains("x/package-lock.json"), "{err}");
        }
    }
}
