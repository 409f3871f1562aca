//! `go.mod` plus the `go.sum` beside it: every required module (after `replace`), direct or
//! `// indirect`, with its `go.sum` `h1:` hash as a property. Go records no module graph in these
//! files, so only the root's direct requirements become dependency edges.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::lockfile::{
    Lock, LockError, Origin, Package, RootPackage, Scope, check_count, read_bounded,
};
use super::purl::{Purl, PurlType};

struct Require {
    path: String,
    version: String,
    indirect: bool,
}

enum Replacement {
    Module { path: String, version: String },
    Dir(String),
}

pub fn parse(path: &Path) -> Result<Lock, LockError> {
    let text = read_bounded(path)?;
    let sum_path = path.with_file_name("go.sum");
    let sum = match sum_path.exists() {
        true => Some(read_bounded(&sum_path)?),
        false => None,
    };
    parse_str(path, &text, sum.as_deref())
}

pub(crate) fn parse_str(path: &Path, gomod: &str, gosum: Option<&str>) -> Result<Lock, LockError> {
    let mut module = None;
    let mut requires = Vec::new();
    // (path, Some(version) or None for all versions) → replacement
    let mut replaces: HashMap<(String, Option<String>), Replacement> = HashMap::new();
    let mut block: Option<String> = None;

    for (n, raw) in gomod.lines().enumerate() {
        let line_no = n + 1;
        let (code, comment) = match raw.split_once("//") {
            Some((c, k)) => (c.trim(), k.trim()),
            None => (raw.trim(), ""),
        };
        if code.is_empty() {
            continue;
        }
        if code == ")" {
            block = None;
            continue;
        }
        let (verb, rest) = match &block {
            Some(verb) => (verb.clone(), code),
            None => {
                let (verb, rest) = code.split_once(char::is_whitespace).unwrap_or((code, ""));
                let rest = rest.trim();
                if rest == "(" {
                    block = Some(verb.to_owned());
                    continue;
                }
                (verb.to_owned(), rest)
            }
        };
        let fields = tokens(rest);
        let bad = || LockError::invalid(path, format!("line {line_no}: cannot read {raw:?}"));
        match verb.as_str() {
            "module" => module = Some(fields.first().ok_or_else(bad)?.clone()),
            "require" => {
                let [p, v] = fields.as_slice() else {
                    return Err(bad());
                };
                requires.push(Require {
                    path: p.clone(),
                    version: v.clone(),
                    indirect: comment.split(';').any(|c| c.trim() == "indirect"),
                });
                check_count(path, requires.len())?;
            }
            "replace" => {
                let arrow = fields.iter().position(|f| f == "=>").ok_or_else(bad)?;
                let (old, new) = fields.split_at(arrow);
                let new = &new[1..];
                let key = match old {
                    [p] => (p.clone(), None),
                    [p, v] => (p.clone(), Some(v.clone())),
                    _ => return Err(bad()),
                };
                let replacement = match new {
                    [dir] => Replacement::Dir(dir.clone()),
                    [p, v] => Replacement::Module {
                        path: p.clone(),
                        version: v.clone(),
                    },
                    _ => return Err(bad()),
                };
                replaces.insert(key, replacement);
                check_count(path, replaces.len())?;
            }
            "go" | "toolchain" | "exclude" | "retract" | "godebug" | "tool" | "ignore" => {}
            other => {
                return Err(LockError::invalid(
                    path,
                    format!("line {line_no}: unknown directive {other:?}"),
                ));
            }
        }
    }
    let module = module.ok_or_else(|| LockError::invalid(path, "no module directive"))?;

    let mut sums: HashMap<(&str, &str), &str> = HashMap::new();
    for line in gosum.unwrap_or_default().lines() {
        let mut parts = line.split_whitespace();
        if let (Some(m), Some(v), Some(h)) = (parts.next(), parts.next(), parts.next()) {
            sums.insert((m, v), h);
        }
    }

    let mut packages = Vec::new();
    let mut direct = Vec::new();
    for req in &requires {
        let replacement = replaces
            .get(&(req.path.clone(), Some(req.version.clone())))
            .or_else(|| replaces.get(&(req.path.clone(), None)));
        let mut properties = vec![("custody:go:module-path".to_owned(), req.path.clone())];
        let (mod_path, version, origin) = match replacement {
            None => (req.path.clone(), req.version.clone(), Origin::Unrecorded),
            Some(Replacement::Module {
                path: p,
                version: v,
            }) => {
                properties.push((
                    "custody:go:replaces".to_owned(),
                    format!("{} {}", req.path, req.version),
                ));
                (p.clone(), v.clone(), Origin::Unrecorded)
            }
            Some(Replacement::Dir(dir)) => {
                properties.push((
                    "custody:go:replaces".to_owned(),
                    format!("{} {}", req.path, req.version),
                ));
                (
                    req.path.clone(),
                    req.version.clone(),
                    Origin::Path { path: dir.clone() },
                )
            }
        };
        if mod_path.bytes().any(|b| b.is_ascii_uppercase()) {
            // The purl is lowercase (purl spec), which folds paths that differ only in case;
            // the escaped form (as in the module cache and proxy URLs) keeps them apart.
            properties.push((
                "custody:go:escaped-path".to_owned(),
                escape_module_path(&mod_path),
            ));
        }
        if let Some(h1) = sums.get(&(mod_path.as_str(), version.as_str())) {
            properties.push(("custody:go:sum".to_owned(), (*h1).to_owned()));
        }
        let purl = Purl::new(
            PurlType::Golang,
            &mod_path,
            Some(&version),
            &BTreeMap::new(),
        )
        .map_err(|source| LockError::Purl {
            path: path.to_owned(),
            name: mod_path.clone(),
            source,
        })?;
        if !req.indirect {
            direct.push(packages.len());
        }
        let (group, name) = match mod_path.rsplit_once('/') {
            Some((g, n)) => (Some(g.to_owned()), n.to_owned()),
            None => (None, mod_path.clone()),
        };
        packages.push(Package {
            purl,
            name,
            group,
            version,
            hashes: Vec::new(),
            scope: Some(Scope::Required),
            origin,
            dependencies: None,
            properties,
        });
    }

    Ok(Lock {
        path: path.to_owned(),
        format: "go.mod",
        root: Some(RootPackage {
            purl: Purl::new(PurlType::Golang, &module, None, &BTreeMap::new()).ok(),
            name: module,
            version: None,
        }),
        packages,
        direct: Some(direct),
    })
}

