//! Dependency-confusion rules: which registries a package namespace may be resolved from.
//!
//! A rule names internal namespaces as purl globs (`pkg:npm/@acme/*`, `pkg:cargo/acme-*`) and the
//! registries they must come from (URL prefixes). A component whose name matches and whose
//! recorded origin is anywhere else — typically the public registry, where anyone can publish
//! that name — is a [`Violation`] that names both locations. Origins are read from a CycloneDX
//! SBOM (`custody:resolved-from`, external references, purl qualifiers) or straight from a
//! lockfile. [`SourcesRules`] is the `sources:` section of a policy file.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::evidence::sbom::{self, Origin};
use crate::foundation::glob::{Wildcards, glob};

/// Largest SBOM custody reads.
pub const MAX_SBOM_BYTES: u64 = 64 * 1024 * 1024;
/// Most components (nested ones included) one SBOM may hold.
pub const MAX_COMPONENTS: usize = 200_000;
/// Most rules, and patterns or registries per rule, a policy may hold.
pub const MAX_RULES: usize = 1_000;

/// The `sources:` section of a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesRules {
    /// Internal namespaces and where they must come from.
    #[serde(default)]
    pub internal: Vec<InternalRule>,
}

/// One rule: packages matching any of `packages` must resolve from one of `registries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalRule {
    /// Purl globs without version: `pkg:npm/@acme/*`, `pkg:cargo/acme-*`. `*` matches any run
    /// of characters. Cargo names compare with `_` and `-` as one (crates.io does), npm and
    /// cargo names case-insensitively.
    pub packages: Vec<String>,
    /// Allowed origins as URL prefixes: `https://npm.acme.internal/`,
    /// `sparse+https://cargo.acme.internal/index/`. A prefix matches only at a path boundary.
    pub registries: Vec<String>,
    /// Whether a package of this namespace may come from a local path (a workspace member or
    /// `file:` dependency): it is built from the source tree, so no registry can substitute it.
    #[serde(default = "yes")]
    pub allow_local_paths: bool,
}

fn yes() -> bool {
    true
}

/// Why rules or an input could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sources rule {index}: {reason}")]
    BadRule { index: usize, reason: String },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path} is not a CycloneDX JSON SBOM: {reason}")]
    NotAnSbom { path: PathBuf, reason: String },
    #[error("{path} holds more than {limit} components")]
    TooManyComponents { path: PathBuf, limit: usize },
    #[error(transparent)]
    Lockfile(#[from] sbom::LockError),
}

/// Where a component came from, as far as the input records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "location", rename_all = "kebab-case")]
pub enum Resolved {
    /// A registry, git repository or download URL.
    Url(String),
    /// A local path inside the source tree.
    Path(String),
    /// The input does not say.
    Unrecorded,
}

impl std::fmt::Display for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resolved::Url(u) => f.write_str(u),
            Resolved::Path(p) => write!(f, "local path {p}"),
            Resolved::Unrecorded => f.write_str("(origin not recorded)"),
        }
    }
}

/// One component to check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Located {
    pub purl: String,
    pub resolved: Resolved,
}

/// A component with an internal name resolved from somewhere its rule does not allow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub purl: String,
    /// Where it came from.
    pub resolved: Resolved,
    /// The pattern that made it internal.
    pub pattern: String,
    /// Where it must come from.
    pub allowed: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} matches internal namespace {} but was resolved from {}; it must come from {}",
            self.purl,
            self.pattern,
            self.resolved,
            self.allowed.join(" or ")
        )
    }
}

/// The outcome of a check: every component looked at and every violation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub checked: usize,
    /// Components that matched an internal namespace.
    pub internal: usize,
    pub violations: Vec<Violation>,
}

