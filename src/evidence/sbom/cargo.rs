//! `Cargo.lock` (format versions 1 to 4): crates with their source (crates.io, another
//! registry, git, path), checksum and dependency graph.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use super::lockfile::{
    Hash, Lock, LockError, Origin, Package, RootPackage, Scope, check_count, check_nesting,
    read_bounded, syntax,
};
use super::purl::{Purl, PurlType};

/// crates.io as git index and as sparse index.
const CRATES_IO: [&str; 2] = [
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];

#[derive(Deserialize)]
struct CargoLock {
    version: Option<u32>,
    #[serde(default)]
    package: Vec<CargoPackage>,
}

#[derive(Deserialize)]
struct CargoPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
}

/// Parses `Cargo.lock`; when a `Cargo.toml` sits beside it, its `[dev-dependencies]` mark the
/// crates only they pull in as scope `excluded` (the lockfile alone cannot tell).
pub fn parse(path: &Path) -> Result<Lock, LockError> {
    let text = read_bounded(path)?;
    let mut lock = parse_str(path, &text)?;
    let manifest = path.with_file_name("Cargo.toml");
    if manifest.is_file() {
        let text = read_bounded(&manifest)?;
        let kinds = dependency_kinds(&manifest, &text)?;
        apply_scopes(&mut lock, &kinds);
    }
    Ok(lock)
}

/// Names of the manifest's normal/build dependencies and of its dev-dependencies (the package
/// name when a dependency is renamed), including `[target.*]` tables.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct DependencyKinds {
    pub runtime: HashSet<String>,
    pub dev: HashSet<String>,
}

pub(crate) fn dependency_kinds(path: &Path, text: &str) -> Result<DependencyKinds, LockError> {
    check_nesting(path, text, true)?;
    let manifest: toml::Table = toml::from_str(text).map_err(|e| syntax(path, "Cargo.toml", e))?;
    let mut kinds = DependencyKinds::default();
    let mut tables = vec![&manifest];
    if let Some(toml::Value::Table(targets)) = manifest.get("target") {
        tables.extend(targets.values().filter_map(toml::Value::as_table));
    }
    for table in tables {
        for (key, dev) in [
            ("dependencies", false),
            ("build-dependencies", false),
            ("dev-dependencies", true),
        ] {
            let Some(toml::Value::Table(deps)) = table.get(key) else {
                continue;
            };
            for (name, spec) in deps {
                let real = spec
                    .get("package")
                    .and_then(toml::Value::as_str)
                    .unwrap_or(name)
                    .to_owned();
                if dev {
                    kinds.dev.insert(real);
                } else {
                    kinds.runtime.insert(real);
                }
            }
        }
    }
    Ok(kinds)
}

/// Required: reachable from a normal or build dependency of the root. Excluded: reachable only
/// from dev-dependencies. Anything else keeps no scope.
fn apply_scopes(lock: &mut Lock, kinds: &DependencyKinds) {
    let Some(direct) = lock.direct.clone() else {
        return;
    };
    let mut scope: Vec<Option<Scope>> = vec![None; lock.packages.len()];
    for (level, names) in [
        (Scope::Required, &kinds.runtime),
        (Scope::Excluded, &kinds.dev),
    ] {
        let mut stack: Vec<usize> = direct
            .iter()
            .copied()
            .filter(|d| names.contains(&lock.packages[*d].name))
            .collect();
        while let Some(i) = stack.pop() {
            if scope[i].is_some() {
                continue;
            }
            scope[i] = Some(level);
            stack.extend(lock.packages[i].dependencies.iter().flatten().copied());
        }
    }
    for (package, scope) in lock.packages.iter_mut().zip(scope) {
        package.scope = scope;
    }
}

