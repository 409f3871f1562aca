//! Rule evaluation as pure functions: facts read from a verified provenance statement, checked
//! against [`ProvenanceRules`]; the SLSA build level derived from the builder and the signer.
//!
//! Build levels (documented in `schemas/policy.schema.json`):
//! - a builder rule with `level` in the policy grants that level (the policy author vouches for
//!   the builder and the scope's signers);
//! - `https://custody.dev/builders/local@v1` is L1 at most: provenance exists, no hosted platform;
//! - GitHub Actions: a Fulcio certificate from `https://token.actions.githubusercontent.com` whose
//!   identity is the builder id is L2 (hosted, signed by the platform's identity); when that
//!   workflow lives in another repository than the source (a shared reusable workflow) it is L3;
//! - GitLab CI: a certificate from the GitLab instance that runs the builder (`…/-/runners/N`)
//!   is L2;
//! - anything else (a key, an unknown builder) is L1: the provenance exists, but nothing shows a
//!   hosted platform wrote it.

use serde_json::Value;

use super::report::{Check, CheckKind};
use crate::decisions::policy::{Pattern, ProvenanceRules};
use crate::evidence::ci::LOCAL_BUILDER_ID;
use crate::foundation::time::{show_duration, unix_seconds};

/// GitHub Actions' OIDC issuer.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Who signed an attestation, as verification established it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerEvidence {
    Key {
        fingerprint: String,
    },
    Certificate {
        identity: String,
        issuer: String,
        /// Fulcio's Source Repository URI extension: the repository whose run got the
        /// certificate, as the CI platform told Fulcio (never what the provenance says).
        source_repository: Option<String>,
    },
}

/// What a provenance statement claims, in the fields the rules look at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProvenanceFacts {
    pub builder_id: Option<String>,
    pub build_type: Option<String>,
    /// Normalised: no scheme, no `git+`, no `.git`, no trailing `/`, host lowercased.
    pub source_repository: Option<String>,
    pub source_ref: Option<String>,
    pub commit: Option<String>,
    pub dirty: bool,
    /// `finishedOn`, else `startedOn`, as Unix seconds.
    pub build_time: Option<i64>,
}