impl SourcesRules {
    /// Refuses rules that cannot mean anything: no patterns, no registries, patterns that are
    /// not purls, registries that are not URLs.
    pub fn check(&self) -> Result<(), Error> {
        if self.internal.len() > MAX_RULES {
            return Err(Error::BadRule {
                index: MAX_RULES,
                reason: format!("more than {MAX_RULES} rules"),
            });
        }
        for (index, rule) in self.internal.iter().enumerate() {
            let bad = |reason: String| Error::BadRule { index, reason };
            if rule.packages.is_empty() {
                return Err(bad("`packages` is empty".into()));
            }
            if rule.registries.is_empty() && !rule.allow_local_paths {
                return Err(bad(
                    "`registries` is empty and local paths are not allowed: nothing could satisfy it"
                        .into(),
                ));
            }
            if rule.packages.len() > MAX_RULES || rule.registries.len() > MAX_RULES {
                return Err(bad(format!("more than {MAX_RULES} entries")));
            }
            for p in &rule.packages {
                let Some(rest) = p.strip_prefix("pkg:") else {
                    return Err(bad(format!(
                        "package pattern {p:?} does not start with pkg:"
                    )));
                };
                match rest.split_once('/') {
                    Some((ty, name)) if !ty.is_empty() && !ty.contains('*') && !name.is_empty() => {
                    }
                    _ => {
                        return Err(bad(format!(
                            "package pattern {p:?} is not pkg:<type>/<name glob>"
                        )));
                    }
                }
                let last = p.rsplit('/').next().unwrap_or_default();
                if last.contains('@') || p.contains('?') || p.contains('#') {
                    return Err(bad(format!(
                        "package pattern {p:?} must name packages, without version or qualifiers"
                    )));
                }
            }
            for r in &rule.registries {
                if !r.contains("://") {
                    return Err(bad(format!(
                        "registry {r:?} is not a URL prefix like https://npm.example.com/"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Checks every component against every rule.
    pub fn evaluate(&self, components: &[Located]) -> Report {
        let mut report = Report {
            checked: components.len(),
            ..Default::default()
        };
        for c in components {
            let Some(key) = match_key(&c.purl) else {
                continue;
            };
            let mut matched = false;
            for rule in &self.internal {
                let Some(pattern) = rule.packages.iter().find(|p| pattern_matches(p, &key)) else {
                    continue;
                };
                matched = true;
                let allowed = match &c.resolved {
                    Resolved::Url(u) => rule.registries.iter().any(|r| url_has_prefix(u, r)),
                    Resolved::Path(_) => rule.allow_local_paths,
                    Resolved::Unrecorded => false,
                };
                if !allowed {
                    report.violations.push(Violation {
                        purl: c.purl.clone(),
                        resolved: c.resolved.clone(),
                        pattern: pattern.clone(),
                        allowed: rule.registries.clone(),
                    });
                }
            }
            if matched {
                report.internal += 1;
            }
        }
        report
    }
}

/// `pkg:type/namespace/name` of a purl, decoded and normalised for matching: no version,
/// qualifiers or subpath; lowercase for npm and cargo; `_` as `-` for cargo.
fn match_key(purl: &str) -> Option<String> {
    let rest = purl.strip_prefix("pkg:")?;
    let rest = rest.split(['?', '#']).next()?;
    let (ty, path) = rest.split_once('/')?;
    let ty = ty.to_ascii_lowercase();
    // The version follows the last `@` of the last segment (`%40` encodes a literal one).
    let (dir, last) = match path.rsplit_once('/') {
        Some((d, l)) => (Some(d), l),
        None => (None, path),
    };
    let last = last.split('@').next()?;
    let path = match dir {
        Some(d) => format!("{d}/{last}"),
        None => last.to_owned(),
    };
    Some(format!(
        "pkg:{ty}/{}",
        normalise(&ty, &percent_decode(&path))
    ))
}

fn normalise(ty: &str, name: &str) -> String {
    match ty {
        "cargo" => name.to_ascii_lowercase().replace('_', "-"),
        "npm" | "pypi" | "golang" => name.to_ascii_lowercase(),
        _ => name.to_owned(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (hex_value(bytes.get(i + 1)), hex_value(bytes.get(i + 2)))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: Option<&u8>) -> Option<u8> {
    (*b? as char).to_digit(16).map(|d| d as u8)
}

/// Whether the normalised key matches the glob `pattern` (`*` = any run of characters).
fn pattern_matches(pattern: &str, key: &str) -> bool {
    let Some(pattern_key) = pattern.strip_prefix("pkg:").and_then(|r| {
        let (ty, name) = r.split_once('/')?;
        let ty = ty.to_ascii_lowercase();
        Some(format!("pkg:{ty}/{}", normalise(&ty, name)))
    }) else {
        return false;
    };
    // `?` stays a literal: purls use it to start the qualifiers.
    glob(&pattern_key, key, Wildcards::StarOnly)
}

/// Whether `url` lies under `prefix`, matching only at a boundary so that
/// `https://npm.acme.internal.evil.example/` is not under `https://npm.acme.internal`.
fn url_has_prefix(url: &str, prefix: &str) -> bool {
    let (url, prefix) = (url.trim(), prefix.trim());
    let lower = url.to_ascii_lowercase();
    let p = prefix.to_ascii_lowercase();
    if !lower.starts_with(&p) {
        // `https://npm.acme.internal` is under `https://npm.acme.internal/`.
        return p.strip_suffix('/') == Some(lower.as_str());
    }
    p.ends_with('/')
        || matches!(
            lower.as_bytes().get(p.len()),
            None | Some(b'/' | b'?' | b'#')
        )
}

// ------------------------------------------------------------------------------ reading inputs

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SbomDoc {
    bom_format: Option<String>,
    #[serde(default)]
    components: Vec<SbomComponent>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SbomComponent {
    purl: Option<String>,
    #[serde(default)]
    properties: Vec<SbomProperty>,
    #[serde(default)]
    external_references: Vec<SbomReference>,
    #[serde(default)]
    components: Vec<SbomComponent>,
}

#[derive(Deserialize)]
struct SbomProperty {
    name: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize)]
struct SbomReference {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
}

/// Reads the components of a CycloneDX JSON SBOM or, by file name, of a lockfile.
pub fn read_components(path: &Path) -> Result<Vec<Located>, Error> {
    let is_json_sbom = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .is_some_and(|n| {
            n.ends_with(".json") && n != "package-lock.json" && n != "npm-shrinkwrap.json"
        });
    if !is_json_sbom {
        let lock = sbom::read_lockfile(path)?;
        return Ok(lock
            .packages
            .iter()
            .map(|p| Located {
                purl: p.purl.to_string(),
                resolved: from_origin(&p.origin),
            })
            .collect());
    }
    let file = std::fs::File::open(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_SBOM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_SBOM_BYTES {
        return Err(Error::TooLarge {
            path: path.to_owned(),
            limit: MAX_SBOM_BYTES,
        });
    }
    parse_sbom(path, &bytes)
}

/// Parses SBOM bytes (see [`read_components`]); `path` only names the input in errors.
pub fn parse_sbom(path: &Path, bytes: &[u8]) -> Result<Vec<Located>, Error> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| Error::NotAnSbom {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if crate::evidence::sbom::spdx::is_spdx(&value) {
        return parse_spdx(path, &value);
    }
    let doc = SbomDoc::deserialize(&value).map_err(|e| Error::NotAnSbom {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if doc.bom_format.as_deref() != Some("CycloneDX") {
        return Err(Error::NotAnSbom {
            path: path.to_owned(),
            reason: format!(
                "bomFormat is {:?}, expected \"CycloneDX\"",
                doc.bom_format.unwrap_or_default()
            ),
        });
    }
    let mut out = Vec::new();
    let mut stack: Vec<&SbomComponent> = doc.components.iter().collect();
    while let Some(c) = stack.pop() {
        if out.len() >= MAX_COMPONENTS {
            return Err(Error::TooManyComponents {
                path: path.to_owned(),
                limit: MAX_COMPONENTS,
            });
        }
        stack.extend(c.components.iter());
        let Some(purl) = &c.purl else { continue };
        out.push(Located {
            purl: purl.clone(),
            resolved: component_origin(c, purl),
        });
    }
    out.sort_by(|a, b| a.purl.cmp(&b.purl));
    Ok(out)
}

/// The packages of an SPDX 2 document, resolved as [`component_origin`] resolves CycloneDX
/// components: custody's annotations, then `downloadLocation`, then the purl's qualifiers.
fn parse_spdx(path: &Path, value: &serde_json::Value) -> Result<Vec<Located>, Error> {
    use crate::evidence::sbom::spdx;
    let packages =
        spdx::read(value, &path.display().to_string()).map_err(|e| Error::NotAnSbom {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if packages.len() > MAX_COMPONENTS {
        return Err(Error::TooManyComponents {
            path: path.to_owned(),
            limit: MAX_COMPONENTS,
        });
    }
    let mut out = Vec::new();
    for p in packages.iter().filter(|p| !p.is_subject && !p.is_file) {
        let property = |name: &str| p.properties.get(name).cloned();
        for purl in &p.purls {
            let resolved = match (
                property("custody:resolved-from"),
                property("custody:source-kind").as_deref(),
            ) {
                (Some(v), Some("path")) => Resolved::Path(v),
                (Some(v), _) => Resolved::Url(v),
                (None, Some("path")) => Resolved::Path("(local)".into()),
                (None, _) => match &p.download_location {
                    Some(url) => Resolved::Url(url.clone()),
                    None => purl_origin(purl),
                },
            };
            out.push(Located {
                purl: purl.clone(),
                resolved,
            });
        }
    }
    out.sort_by(|a, b| a.purl.cmp(&b.purl));
    Ok(out)
}

/// custody's own property first, then what other generators write: a distribution or vcs
/// reference, then the purl's `repository_url`/`download_url`/`vcs_url` qualifiers.
fn component_origin(c: &SbomComponent, purl: &str) -> Resolved {
    let property = |name: &str| {
        c.properties
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| p.value.clone())
    };
    if let Some(v) = property("custody:resolved-from") {
        return match property("custody:source-kind").as_deref() {
            Some("path") => Resolved::Path(v),
            _ => Resolved::Url(v),
        };
    }
    if property("custody:source-kind").as_deref() == Some("path") {
        return Resolved::Path("(local)".into());
    }
    for kind in ["distribution", "vcs"] {
        if let Some(url) = c
            .external_references
            .iter()
            .find(|r| r.kind.as_deref() == Some(kind))
            .and_then(|r| r.url.clone())
        {
            return Resolved::Url(url);
        }
    }
    purl_origin(purl)
}

/// The purl's `repository_url`, `download_url` or `vcs_url` qualifier.
fn purl_origin(purl: &str) -> Resolved {
    if let Some((_, qualifiers)) = purl.split('#').next().and_then(|p| p.split_once('?')) {
        for key in ["repository_url", "download_url", "vcs_url"] {
            if let Some(v) = qualifiers
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| percent_decode(v))
            {
                return Resolved::Url(v);
            }
        }
    }
    Resolved::Unrecorded
}

fn from_origin(origin: &Origin) -> Resolved {
    match origin {
        Origin::Registry { url, .. } | Origin::Url { url } => Resolved::Url(url.clone()),
        Origin::Git { url, rev } => Resolved::Url(match rev {
            Some(r) => format!("{url}#{r}"),
            None => url.clone(),
        }),
        Origin::Path { path } => Resolved::Path(path.clone()),
        Origin::Unrecorded => Resolved::Unrecorded,
    }
}

/// Reads the `sources` section of a JSON or TOML policy file (by extension). A file that is
/// only the section (no `sources` key) is read as the section itself.
pub fn read_rules(path: &Path) -> Result<SourcesRules, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    if text.len() > 1024 * 1024 {
        return Err(Error::TooLarge {
            path: path.to_owned(),
            limit: 1024 * 1024,
        });
    }
    let toml = path.extension().is_some_and(|e| e == "toml");
    parse_rules(&text, toml).map_err(|reason| Error::BadRule { index: 0, reason })
}

/// True for the sources-only file `sources check --policy` read before it read the
/// verification policy: TOML, or a JSON object with `sources` or `internal` at the top and no
/// `scopes`. Anything unreadable is left to the policy loader to report.
pub fn is_sources_only_file(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e == "toml") {
        return true;
    }
    let Ok(text) = std::fs::read(path) else {
        return false;
    };
    if text.len() > 1024 * 1024 {
        return false;
    }
    match serde_json::from_slice::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(top)) => {
            !top.contains_key("scopes")
                && (top.contains_key("sources") || top.contains_key("internal"))
        }
        _ => false,
    }
}

/// Parses a policy document (JSON, or TOML when `toml`) and returns its checked `sources`.
pub fn parse_rules(text: &str, toml: bool) -> Result<SourcesRules, String> {
    #[derive(Deserialize)]
    struct Wrapper {
        sources: SourcesRules,
    }
    let value: serde_json::Value = if toml {
        toml::from_str(text).map_err(|e| format!("not valid TOML: {e}"))?
    } else {
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?
    };
    let rules = if value.get("sources").is_some() {
        serde_json::from_value::<Wrapper>(value).map(|w| w.sources)
    } else {
        serde_json::from_value::<SourcesRules>(value)
    }
    .map_err(|e| format!("not a sources section: {e}"))?;
    rules.check().map_err(|e| e.to_string())?;
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> SourcesRules {
        SourcesRules {
            internal: vec![
                InternalRule {
                    packages: vec!["pkg:npm/@acme/*".into()],
                    registries: vec!["https://npm.acme.internal/".into()],
                    allow_local_paths: true,
                },
                InternalRule {
                    packages: vec!["pkg:cargo/acme-*".into()],
                    registries: vec!["sparse+https://cargo.acme.internal/index/".into()],
                    allow_local_paths: false,
                },
            ],
        }
    }

    fn located(purl: &str, resolved: Resolved) -> Located {
        Located {
            purl: purl.into(),
            resolved,
        }
    }

    #[test]
    fn rule_table() {
        use Resolved::*;
        let url = |u: &str| Url(u.into());
        // (purl, origin, violates)
        let rows: &[(&str, Resolved, bool)] = &[
            (
                "pkg:npm/%40acme/utils@1.0.0",
                url("https://npm.acme.internal/"),
                false,
            ),
            (
                "pkg:npm/%40acme/utils@1.0.0",
                url("https://registry.npmjs.org/"),
                true,
            ),
            (
                "pkg:npm/%40ACME/Utils@1.0.0",
                url("https://registry.npmjs.org/"),
                true,
            ),
            (
                "pkg:npm/%40acme/utils@1.0.0",
                url("https://npm.acme.internal.evil.example/"),
                true,
            ),
            (
                "pkg:npm/%40acme/utils@1.0.0",
                Path("packages/utils".into()),
                false,
            ),
            ("pkg:npm/%40acme/utils@1.0.0", Unrecorded, true),
            (
                "pkg:npm/left-pad@1.3.0",
                url("https://registry.npmjs.org/"),
                false,
            ),
            (
                "pkg:npm/%40acmex/utils@1.0.0",
                url("https://registry.npmjs.org/"),
                false,
            ),
            (
                "pkg:cargo/acme-core@0.1.0",
                url("sparse+https://cargo.acme.internal/index/"),
                false,
            ),
            (
                "pkg:cargo/acme-core@0.1.0",
                url("registry+https://github.com/rust-lang/crates.io-index"),
                true,
            ),
            (
                "pkg:cargo/acme_core@0.1.0",
                url("sparse+https://index.crates.io/"),
                true,
            ),
            (
                "pkg:cargo/acme-core@0.1.0",
                Path("(workspace)".into()),
                true,
            ),
            (
                "pkg:cargo/serde@1.0.0",
                url("registry+https://github.com/rust-lang/crates.io-index"),
                false,
            ),
        ];
        let rules = rules();
        for (purl, origin, violates) in rows {
            let report = rules.evaluate(&[located(purl, origin.clone())]);
            assert_eq!(
                !report.violations.is_empty(),
                *violates,
                "{purl} from {origin}"
            );
        }
    }

    #[test]
    fn a_violation_names_both_locations() {
        let report = rules().evaluate(&[located(
            "pkg:npm/%40acme/utils@1.0.0",
            Resolved::Url("https://registry.npmjs.org/".into()),
        )]);
        assert_eq!(report.internal, 1);
        assert_eq!(
            report.violations,
            vec![Violation {
                purl: "pkg:npm/%40acme/utils@1.0.0".into(),
                resolved: Resolved::Url("https://registry.npmjs.org/".into()),
                pattern: "pkg:npm/@acme/*".into(),
                allowed: vec!["https://npm.acme.internal/".into()],
            }]
        );
        assert_eq!(
            report.violations[0].to_string(),
            "pkg:npm/%40acme/utils@1.0.0 matches internal namespace pkg:npm/@acme/* but was resolved from https://registry.npmjs.org/; it must come from https://npm.acme.internal/"
        );
    }

    #[test]
    fn prefixes_match_at_boundaries_only() {
        assert!(url_has_prefix("https://a.example/x", "https://a.example"));
        assert!(url_has_prefix("https://a.example", "https://a.example"));
        assert!(url_has_prefix("https://a.example/x", "https://a.example/"));
        assert!(!url_has_prefix(
            "https://a.example.evil/x",
            "https://a.example"
        ));
        assert!(!url_has_prefix("https://a.examplex/", "https://a.example"));
        assert!(!url_has_prefix("http://a.example/", "https://a.example/"));
    }

    #[test]
    fn purl_patterns_keep_question_marks_literal() {
        // `*` runs across `/` (an npm scope), `?` is the start of qualifiers, never a wildcard.
        for (pattern, key, want) in [
            ("pkg:npm/@acme/*", "pkg:npm/@acme/utils", true),
            ("pkg:npm/@acme/*", "pkg:npm/@acme/deep/er", true),
            ("pkg:npm/@acme/*", "pkg:npm/@acmex/utils", false),
            ("pkg:npm/acme-?", "pkg:npm/acme-?", true),
            ("pkg:npm/acme-?", "pkg:npm/acme-x", false),
            ("pkg:cargo/ACME_*", "pkg:cargo/acme-core", true),
            ("npm/@acme/*", "pkg:npm/@acme/utils", false),
        ] {
            assert_eq!(pattern_matches(pattern, key), want, "{pattern} vs {key}");
        }
    }

    #[test]
    fn malformed_rules_are_refused() {
        for (text, needle) in [
            (
                r#"{"sources":{"internal":[{"packages":[],"registries":["https://x/"]}]}}"#,
                "`packages` is empty",
            ),
            (
                r#"{"sources":{"internal":[{"packages":["npm/@acme/*"],"registries":["https://x/"]}]}}"#,
                "does not start with pkg:",
            ),
            (
                r#"{"sources":{"internal":[{"packages":["pkg:npm/@acme/x@1.0"],"registries":["https://x/"]}]}}"#,
                "without version",
            ),
            (
                r#"{"sources":{"internal":[{"packages":["pkg:*/x"],"registries":["https://x/"]}]}}"#,
                "is not pkg:<type>",
            ),
            (
                r#"{"sources":{"internal":[{"packages":["pkg:npm/x"],"registries":["npm.acme"]}]}}"#,
                "is not a URL prefix",
            ),
            (
                r#"{"sources":{"internal":[{"packages":["pkg:npm/x"],"registries":[],"allow_local_paths":false}]}}"#,
                "nothing could satisfy it",
            ),
            (
                r#"{"sources":{"internal":[{"packages":["pkg:npm/x"],"registries":["https://x/"],"extra":1}]}}"#,
                "unknown field",
            ),
            (r#"{"sources":{"internal":"no"}}"#, "not a sources section"),
            (r#"{"sources":"#, "not valid JSON"),
        ] {
            let err = parse_rules(text, false).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
        let toml = "[[sources.internal]]\npackages = [\"pkg:cargo/acme-*\"]\nregistries = [\"sparse+https://cargo.acme.internal/index/\"]\n";
        let parsed = parse_rules(toml, true).unwrap();
        assert_eq!(parsed.internal[0].packages, vec!["pkg:cargo/acme-*"]);
        assert!(parsed.internal[0].allow_local_paths);
        assert!(
            parse_rules("[[sources.internal]\n", true)
                .unwrap_err()
                .contains("not valid TOML")
        );
    }

    #[test]
    fn malformed_sboms_are_refused() {
        let p = Path::new("x.json");
        for (bytes, needle) in [
            (&b"{"[..], "EOF"),
            (b"[]", "invalid length"),
            (br#"{"bomFormat":"SPDX"}"#, "bomFormat is \"SPDX\""),
            (
                br#"{"bomFormat":"CycloneDX","components":{}}"#,
                "invalid type",
            ),
            (b"\xff\xfe", "expected value"),
        ] {
            match parse_sbom(p, bytes) {
                Err(Error::NotAnSbom { reason, .. }) => {
                    assert!(reason.contains(needle), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
        // Deep nesting is refused by the JSON parser's recursion limit, not a stack overflow.
        let deep = format!(
            "{{\"bomFormat\":\"CycloneDX\",\"components\":{}{}}}",
            "[{\"components\":".repeat(200),
            "[]}]".repeat(200)
        );
        assert!(matches!(
            parse_sbom(p, deep.as_bytes()),
            Err(Error::NotAnSbom { .. })
        ));
    }

    #[test]
    fn origins_from_other_generators() {
        let sbom = br#"{"bomFormat":"CycloneDX","components":[
            {"purl":"pkg:npm/%40acme/a@1","externalReferences":[{"type":"distribution","url":"https://registry.npmjs.org/@acme/a/-/a-1.tgz"}]},
            {"purl":"pkg:npm/%40acme/b@1?repository_url=https%3A%2F%2Fnpm.acme.internal"},
            {"purl":"pkg:npm/%40acme/c@1","components":[{"purl":"pkg:npm/%40acme/d@1"}]}
        ]}"#;
        let found = parse_sbom(Path::new("x.json"), sbom).unwrap();
        let by = |p: &str| {
            found
                .iter()
                .find(|c| c.purl.starts_with(p))
                .unwrap()
                .resolved
                .clone()
        };
        assert_eq!(
            by("pkg:npm/%40acme/a"),
            Resolved::Url("https://registry.npmjs.org/@acme/a/-/a-1.tgz".into())
        );
        assert_eq!(
            by("pkg:npm/%40acme/b"),
            Resolved::Url("https://npm.acme.internal".into())
        );
        assert_eq!(by("pkg:npm/%40acme/d"), Resolved::Unrecorded);
        let report = rules().evaluate(&found);
        let bad: Vec<&str> = report.violations.iter().map(|v| v.purl.as_str()).collect();
        assert_eq!(
            bad,
            vec![
                "pkg:npm/%40acme/a@1",
                "pkg:npm/%40acme/c@1",
                "pkg:npm/%40acme/d@1"
            ]
        );
    }
}