pub(crate) fn parse_str(path: &Path, text: &str) -> Result<Lock, LockError> {
    check_nesting(path, text, true)?;
    let lock: CargoLock = toml::from_str(text).map_err(|e| syntax(path, "Cargo.lock", e))?;
    if let Some(v) = lock.version
        && v > 4
    {
        return Err(LockError::UnsupportedVersion {
            path: path.to_owned(),
            version: v.to_string(),
        });
    }
    check_count(path, lock.package.len())?;

    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in lock.package.iter().enumerate() {
        by_name.entry(p.name.as_str()).or_default().push(i);
    }

    let mut packages = Vec::with_capacity(lock.package.len());
    for p in &lock.package {
        check_count(path, p.dependencies.len())?;
        let (origin, qualifiers) = origin(p.source.as_deref());
        let purl = Purl::new(PurlType::Cargo, &p.name, Some(&p.version), &qualifiers).map_err(
            |source| LockError::Purl {
                path: path.to_owned(),
                name: p.name.clone(),
                source,
            },
        )?;
        let mut hashes = Vec::new();
        if let Some(sum) = &p.checksum {
            if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(LockError::invalid(
                    path,
                    format!("package {} has checksum {sum:?}, not 64 hex digits", p.name),
                ));
            }
            hashes.push(Hash {
                alg: "SHA-256",
                hex: sum.to_ascii_lowercase(),
            });
        }
        let mut deps = Vec::with_capacity(p.dependencies.len());
        for dep in &p.dependencies {
            deps.push(resolve(path, &lock.package, &by_name, dep)?);
        }
        deps.sort_unstable();
        deps.dedup();
        packages.push(Package {
            purl,
            name: p.name.clone(),
            group: None,
            version: p.version.clone(),
            hashes,
            // Cargo.lock does not tell dev from normal dependencies.
            scope: None,
            origin,
            dependencies: Some(deps),
            properties: Vec::new(),
        });
    }

    // The root is the one path package no other package depends on (a single-crate project);
    // a workspace with several such members has no single root.
    let depended: std::collections::HashSet<usize> = packages
        .iter()
        .flat_map(|p| p.dependencies.iter().flatten().copied())
        .collect();
    let roots: Vec<usize> = (0..packages.len())
        .filter(|i| lock.package[*i].source.is_none() && !depended.contains(i))
        .collect();
    let (root, direct) = match roots.as_slice() {
        [only] => {
            let p = packages.remove(*only);
            let direct = renumber(p.dependencies.clone().unwrap_or_default(), *only);
            for other in &mut packages {
                if let Some(deps) = &mut other.dependencies {
                    *deps = renumber(std::mem::take(deps), *only);
                }
            }
            (
                Some(RootPackage {
                    name: p.name,
                    version: Some(p.version),
                    purl: Some(p.purl),
                }),
                Some(direct),
            )
        }
        _ => (None, None),
    };

    Ok(Lock {
        path: path.to_owned(),
        format: "Cargo.lock",
        root,
        packages,
        direct,
    })
}

/// Indices after removing `removed` from the list.
fn renumber(deps: Vec<usize>, removed: usize) -> Vec<usize> {
    deps.into_iter()
        .filter(|d| *d != removed)
        .map(|d| if d > removed { d - 1 } else { d })
        .collect()
}

fn origin(source: Option<&str>) -> (Origin, BTreeMap<String, String>) {
    let mut qualifiers = BTreeMap::new();
    let origin = match source {
        None => Origin::Path {
            path: "(workspace or path dependency)".to_owned(),
        },
        Some(s) if CRATES_IO.contains(&s) => Origin::Registry {
            url: s.to_owned(),
            artifact: None,
        },
        Some(s) if s.starts_with("git+") => {
            let (url, rev) = match s.split_once('#') {
                Some((url, rev)) => (url, Some(rev.to_owned())),
                None => (s, None),
            };
            // `?branch=`/`?tag=`/`?rev=` say what was asked for; the fragment is what was used.
            let bare = url.split('?').next().unwrap_or(url);
            let vcs = match &rev {
                Some(rev) => format!("{bare}@{rev}"),
                None => bare.to_owned(),
            };
            qualifiers.insert("vcs_url".to_owned(), vcs);
            Origin::Git {
                url: url.to_owned(),
                rev,
            }
        }
        Some(s) => {
            let url = s
                .strip_prefix("registry+")
                .or_else(|| s.strip_prefix("sparse+"))
                .unwrap_or(s);
            qualifiers.insert("repository_url".to_owned(), url.to_owned());
            Origin::Registry {
                url: s.to_owned(),
                artifact: None,
            }
        }
    };
    (origin, qualifiers)
}