/// Normalises a repository URL or name for comparison: `git+https://GitHub.com/o/r.git/` and
/// `github.com/o/r` are the same repository.
pub fn normalize_repository(s: &str) -> String {
    let s = s.trim();
    let s = s.strip_prefix("git+").unwrap_or(s);
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .or_else(|| s.strip_prefix("ssh://"))
        .unwrap_or(s);
    let s = s.trim_end_matches('/');
    let s = s.strip_suffix(".git").unwrap_or(s);
    match s.split_once('/') {
        Some((host, path)) => format!("{}/{path}", host.to_ascii_lowercase()),
        None => s.to_ascii_lowercase(),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn is_commit(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads the facts from a SLSA provenance v1 predicate: GitHub's workflow build type, custody's
/// local and GitLab build types, and the first resolved dependency (`git+<repo>@<ref>` with a
/// `gitCommit` digest; GitLab runners put the commit under `sha256`).
pub fn provenance_facts(predicate: &Value) -> ProvenanceFacts {
    let bd = predicate.get("buildDefinition").unwrap_or(&Value::Null);
    let ext = bd.get("externalParameters").unwrap_or(&Value::Null);
    let mut facts = ProvenanceFacts {
        builder_id: str_at(predicate, &["runDetails", "builder", "id"]).map(str::to_owned),
        build_type: str_at(bd, &["buildType"]).map(str::to_owned),
        ..ProvenanceFacts::default()
    };
    let (repo, git_ref) = if let Some(w) = ext.get("workflow") {
        (str_at(w, &["repository"]), str_at(w, &["ref"]))
    } else {
        (
            str_at(ext, &["repository"]).or_else(|| str_at(ext, &["source"])),
            str_at(ext, &["ref"]),
        )
    };
    facts.source_repository = repo.map(normalize_repository);
    facts.source_ref = git_ref.map(str::to_owned);
    if let Some(dep) = bd
        .get("resolvedDependencies")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        if let Some(uri) = str_at(dep, &["uri"]) {
            let (r, at_ref) = match uri.rsplit_once('@') {
                Some((r, at)) if at.starts_with("refs/") => (r, Some(at)),
                _ => (uri, None),
            };
            if facts.source_repository.is_none() {
                facts.source_repository = Some(normalize_repository(r));
            }
            if facts.source_ref.is_none() {
                facts.source_ref = at_ref.map(str::to_owned);
            }
        }
        let digest = dep.get("digest").unwrap_or(&Value::Null);
        facts.commit = ["gitCommit", "sha1", "sha256"]
            .iter()
            .filter_map(|k| str_at(digest, &[k]))
            .find(|s| is_commit(s))
            .map(str::to_owned);
        facts.dirty = dep
            .get("annotations")
            .and_then(|a| a.get("dirty"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    let meta = predicate
        .get("runDetails")
        .and_then(|r| r.get("metadata"))
        .unwrap_or(&Value::Null);
    facts.build_time = str_at(meta, &["finishedOn"])
        .or_else(|| str_at(meta, &["startedOn"]))
        .and_then(unix_seconds);
    facts
}

/// The SLSA build level `facts` support when signed by `signer` (see the module docs).
pub fn build_level(
    facts: &ProvenanceFacts,
    signer: &SignerEvidence,
    rules: &ProvenanceRules,
) -> u8 {
    let Some(builder) = facts.builder_id.as_deref() else {
        return 0;
    };
    if let Some(level) = rules
        .builders
        .iter()
        .find(|b| b.id.matches(builder))
        .and_then(|b| b.level)
    {
        return level;
    }
    if builder == LOCAL_BUILDER_ID {
        return 1;
    }
    match signer {
        SignerEvidence::Certificate {
            identity,
            issuer,
            source_repository,
        } if issuer == GITHUB_ISSUER && identity == builder => {
            // The certificate's identity is the workflow that signed
            // (https://github.com/<owner>/<repo>/.github/workflows/x.yml@ref); its Source
            // Repository URI extension is the repository the run was for. Both come from the
            // platform through Fulcio: a workflow in another repository than the source (a
            // shared reusable workflow) is L3. The provenance's own claim about the source
            // repository is written by the build and proves nothing about isolation.
            let workflow_repo = identity
                .strip_prefix("https://github.com/")
                .and_then(|p| p.split_once("/.github/"))
                .map(|(repo, _)| normalize_repository(&format!("github.com/{repo}")));
            let source_repo = source_repository.as_deref().map(normalize_repository);
            match (&workflow_repo, &source_repo) {
                (Some(w), Some(s)) if w != s => 3,
                _ => 2,
            }
        }
        SignerEvidence::Certificate { issuer, .. }
            if builder.contains("/-/runners/")
                && builder.starts_with(issuer.trim_end_matches('/'))
                && issuer.starts_with("https://") =>
        {
            2
        }
        _ => 1,
    }
}

fn list(patterns: &[Pattern]) -> String {
    patterns
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(" | ")
}

fn pattern_check(
    kind: CheckKind,
    name: &str,
    patterns: &[Pattern],
    value: Option<&str>,
    normalize: fn(&str) -> String,
    hint: &str,
) -> Check {
    if patterns.is_empty() {
        return Check::skip(kind, name)
            .expected("any (the policy sets no rule)")
            .found(value.unwrap_or("none"));
    }
    let ok = value.is_some_and(|v| {
        let v = normalize(v);
        patterns
            .iter()
            .any(|p| p.matches(&v) || normalize(p.as_str()) == v)
    });
    Check::of(ok, kind, name)
        .expected(list(patterns))
        .found(value.unwrap_or("none"))
        .hint(hint)
}

/// Checks provenance facts against the rules. Returns the checks and the derived build level.
pub fn evaluate_provenance(
    rules: &ProvenanceRules,
    facts: &ProvenanceFacts,
    signer: &SignerEvidence,
    now: i64,
) -> (Vec<Check>, u8) {
    let mut checks = Vec::new();
    let builders: Vec<Pattern> = rules.builders.iter().map(|b| b.id.clone()).collect();
    checks.push(pattern_check(
        CheckKind::BuilderId,
        "builder id",
        &builders,
        facts.builder_id.as_deref(),
        str::to_owned,
        "the artifact was built by a builder this policy does not trust",
    ));
    checks.push(pattern_check(
        CheckKind::SourceRepository,
        "source repository",
        &rules.source_repositories,
        facts.source_repository.as_deref(),
        normalize_repository,
        "the artifact was built from another repository",
    ));
    checks.push(pattern_check(
        CheckKind::SourceRef,
        "source ref",
        &rules.refs,
        facts.source_ref.as_deref(),
        str::to_owned,
        "the artifact was built from a branch or tag the policy does not allow",
    ));
    checks.push(pattern_check(
        CheckKind::BuildType,
        "build type",
        &rules.build_types,
        facts.build_type.as_deref(),
        str::to_owned,
        "the build type is not one the policy knows",
    ));
    checks.push(if rules.require_commit {
        Check::of(facts.commit.is_some(), CheckKind::Commit, "source commit")
            .expected("a git commit in resolvedDependencies")
            .found(facts.commit.clone().unwrap_or_else(|| "none".into()))
            .hint("provenance without a commit cannot be traced to source")
    } else {
        Check::skip(CheckKind::Commit, "source commit")
            .found(facts.commit.clone().unwrap_or_else(|| "none".into()))
    });
    checks.push(if rules.allow_dirty {
        Check::skip(CheckKind::CleanTree, "clean work tree").found(if facts.dirty {
            "dirty"
        } else {
            "clean"
        })
    } else {
        Check::of(!facts.dirty, CheckKind::CleanTree, "clean work tree")
            .expected("built from the committed tree")
            .found(if facts.dirty {
                "built from a dirty tree"
            } else {
                "clean"
            })
            .hint("uncommitted changes went into this build; rebuild from a clean checkout")
    });
    let level = build_level(facts, signer, rules);
    checks.push(
        Check::of(
            level >= rules.min_build_level,
            CheckKind::BuildLevel,
            "slsa build level",
        )
        .expected(format!("at least L{}", rules.min_build_level))
        .found(format!(
            "L{level} (builder {})",
            facts.builder_id.as_deref().unwrap_or("none")
        ))
        .hint("a local or key-signed build cannot prove a hosted build platform; build in CI"),
    );
    checks.push(match rules.max_age {
        None => Check::skip(CheckKind::MaxAge, "build age"),
        Some(max) => match facts.build_time {
            None => Check::fail(CheckKind::MaxAge, "build age")
                .expected(format!("built within {}", show_duration(max)))
                .found("no build time in the provenance")
                .hint("the provenance has neither finishedOn nor startedOn"),
            Some(t) => {
                let age = now - t;
                Check::of(
                    age <= max as i64 && age >= -300,
                    CheckKind::MaxAge,
                    "build age",
                )
                .expected(format!("built within {}", show_duration(max)))
                .found(if age >= 0 {
                    format!("built {} ago", show_duration(age as u64))
                } else {
                    format!(
                        "build time is {} in the future",
                        show_duration((-age) as u64)
                    )
                })
                .hint("rebuild and re-sign, or raise max_age")
            }
        },
    });
    (checks, level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::policy::BuilderRule;
    use serde_json::json;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    fn github_predicate() -> Value {
        json!({
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {"workflow": {
                    "ref": "refs/tags/v1.2.0",
                    "repository": "https://github.com/octo/hello",
                    "path": ".github/workflows/release.yml"}},
                "resolvedDependencies": [{
                    "uri": "git+https://github.com/octo/hello@refs/tags/v1.2.0",
                    "digest": {"gitCommit": "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d"}}]
            },
            "runDetails": {
                "builder": {"id": "https://github.com/octo/hello/.github/workflows/release.yml@refs/tags/v1.2.0"},
                "metadata": {"finishedOn": "2026-01-01T00:00:00Z"}
            }
        })
    }

    #[test]
    fn facts_from_github_local_and_gitlab_runner_shapes() {
        let f = provenance_facts(&github_predicate());
        assert_eq!(
            f.source_repository.as_deref(),
            Some("github.com/octo/hello")
        );
        assert_eq!(f.source_ref.as_deref(), Some("refs/tags/v1.2.0"));
        assert_eq!(
            f.commit.as_deref(),
            Some("7fd1a60b01f91b314f59955a4e4d4e80d8edf11d")
        );
        assert_eq!(f.build_time, Some(1_767_225_600));
        assert!(!f.dirty);

        let local = json!({
            "buildDefinition": {"buildType": "https://custody.dev/buildtypes/local/v1",
                "externalParameters": {"repository": "https://github.com/octo/hello", "ref": "refs/heads/main"},
                "resolvedDependencies": [{"uri": "git+https://github.com/octo/hello.git@refs/heads/main",
                    "digest": {"gitCommit": "a".repeat(40)}, "annotations": {"dirty": true}}]},
            "runDetails": {"builder": {"id": LOCAL_BUILDER_ID}}
        });
        let f = provenance_facts(&local);
        assert!(f.dirty);
        assert_eq!(f.source_ref.as_deref(), Some("refs/heads/main"));
        assert_eq!(f.build_time, None);

        // GitLab runner quirk: the commit under `sha256`, only `source` in external parameters.
        let gitlab = json!({
            "buildDefinition": {"buildType": "x", "externalParameters": {"source": "https://gitlab.com/g/p"},
                "resolvedDependencies": [{"uri": "https://gitlab.com/g/p",
                    "digest": {"sha256": "bdd2ecda9ef57b129c88617a0215afc9fb223521"}}]},
            "runDetails": {"builder": {"id": "https://gitlab.com/g/p/-/runners/1"}}
        });
        let f = provenance_facts(&gitlab);
        assert_eq!(f.source_repository.as_deref(), Some("gitlab.com/g/p"));
        assert_eq!(
            f.commit.as_deref(),
            Some("bdd2ecda9ef57b129c88617a0215afc9fb223521")
        );
        // Garbage in: no facts, no panic.
        assert_eq!(provenance_facts(&json!([1, 2])), ProvenanceFacts::default());
    }

    #[test]
    fn normalize_repository_table() {
        for (input, want) in [
            ("git+https://GitHub.com/o/r.git", "github.com/o/r"),
            ("https://github.com/o/r/", "github.com/o/r"),
            ("github.com/o/r", "github.com/o/r"),
            ("ssh://git@host/o/r", "git@host/o/r"),
        ] {
            assert_eq!(normalize_repository(input), want, "{input}");
        }
    }

    fn key() -> SignerEvidence {
        SignerEvidence::Key {
            fingerprint: "k".into(),
        }
    }

    /// One passing and one failing row per rule.
    #[test]
    fn provenance_rule_table() {
        let facts = provenance_facts(&github_predicate());
        let now = 1_767_225_600 + 3600;
        type Edit = fn(&mut ProvenanceRules, &mut ProvenanceFacts);
        let rows: Vec<(&str, CheckKind, Edit, bool)> = vec![
            (
                "builder allowed",
                CheckKind::BuilderId,
                |r, _| {
                    r.builders = vec![BuilderRule {
                        id: p(
                            "https://github.com/octo/hello/.github/workflows/release.yml@refs/tags/*",
                        ),
                        level: None,
                    }]
                },
                true,
            ),
            (
                "builder not allowed",
                CheckKind::BuilderId,
                |r, _| {
                    r.builders = vec![BuilderRule {
                        id: p("https://github.com/other/**"),
                        level: None,
                    }]
                },
                false,
            ),
            (
                "repository allowed",
                CheckKind::SourceRepository,
                |r, _| r.source_repositories = vec![p("https://github.com/octo/hello")],
                true,
            ),
            (
                "repository other",
                CheckKind::SourceRepository,
                |r, _| r.source_repositories = vec![p("github.com/octo/other")],
                false,
            ),
            (
                "repository missing",
                CheckKind::SourceRepository,
                |r, f| {
                    r.source_repositories = vec![p("github.com/octo/hello")];
                    f.source_repository = None;
                },
                false,
            ),
            (
                "tag allowed",
                CheckKind::SourceRef,
                |r, _| r.refs = vec![p("refs/tags/v*")],
                true,
            ),
            (
                "branch required",
                CheckKind::SourceRef,
                |r, _| r.refs = vec![p("refs/heads/main")],
                false,
            ),
            (
                "build type allowed",
                CheckKind::BuildType,
                |r, _| r.build_types = vec![p("https://actions.github.io/buildtypes/workflow/v1")],
                true,
            ),
            (
                "build type other",
                CheckKind::BuildType,
                |r, _| r.build_types = vec![p("https://custody.dev/buildtypes/local/v1")],
                false,
            ),
            (
                "commit present",
                CheckKind::Commit,
                |r, _| r.require_commit = true,
                true,
            ),
            (
                "commit missing",
                CheckKind::Commit,
                |r, f| {
                    r.require_commit = true;
                    f.commit = None;
                },
                false,
            ),
            ("clean tree", CheckKind::CleanTree, |_, _| {}, true),
            (
                "dirty tree",
                CheckKind::CleanTree,
                |_, f| f.dirty = true,
                false,
            ),
            (
                "level met",
                CheckKind::BuildLevel,
                |r, _| r.min_build_level = 1,
                true,
            ),
            (
                "level not met by a key",
                CheckKind::BuildLevel,
                |r, _| r.min_build_level = 2,
                false,
            ),
            (
                "young enough",
                CheckKind::MaxAge,
                |r, _| r.max_age = Some(86_400),
                true,
            ),
            (
                "too old",
                CheckKind::MaxAge,
                |r, _| r.max_age = Some(60),
                false,
            ),
            (
                "no build time",
                CheckKind::MaxAge,
                |r, f| {
                    r.max_age = Some(86_400);
                    f.build_time = None;
                },
                false,
            ),
        ];
        for (name, kind, edit, pass) in rows {
            let mut rules = ProvenanceRules::default();
            let mut f = facts.clone();
            edit(&mut rules, &mut f);
            let (checks, _) = evaluate_provenance(&rules, &f, &key(), now);
            let check = checks.iter().find(|c| c.kind == kind).unwrap();
            assert_eq!(check.failed(), !pass, "{name}: {check:?}");
            if !pass {
                assert!(check.expected.is_some() && check.found.is_some(), "{name}");
                assert!(check.hint.is_some(), "{name}");
            }
        }
    }

    #[test]
    fn build_level_table() {
        let rules = ProvenanceRules::default();
        let gh = provenance_facts(&github_predicate());
        let builder = gh.builder_id.clone().unwrap();
        let cert = |identity: &str, issuer: &str| SignerEvidence::Certificate {
            identity: identity.into(),
            issuer: issuer.into(),
            source_repository: Some("https://github.com/octo/hello".into()),
        };
        assert_eq!(build_level(&gh, &key(), &rules), 1);
        assert_eq!(build_level(&gh, &cert(&builder, GITHUB_ISSUER), &rules), 2);
        assert_eq!(build_level(&gh, &cert(&builder, "https://evil"), &rules), 1);
        assert_eq!(
            build_level(
                &gh,
                &cert(
                    "https://github.com/x/y/.github/workflows/a.yml@main",
                    GITHUB_ISSUER
                ),
                &rules
            ),
            1
        );
        let mut reusable = gh.clone();
        reusable.builder_id =
            Some("https://github.com/slsa/builders/.github/workflows/b.yml@refs/tags/v1".into());
        let rb = reusable.builder_id.clone().unwrap();
        assert_eq!(build_level(&reusable, &cert(&rb, GITHUB_ISSUER), &rules), 3);
        // A certificate without the Source Repository URI extension proves no separation.
        let bare = SignerEvidence::Certificate {
            identity: rb.clone(),
            issuer: GITHUB_ISSUER.into(),
            source_repository: None,
        };
        assert_eq!(build_level(&reusable, &bare, &rules), 2);
        let mut local = gh.clone();
        local.builder_id = Some(LOCAL_BUILDER_ID.into());
        assert_eq!(
            build_level(&local, &cert(LOCAL_BUILDER_ID, GITHUB_ISSUER), &rules),
            1
        );
        let mut gl = gh.clone();
        gl.builder_id = Some("https://gitlab.com/g/p/-/runners/7".into());
        assert_eq!(
            build_level(
                &gl,
                &cert(
                    "https://gitlab.com/g/p//.gitlab-ci.yml@refs/heads/main",
                    "https://gitlab.com"
                ),
                &rules
            ),
            2
        );
        let granted = ProvenanceRules {
            builders: vec![BuilderRule {
                id: p("https://github.com/octo/**"),
                level: Some(3),
            }],
            ..ProvenanceRules::default()
        };
        assert_eq!(build_level(&gh, &key(), &granted), 3);
        let mut none = gh.clone();
        none.builder_id = None;
        assert_eq!(build_level(&none, &key(), &granted), 0);
    }

    /// The build level of keyless provenance comes from the certificate, not from what the
    /// provenance says about the source repository (issue 10): a workflow that signs its own
    /// repository's build is L2 however the provenance names the source.
    #[test]
    fn build_level_trusts_the_certificate_not_the_provenance_claim() {
        let rules = ProvenanceRules::default();
        let mut lying = provenance_facts(&github_predicate());
        lying.source_repository = Some("github.com/someone/else".into());
        let builder = lying.builder_id.clone().unwrap();
        let own_repo = SignerEvidence::Certificate {
            identity: builder.clone(),
            issuer: GITHUB_ISSUER.into(),
            source_repository: Some("https://github.com/octo/hello".into()),
        };
        assert_eq!(build_level(&lying, &own_repo, &rules), 2);
        // A reusable workflow elsewhere, per the certificate, is L3 whatever the provenance says.
        let mut honest = provenance_facts(&github_predicate());
        honest.source_repository = None;
        let mut reusable = honest.clone();
        reusable.builder_id =
            Some("https://github.com/slsa/builders/.github/workflows/b.yml@refs/tags/v1".into());
        let separated = SignerEvidence::Certificate {
            identity: reusable.builder_id.clone().unwrap(),
            issuer: GITHUB_ISSUER.into(),
            source_repository: Some("https://github.com/Octo/hello".into()),
        };
        assert_eq!(build_level(&reusable, &separated, &rules), 3);
    }
}
