//! Python lockfiles: `uv.lock`, `poetry.lock` and fully pinned `requirements.txt`.
//!
//! A requirements line that does not pin exactly one version (`name==version`) is an error, not
//! skipped: an SBOM must not name a version the file does not fix. `-r`/`-c` includes and
//! editable installs are errors too; index options are recorded as the packages' origin.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;

use serde::Deserialize;

use super::lockfile::{
    Hash, Lock, LockError, Origin, Package, RootPackage, Scope, check_count, check_nesting,
    prefixed_hex_hash, read_bounded, syntax,
};
use super::purl::{Purl, PurlType, normalise_python_name};

const PYPI_SIMPLE: &str = "https://pypi.org/simple";

fn purl(path: &Path, name: &str, version: &str, index: Option<&str>) -> Result<Purl, LockError> {
    let mut qualifiers = BTreeMap::new();
    if let Some(index) = index
        && !is_pypi(index)
    {
        qualifiers.insert("repository_url".to_owned(), index.to_owned());
    }
    Purl::new(PurlType::Pypi, name, Some(version), &qualifiers).map_err(|source| LockError::Purl {
        path: path.to_owned(),
        name: name.to_owned(),
        source,
    })
}

fn is_pypi(url: &str) -> bool {
    let u = url.trim_end_matches('/');
    u == PYPI_SIMPLE || u == "https://pypi.org" || u == "https://pypi.python.org/simple"
}