/// A dependency entry is `name`, `name version` or `name version (source)`.
fn resolve(
    path: &Path,
    packages: &[CargoPackage],
    by_name: &HashMap<&str, Vec<usize>>,
    dep: &str,
) -> Result<usize, LockError> {
    let mut parts = dep.splitn(3, ' ');
    let name = parts.next().unwrap_or_default();
    let version = parts.next();
    let source = parts
        .next()
        .map(|s| s.trim_start_matches('(').trim_end_matches(')'));
    let candidates = by_name.get(name).map(Vec::as_slice).unwrap_or_default();
    let matching: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|i| version.is_none_or(|v| packages[*i].version == v))
        .filter(|i| source.is_none_or(|s| packages[*i].source.as_deref() == Some(s)))
        .collect();
    match matching.as_slice() {
        [one] => Ok(*one),
        [] => Err(LockError::invalid(
            path,
            format!("dependency {dep:?} names no package in the lockfile"),
        )),
        _ => Err(LockError::invalid(
            path,
            format!("dependency {dep:?} is ambiguous"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["rand 0.8.5", "rand 0.9.0", "mygit", "inhouse"]

[[package]]
name = "rand"
version = "0.8.5"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "34af8d1a0e25924bc5b7c43c079c942339d8f0a8b57c39049bef581b46327404"

[[package]]
name = "rand"
version = "0.9.0"
source = "sparse+https://index.crates.io/"
checksum = "3779b94aeb87e8bd4e834cee3650289ee9e0d5677f976ecdb6d219e5f4f6cd94"
dependencies = ["rand 0.8.5 (registry+https://github.com/rust-lang/crates.io-index)"]

[[package]]
name = "mygit"
version = "1.0.0"
source = "git+https://github.com/o/mygit?branch=main#0123456789abcdef0123456789abcdef01234567"

[[package]]
name = "inhouse"
version = "2.0.0"
source = "registry+https://my-registry.example/index"
checksum = "0000000000000000000000000000000000000000000000000000000000000000"
"#;

    #[test]
    fn parses_sources_checksums_graph_and_root() {
        let lock = parse_str(Path::new("Cargo.lock"), LOCK).unwrap();
        let root = lock.root.as_ref().unwrap();
        assert_eq!(root.purl.as_ref().unwrap().as_str(), "pkg:cargo/app@0.1.0");
        let purls: Vec<&str> = lock.packages.iter().map(|p| p.purl.as_str()).collect();
        assert_eq!(
            purls,
            [
                "pkg:cargo/rand@0.8.5",
                "pkg:cargo/rand@0.9.0",
                "pkg:cargo/mygit@1.0.0?vcs_url=git%2Bhttps:%2F%2Fgithub.com%2Fo%2Fmygit%400123456789abcdef0123456789abcdef01234567",
                "pkg:cargo/inhouse@2.0.0?repository_url=https:%2F%2Fmy-registry.example%2Findex",
            ]
        );
        assert_eq!(lock.direct.as_deref(), Some(&[0, 1, 2, 3][..]));
        assert_eq!(lock.packages[1].dependencies.as_deref(), Some(&[0][..]));
        assert_eq!(lock.packages[0].hashes[0].alg, "SHA-256");
        assert!(matches!(lock.packages[2].origin, Origin::Git { .. }));
    }

    #[test]
    fn manifest_dev_dependencies_become_excluded() {
        let manifest = r#"
[package]
name = "app"
[dependencies]
rng = { package = "rand", version = "0.9" }
[target.'cfg(unix)'.dependencies]
mygit = { git = "https://github.com/o/mygit" }
[dev-dependencies]
rand = "0.8"
inhouse = "2"
"#;
        let kinds = dependency_kinds(Path::new("Cargo.toml"), manifest).unwrap();
        assert!(kinds.runtime.contains("rand") && kinds.runtime.contains("mygit"));
        assert!(kinds.dev.contains("inhouse"));
        let mut lock = parse_str(Path::new("Cargo.lock"), LOCK).unwrap();
        apply_scopes(&mut lock, &kinds);
        let scopes: Vec<Option<Scope>> = lock.packages.iter().map(|p| p.scope).collect();
        // rand 0.8.5 is reachable from rand 0.9.0 (runtime), so it stays required.
        assert_eq!(
            scopes,
            [
                Some(Scope::Required),
                Some(Scope::Required),
                Some(Scope::Required),
                Some(Scope::Excluded)
            ]
        );
        assert!(matches!(
            dependency_kinds(Path::new("x/Cargo.toml"), "[dependencies\n"),
            Err(LockError::Syntax { path, .. }) if path == Path::new("x/Cargo.toml")
        ));
    }

    #[test]
    fn malformed_inputs_are_errors_naming_the_file() {
        let p = Path::new("bad/Cargo.lock");
        let table: [(&str, super::super::lockfile::ErrorCheck); 6] = [
            ("[[package]]\nname = 3\nversion = \"1\"\n", |e| {
                matches!(e, LockError::Syntax { .. })
            }),
            ("this is not toml = = =", |e| {
                matches!(e, LockError::Syntax { .. })
            }),
            (
                "version = 9\n",
                |e| matches!(e, LockError::UnsupportedVersion { version, .. } if version == "9"),
            ),
            (
                "[[package]]\nname = \"a\"\nversion = \"1\"\ndependencies = [\"ghost\"]\n",
                |e| matches!(e, LockError::Invalid { message, .. } if message.contains("ghost")),
            ),
            (
                "[[package]]\nname = \"a\"\nversion = \"1\"\nsource = \"registry+x\"\nchecksum = \"zz\"\n",
                |e| matches!(e, LockError::Invalid { .. }),
            ),
            (
                "a = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]",
                |e| matches!(e, LockError::TooDeep { .. }),
            ),
        ];
        for (input, check) in table {
            let err = parse_str(p, input).unwrap_err();
            assert!(check(&err), "{input:?} gave {err:?}");
            assert!(err.to_string().contains("bad/Cargo.lock"), "{err}");
        }
    }
}
