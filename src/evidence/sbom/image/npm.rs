//! npm packages installed in an image: every `package.json` with both a `name` and a
//! `version`, as syft's image cataloger reads them (`**/package.json`). That is every package
//! under `node_modules` (nested ones included) and a project's own `package.json` beside its
//! `node_modules`; files without both fields (a folder's `{"type": "module"}`) name no package.

use std::io::{self, Read};

/// The most of a `package.json` read; larger ones are reported unread. Published manifests
/// are a few kilobytes; old npm releases wrote the whole README into them.
pub(crate) const MAX_PACKAGE_JSON: u64 = 4 << 20;

/// One package, named as npm names it (`@scope/name` for a scoped one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NpmPackage {
    pub name: String,
    pub version: String,
}

/// Whether `path` (cleaned, no leading `/`) is a `package.json`.
pub(crate) fn is_package_json(path: &str) -> bool {
    path == "package.json" || path.ends_with("/package.json")
}

/// What a `package.json` said: a package, nothing, or too large to read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PackageJson {
    Package(NpmPackage),
    NoPackage,
    TooLarge,
}

/// Reads a `package.json` of `size` bytes from `entry`, at most [`MAX_PACKAGE_JSON`].
pub(crate) fn read(entry: &mut impl Read, size: u64) -> io::Result<PackageJson> {
    if size > MAX_PACKAGE_JSON {
        return Ok(PackageJson::TooLarge);
    }
    let mut bytes = Vec::new();
    entry.take(MAX_PACKAGE_JSON).read_to_end(&mut bytes)?;
    Ok(parse(&bytes).map_or(PackageJson::NoPackage, PackageJson::Package))
}

/// The `name` and `version` of a `package.json`; `None` unless both are non-empty strings (or
/// the JSON is malformed, which serde_json reports without panicking, nesting bounded).
pub(crate) fn parse(bytes: &[u8]) -> Option<NpmPackage> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        name: Option<serde_json::Value>,
        version: Option<serde_json::Value>,
    }
    let manifest: Manifest = serde_json::from_slice(bytes).ok()?;
    let text = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    };
    Some(NpmPackage {
        name: text(manifest.name)?,
        version: text(manifest.version)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_json_paths() {
        for p in [
            "app/node_modules/is-number/package.json",
            "app/node_modules/@types/node/package.json",
            "app/package.json",
            "package.json",
        ] {
            assert!(is_package_json(p), "{p}");
        }
        for p in [
            "app/node_modules/x/package.json.bak",
            "app/node_modules/x/mypackage.json",
            "app/package-lock.json",
        ] {
            assert!(!is_package_json(p), "{p}");
        }
    }

    #[test]
    fn names_and_versions() {
        assert_eq!(
            parse(br#"{"name":"@isaacs/string-locale-compare","version":"1.1.0","license":"ISC"}"#),
            Some(NpmPackage {
                name: "@isaacs/string-locale-compare".to_owned(),
                version: "1.1.0".to_owned()
            })
        );
        // Fields of any shape elsewhere do not matter.
        assert_eq!(
            parse(br#"{"version":"7.0.0","author":{"name":"x"},"name":"is-number","files":[1,2]}"#)
                .map(|p| p.name),
            Some("is-number".to_owned())
        );
    }

    #[test]
    fn files_without_a_name_and_version_or_malformed_name_nothing() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        for bytes in [
            &b""[..],
            b"{}",
            br#"{"type":"module"}"#,
            br#"{"name":"only-name"}"#,
            br#"{"version":"1.0.0"}"#,
            br#"{"name":"","version":"1.0.0"}"#,
            br#"{"name":"x","version":""}"#,
            br#"{"name":7,"version":"1"}"#,
            br#"{"name":"x","version":["1"]}"#,
            br#"{"name":"x","version":"1""#,
            b"[1,2,3]",
            b"\xff\xfe\x00{",
            deep.as_bytes(),
        ] {
            assert_eq!(parse(bytes), None, "{}", String::from_utf8_lossy(bytes));
        }
        for seed in 0..200u64 {
            fastrand::seed(seed);
            let bytes: Vec<u8> = (0..fastrand::usize(0..300))
                .map(|_| {
                    fastrand::choice(br#"{}[]":,name version 1.0\"#.iter())
                        .copied()
                        .unwrap_or(b'x')
                })
                .collect();
            let _ = parse(&bytes);
        }
    }

    #[test]
    fn reads_are_bounded() {
        let big = vec![b' '; 16];
        assert_eq!(
            read(&mut big.as_slice(), MAX_PACKAGE_JSON + 1).expect("reads"),
            PackageJson::TooLarge
        );
        let ok = br#"{"name":"a","version":"1"}"#;
        assert!(matches!(
            read(&mut &ok[..], ok.len() as u64).expect("reads"),
            PackageJson::Package(p) if p.name == "a"
        ));
    }
}