fn file_properties(files: impl IntoIterator<Item = (String, Hash)>) -> Vec<(String, String)> {
    files
        .into_iter()
        .map(|(file, h)| {
            (
                "custody:python:file-hash".to_owned(),
                format!("{file} {}:{}", h.alg, h.hex),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------- uv.lock

#[derive(Deserialize)]
struct UvLock {
    version: Option<u32>,
    #[serde(default)]
    package: Vec<UvPackage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct UvPackage {
    name: String,
    version: Option<String>,
    #[serde(default)]
    source: BTreeMap<String, String>,
    #[serde(default)]
    dependencies: Vec<UvDep>,
    #[serde(default)]
    optional_dependencies: BTreeMap<String, Vec<UvDep>>,
    #[serde(default)]
    dev_dependencies: BTreeMap<String, Vec<UvDep>>,
    sdist: Option<UvFile>,
    #[serde(default)]
    wheels: Vec<UvFile>,
}

#[derive(Deserialize)]
struct UvDep {
    name: String,
    version: Option<String>,
}

#[derive(Deserialize)]
struct UvFile {
    url: Option<String>,
    path: Option<String>,
    hash: Option<String>,
}

pub fn parse_uv(path: &Path) -> Result<Lock, LockError> {
    let text = read_bounded(path)?;
    parse_uv_str(path, &text)
}

pub(crate) fn parse_uv_str(path: &Path, text: &str) -> Result<Lock, LockError> {
    check_nesting(path, text, true)?;
    let lock: UvLock = toml::from_str(text).map_err(|e| syntax(path, "uv.lock", e))?;
    if let Some(v) = lock.version
        && v != 1
    {
        return Err(LockError::UnsupportedVersion {
            path: path.to_owned(),
            version: v.to_string(),
        });
    }
    check_count(path, lock.package.len())?;
    let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, p) in lock.package.iter().enumerate() {
        by_name
            .entry(normalise_python_name(&p.name))
            .or_default()
            .push(i);
    }
    let resolve = |dep: &UvDep| -> Result<usize, LockError> {
        let found = by_name
            .get(&normalise_python_name(&dep.name))
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .copied()
            .filter(|i| {
                dep.version.is_none()
                    || lock.package[*i].version.as_deref() == dep.version.as_deref()
            })
            .collect::<Vec<_>>();
        match found.as_slice() {
            [one] => Ok(*one),
            _ => Err(LockError::invalid(
                path,
                format!(
                    "dependency {:?} does not name exactly one package",
                    dep.name
                ),
            )),
        }
    };

    let is_root = |p: &UvPackage| {
        p.source
            .get("editable")
            .or(p.source.get("virtual"))
            .map(String::as_str)
            == Some(".")
    };
    let root_index = lock.package.iter().position(is_root);

    // Scope from reachability: required from the root's dependencies, optional via its extras,
    // excluded if only reachable through dev groups.
    let mut scope: Vec<Option<Scope>> = vec![None; lock.package.len()];
    if let Some(r) = root_index {
        let root = &lock.package[r];
        let seeds = [
            (
                Scope::Required,
                root.dependencies.iter().collect::<Vec<_>>(),
            ),
            (
                Scope::Optional,
                root.optional_dependencies.values().flatten().collect(),
            ),
            (
                Scope::Excluded,
                root.dev_dependencies.values().flatten().collect(),
            ),
        ];
        for (level, deps) in seeds {
            let mut queue: VecDeque<usize> = VecDeque::new();
            for d in deps {
                queue.push_back(resolve(d)?);
            }
            while let Some(i) = queue.pop_front() {
                if i == r || scope[i].is_some() {
                    continue;
                }
                scope[i] = Some(level);
                for d in &lock.package[i].dependencies {
                    queue.push_back(resolve(d)?);
                }
            }
        }
    }

    let mut packages = Vec::new();
    let mut new_index = vec![usize::MAX; lock.package.len()];
    for (i, p) in lock.package.iter().enumerate() {
        if Some(i) == root_index {
            continue;
        }
        new_index[i] = packages.len();
        let version = p.version.clone().ok_or_else(|| {
            LockError::invalid(path, format!("package {:?} has no version", p.name))
        })?;
        let (origin, index) = uv_origin(&p.source);
        let files = p
            .sdist
            .iter()
            .chain(&p.wheels)
            .filter_map(|f| {
                let hash = prefixed_hex_hash(f.hash.as_deref()?)?;
                let name = f.url.as_deref().or(f.path.as_deref())?;
                let name = name.rsplit('/').next().unwrap_or(name).to_owned();
                Some((name, hash))
            })
            .collect::<Vec<_>>();
        packages.push(Package {
            purl: purl(path, &p.name, &version, index.as_deref())?,
            name: normalise_python_name(&p.name),
            group: None,
            version,
            hashes: Vec::new(),
            scope: scope[i].or(Some(Scope::Required)),
            origin,
            dependencies: Some(Vec::new()),
            properties: file_properties(files),
        });
    }
    for (i, p) in lock.package.iter().enumerate() {
        if Some(i) == root_index {
            continue;
        }
        let mut deps = Vec::new();
        for d in p
            .dependencies
            .iter()
            .chain(p.optional_dependencies.values().flatten())
        {
            let j = resolve(d)?;
            if new_index[j] != usize::MAX {
                deps.push(new_index[j]);
            }
        }
        deps.sort_unstable();
        deps.dedup();
        packages[new_index[i]].dependencies = Some(deps);
    }
    let (root, direct) = match root_index {
        Some(r) => {
            let rp = &lock.package[r];
            let mut direct = Vec::new();
            for d in rp
                .dependencies
                .iter()
                .chain(rp.optional_dependencies.values().flatten())
                .chain(rp.dev_dependencies.values().flatten())
            {
                let j = resolve(d)?;
                if new_index[j] != usize::MAX {
                    direct.push(new_index[j]);
                }
            }
            direct.sort_unstable();
            direct.dedup();
            (
                Some(RootPackage {
                    name: rp.name.clone(),
                    version: rp.version.clone(),
                    purl: rp
                        .version
                        .as_deref()
                        .and_then(|v| purl(path, &rp.name, v, None).ok()),
                }),
                Some(direct),
            )
        }
        None => (None, None),
    };
    Ok(Lock {
        path: path.to_owned(),
        format: "uv.lock",
        root,
        packages,
        direct,
    })
}

fn uv_origin(source: &BTreeMap<String, String>) -> (Origin, Option<String>) {
    if let Some(registry) = source.get("registry") {
        return (
            Origin::Registry {
                url: registry.clone(),
                artifact: None,
            },
            Some(registry.clone()),
        );
    }
    if let Some(git) = source.get("git") {
        let rev = git.split_once('#').map(|(_, r)| r.to_owned());
        return (
            Origin::Git {
                url: git.clone(),
                rev,
            },
            None,
        );
    }
    if let Some(url) = source.get("url") {
        return (Origin::Url { url: url.clone() }, None);
    }
    for key in ["path", "directory", "editable", "virtual"] {
        if let Some(p) = source.get(key) {
            return (Origin::Path { path: p.clone() }, None);
        }
    }
    (Origin::Unrecorded, None)
}

// ------------------------------------------------------------------------------ poetry.lock

#[derive(Deserialize)]
struct PoetryLock {
    #[serde(default)]
    package: Vec<PoetryPackage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct PoetryPackage {
    name: String,
    version: String,
    #[serde(default)]
    optional: bool,
    category: Option<String>,
    groups: Option<Vec<String>>,
    #[serde(default)]
    files: Vec<PoetryFile>,
    #[serde(default)]
    dependencies: BTreeMap<String, toml::Value>,
    source: Option<PoetrySource>,
}

#[derive(Deserialize)]
struct PoetryFile {
    file: String,
    hash: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct PoetrySource {
    #[serde(rename = "type")]
    kind: String,
    url: Option<String>,
    resolved_reference: Option<String>,
}

pub fn parse_poetry(path: &Path) -> Result<Lock, LockError> {
    let text = read_bounded(path)?;
    parse_poetry_str(path, &text)
}

pub(crate) fn parse_poetry_str(path: &Path, text: &str) -> Result<Lock, LockError> {
    check_nesting(path, text, true)?;
    let lock: PoetryLock = toml::from_str(text).map_err(|e| syntax(path, "poetry.lock", e))?;
    check_count(path, lock.package.len())?;
    let by_name: HashMap<String, usize> = lock
        .package
        .iter()
        .enumerate()
        .map(|(i, p)| (normalise_python_name(&p.name), i))
        .collect();
    let mut packages = Vec::with_capacity(lock.package.len());
    for p in &lock.package {
        check_count(path, p.dependencies.len())?;
        let main = match (&p.groups, &p.category) {
            (Some(groups), _) => groups.iter().any(|g| g == "main"),
            (None, Some(category)) => category == "main",
            (None, None) => true,
        };
        let scope = match (main, p.optional) {
            (false, _) => Scope::Excluded,
            (true, true) => Scope::Optional,
            (true, false) => Scope::Required,
        };
        let (origin, index) = match &p.source {
            None => (
                Origin::Registry {
                    url: PYPI_SIMPLE.to_owned(),
                    artifact: None,
                },
                None,
            ),
            Some(s) => match (s.kind.as_str(), &s.url) {
                ("legacy", Some(url)) => (
                    Origin::Registry {
                        url: url.clone(),
                        artifact: None,
                    },
                    Some(url.clone()),
                ),
                ("git", Some(url)) => (
                    Origin::Git {
                        url: url.clone(),
                        rev: s.resolved_reference.clone(),
                    },
                    None,
                ),
                ("url", Some(url)) => (Origin::Url { url: url.clone() }, None),
                (_, Some(url)) => (Origin::Path { path: url.clone() }, None),
                (_, None) => (Origin::Unrecorded, None),
            },
        };
        // Dependencies on packages not in the lock (unmet markers, extras not chosen) are
        // simply not installed.
        let mut deps: Vec<usize> = p
            .dependencies
            .keys()
            .filter_map(|d| by_name.get(&normalise_python_name(d)).copied())
            .collect();
        deps.sort_unstable();
        deps.dedup();
        let files = p
            .files
            .iter()
            .filter_map(|f| Some((f.file.clone(), prefixed_hex_hash(&f.hash)?)));
        packages.push(Package {
            purl: purl(path, &p.name, &p.version, index.as_deref())?,
            name: normalise_python_name(&p.name),
            group: None,
            version: p.version.clone(),
            hashes: Vec::new(),
            scope: Some(scope),
            origin,
            dependencies: Some(deps),
            properties: file_properties(files),
        });
    }
    Ok(Lock {
        path: path.to_owned(),
        format: "poetry.lock",
        // The project itself and its direct dependencies live in pyproject.toml.
        root: None,
        packages,
        direct: None,
    })
}

// ------------------------------------------------------------------------- requirements.txt

pub fn parse_requirements(path: &Path) -> Result<Lock, LockError> {
    let text = read_bounded(path)?;
    parse_requirements_str(path, &text)
}

pub(crate) fn parse_requirements_str(path: &Path, text: &str) -> Result<Lock, LockError> {
    // Join continuation lines, remembering the first line number of each logical line.
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let (start, mut acc) = pending.take().unwrap_or((n + 1, String::new()));
        let line = strip_comment(line);
        if let Some(head) = line.strip_suffix('\\') {
            acc.push_str(head);
            acc.push(' ');
            pending = Some((start, acc));
        } else {
            acc.push_str(line);
            logical.push((start, acc));
        }
    }
    if let Some(p) = pending {
        logical.push(p);
    }
    check_count(path, logical.len())?;

    let mut index: Option<String> = None;
    let mut packages: Vec<Package> = Vec::new();
    let mut seen = HashSet::new();
    for (line, text) in logical {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let mut words = text.split_whitespace();
        let first = words.next().unwrap_or_default();
        if first.starts_with('-') {
            let (flag, inline) = match first.split_once('=') {
                Some((f, v)) => (f, Some(v.to_owned())),
                None => (first, None),
            };
            match flag {
                "-i" | "--index-url" => {
                    index = inline.or_else(|| words.next().map(str::to_owned));
                }
                "--extra-index-url" | "-f" | "--find-links" => {
                    // With several sources the origin of each package is not recorded.
                    index = Some(String::new());
                }
                "--hash" => {}
                "--no-binary" | "--only-binary" | "--prefer-binary" | "--require-hashes"
                | "--pre" | "--trusted-host" | "--no-index" => {}
                _ => {
                    return Err(LockError::UnsupportedLine {
                        path: path.to_owned(),
                        line,
                        directive: first.to_owned(),
                    });
                }
            }
            continue;
        }
        let requirement = text.split(" --").next().unwrap_or(text).trim();
        let spec = requirement.split(';').next().unwrap_or_default().trim();
        let unpinned = || LockError::Unpinned {
            path: path.to_owned(),
            line,
            requirement: requirement.to_owned(),
        };
        let (name, version) = spec.split_once("==").ok_or_else(unpinned)?;
        let name = name.split('[').next().unwrap_or_default().trim();
        let version = version.trim();
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid_name
            || version.is_empty()
            || version.starts_with('=')
            || version.contains(['*', ',', '<', '>', '!', '~', ' '])
        {
            return Err(unpinned());
        }
        let hashes: Vec<Hash> = text
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("--hash="))
            .filter_map(prefixed_hex_hash)
            .collect();
        let key = (normalise_python_name(name), version.to_owned());
        if !seen.insert(key) {
            continue;
        }
        let recorded_index = index.as_deref().filter(|i| !i.is_empty());
        let origin = match &index {
            Some(i) if i.is_empty() => Origin::Unrecorded,
            Some(i) => Origin::Registry {
                url: i.clone(),
                artifact: None,
            },
            None => Origin::Registry {
                url: PYPI_SIMPLE.to_owned(),
                artifact: None,
            },
        };
        packages.push(Package {
            purl: purl(path, name, version, recorded_index)?,
            name: normalise_python_name(name),
            group: None,
            version: version.to_owned(),
            hashes: Vec::new(),
            scope: Some(Scope::Required),
            origin,
            dependencies: None,
            properties: hashes
                .into_iter()
                .map(|h| {
                    (
                        "custody:python:allowed-hash".to_owned(),
                        format!("{}:{}", h.alg, h.hex),
                    )
                })
                .collect(),
        });
    }
    let direct = (0..packages.len()).collect();
    Ok(Lock {
        path: path.to_owned(),
        format: "requirements.txt",
        root: None,
        packages,
        // A pip-compiled file lists everything flat; all lines are what gets installed.
        direct: Some(direct),
    })
}

fn strip_comment(line: &str) -> &str {
    // `#` starts a comment at line start or after whitespace (URLs may contain `#`).
    let b = line.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_pinned_hashes_and_index() {
        let text = "# compiled\n--index-url https://pypi.internal/simple\n\
            Django_Rest==3.15.1 \\\n    --hash=sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\
            requests[socks]==2.31.0 ; python_version >= \"3.8\"  # pinned\n";
        let lock = parse_requirements_str(Path::new("requirements.txt"), text).unwrap();
        let purls: Vec<&str> = lock.packages.iter().map(|p| p.purl.as_str()).collect();
        assert_eq!(
            purls,
            [
                "pkg:pypi/django-rest@3.15.1?repository_url=https:%2F%2Fpypi.internal%2Fsimple",
                "pkg:pypi/requests@2.31.0?repository_url=https:%2F%2Fpypi.internal%2Fsimple",
            ]
        );
        assert_eq!(lock.packages[0].properties.len(), 1);
    }

    #[test]
    fn requirements_refuses_unpinned_and_includes() {
        let p = Path::new("req/requirements.txt");
        let table: [(&str, super::super::lockfile::ErrorCheck); 6] = [
            ("flask>=2\n", |e| {
                matches!(e, LockError::Unpinned { line: 1, .. })
            }),
            ("a==1\nflask\n", |e| {
                matches!(e, LockError::Unpinned { line: 2, .. })
            }),
            ("flask==2.*\n", |e| matches!(e, LockError::Unpinned { .. })),
            ("flask===2.0\n", |e| matches!(e, LockError::Unpinned { .. })),
            (
                "-r base.txt\n",
                |e| matches!(e, LockError::UnsupportedLine { directive, .. } if directive == "-r"),
            ),
            ("-e .\n", |e| matches!(e, LockError::UnsupportedLine { .. })),
        ];
        for (input, check) in table {
            let err = parse_requirements_str(p, input).unwrap_err();
            assert!(check(&err), "{input:?} gave {err:?}");
            assert!(err.to_string().contains("req/requirements.txt"));
        }
    }

    #[test]
    fn malformed_uv_and_poetry_name_the_file() {
        let uv = Path::new("py/uv.lock");
        let err = parse_uv_str(uv, "version = 1\n[[package]]\nname = 1\n").unwrap_err();
        assert!(matches!(err, LockError::Syntax { .. }), "{err:?}");
        let err = parse_uv_str(uv, "version = 7\n").unwrap_err();
        assert!(
            matches!(err, LockError::UnsupportedVersion { .. }),
            "{err:?}"
        );
        let err = parse_uv_str(
            uv,
            "version = 1\n[[package]]\nname = \"a\"\nversion = \"1\"\ndependencies = [{ name = \"ghost\" }]\n[[package]]\nname = \"r\"\nversion = \"0\"\nsource = { editable = \".\" }\ndependencies = [{ name = \"a\" }]\n",
        )
        .unwrap_err();
        assert!(
            matches!(&err, LockError::Invalid { message, .. } if message.contains("ghost")),
            "{err:?}"
        );
        assert!(err.to_string().contains("py/uv.lock"));
        let poetry = Path::new("py/poetry.lock");
        let err = parse_poetry_str(poetry, "[[package]]\nname = \"a\"\n").unwrap_err();
        assert!(matches!(err, LockError::Syntax { .. }), "{err:?}");
        assert!(err.to_string().contains("py/poetry.lock"));
    }
}