/// Go's module path escaping: every uppercase letter becomes `!` and its lowercase
/// (`github.com/BurntSushi/toml` → `github.com/!burnt!sushi/toml`).
pub fn escape_module_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits on whitespace, honouring Go's "quoted" and `raw` strings.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '`' {
            chars.next();
            let mut tok = String::new();
            while let Some(d) = chars.next() {
                if d == c {
                    break;
                }
                if d == '\\' && c == '"' {
                    if let Some(e) = chars.next() {
                        tok.push(e);
                    }
                    continue;
                }
                tok.push(d);
            }
            out.push(tok);
        } else {
            let mut tok = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_whitespace() {
                    break;
                }
                tok.push(d);
                chars.next();
            }
            out.push(tok);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOMOD: &str = r#"module example.com/app

go 1.22

require (
	github.com/BurntSushi/toml v1.3.2
	golang.org/x/text v0.14.0 // indirect
	"example.com/quoted" v1.0.0
	example.com/old v1.0.0
	example.com/local v0.0.0
)

require github.com/pkg/errors v0.9.1

replace example.com/old => example.com/new v1.1.0

replace example.com/local v0.0.0 => ../local
"#;

    const GOSUM: &str = "github.com/BurntSushi/toml v1.3.2 h1:o7IhLm0Msx3BaB+n3Ag7L8EVlByGnpq14C4YWiu/gL8=\n\
github.com/BurntSushi/toml v1.3.2/go.mod h1:CxXYINrC8qIiEnFrOxCa7Jy5BFHlXnUU2pbicEuybxQ=\n";

    #[test]
    fn requires_replaces_and_sums() {
        let lock = parse_str(Path::new("go.mod"), GOMOD, Some(GOSUM)).unwrap();
        let purls: Vec<&str> = lock.packages.iter().map(|p| p.purl.as_str()).collect();
        assert_eq!(
            purls,
            [
                "pkg:golang/github.com/burntsushi/toml@v1.3.2",
                "pkg:golang/golang.org/x/text@v0.14.0",
                "pkg:golang/example.com/quoted@v1.0.0",
                "pkg:golang/example.com/new@v1.1.0",
                "pkg:golang/example.com/local@v0.0.0",
                "pkg:golang/github.com/pkg/errors@v0.9.1",
            ]
        );
        assert_eq!(lock.direct.as_deref(), Some(&[0, 2, 3, 4, 5][..]));
        let toml = &lock.packages[0];
        assert!(toml.properties.contains(&(
            "custody:go:sum".into(),
            "h1:o7IhLm0Msx3BaB+n3Ag7L8EVlByGnpq14C4YWiu/gL8=".into()
        )));
        assert!(toml.properties.contains(&(
            "custody:go:module-path".into(),
            "github.com/BurntSushi/toml".into()
        )));
        assert!(toml.properties.contains(&(
            "custody:go:escaped-path".into(),
            "github.com/!burnt!sushi/toml".into()
        )));
        assert!(
            !lock.packages[1]
                .properties
                .iter()
                .any(|(n, _)| n == "custody:go:escaped-path")
        );
        assert!(matches!(&lock.packages[4].origin, Origin::Path { path } if path == "../local"));
        assert_eq!(lock.root.unwrap().name, "example.com/app");
    }

    #[test]
    fn malformed_go_mod_names_the_file() {
        let p = Path::new("svc/go.mod");
        let table: [(&str, super::super::lockfile::ErrorCheck); 3] = [
            (
                "require x\n",
                |e| matches!(e, LockError::Invalid { message, .. } if message.contains("line 1")),
            ),
            (
                "module a\nfrobnicate x\n",
                |e| matches!(e, LockError::Invalid { message, .. } if message.contains("frobnicate")),
            ),
            (
                "go 1.21\n",
                |e| matches!(e, LockError::Invalid { message, .. } if message.contains("no module")),
            ),
        ];
        for (input, check) in table {
            let err = parse_str(p, input, None).unwrap_err();
            assert!(check(&err), "{input:?} gave {err:?}");
            assert!(err.to_string().contains("svc/go.mod"));
        }
    }
}
