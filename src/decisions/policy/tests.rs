use super::*;
use crate::evidence::sign::keys::SigningKey;

fn pem() -> String {
    SigningKey::generate_p256().unwrap().public_key().to_pem()
}

fn yaml(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(text.as_bytes(), Format::Yaml, Path::new("."), "test.yaml")
}

fn indent(pem: &str) -> String {
    pem.lines()
        .map(|l| format!("          {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn key_policy(extra: &str) -> String {
    format!(
        "version: 1\nscopes:\n  - name: prod\n    repositories: [\"reg.example/prod/**\"]\n    signers:\n      - name: k\n        key: |\n{}\n{extra}",
        indent(&pem())
    )
}

#[test]
fn loads_a_yaml_policy_with_inline_key() {
    let p = yaml(&key_policy("    threshold: 1\n")).unwrap();
    assert_eq!(p.scopes.len(), 1);
    assert!(matches!(p.scopes[0].signers[0].kind, SignerKind::Key(_)));
    assert_eq!(p.scopes[0].threshold, 1);
    assert!(p.digest.is_some());
}

#[test]
fn syntax_errors_point_at_the_line() {
    let text = "version: 1\nscopes:\n  - name: a\n    repositories: [\"**\"]\n    thresold: 2\n";
    let err = yaml(text).unwrap_err();
    assert!(
        matches!(err, PolicyError::Syntax { line: Some(5), .. }),
        "{err:?}"
    );
    let err = Policy::parse(
        b"{\"version\": 1,\n \"scopes\": [\n  {\"repositories\": 3}]}",
        Format::Json,
        Path::new("."),
        "p.json",
    )
    .unwrap_err();
    assert!(
        matches!(err, PolicyError::Syntax { line: Some(3), .. }),
        "{err:?}"
    );
    let err = yaml("version: [\n").unwrap_err();
    assert!(matches!(err, PolicyError::Syntax { .. }), "{err:?}");
}

#[test]
fn semantic_errors_point_at_the_line() {
    let text = "version: 1\nscopes:\n  - name: a\n    repositories: [\"**\"]\n    signers:\n      - name: id\n        issuer: https://issuer\n        subject_regexp: \"(unclosed\"\n";
    let err = yaml(text).unwrap_err();
    assert!(
        matches!(&err, PolicyError::Invalid { line: Some(6), message } if message.contains("does not compile")),
        "{err:?}"
    );
    let err = yaml("version: 2\nscopes: []\n").unwrap_err();
    assert!(
        matches!(err, PolicyError::Invalid { line: Some(1), .. }),
        "{err:?}"
    );
    let err = yaml(&key_policy("    sbom:\n      signers: [nobody]\n")).unwrap_err();
    assert!(
        matches!(&err, PolicyError::Invalid { message, .. } if message.contains("\"nobody\"")),
        "{err:?}"
    );
    let err = yaml(&key_policy("    threshold: 0\n")).unwrap_err();
    assert!(
        matches!(&err, PolicyError::Invalid { message, .. } if message.contains("threshold is 0"))
    );
    let err = yaml(&key_policy("    provenance:\n      max_age: 3y\n")).unwrap_err();
    assert!(matches!(&err, PolicyError::Invalid { message, .. } if message.contains("max_age")));
    let err = yaml(&key_policy("    provenance:\n      min_build_level: 4\n")).unwrap_err();
    assert!(matches!(&err, PolicyError::Invalid { message, .. } if message.contains("0 to 3")));
}

#[test]
fn a_certificate_is_never_a_key() {
    let text = "version: 1\nscopes:\n  - repositories: [\"**\"]\n    signers:\n      - name: c\n        key: |\n          -----BEGIN CERTIFICATE-----\n          MIIB\n          -----END CERTIFICATE-----\n";
    let err = yaml(text).unwrap_err();
    assert!(
        matches!(&err, PolicyError::Invalid { message, .. } if message.contains("is a certificate")),
        "{err:?}"
    );
}

#[test]
fn key_files_are_relative_to_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.pub"), pem()).unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(
        &path,
        "version: 1\nscopes:\n  - repositories: [\"**\"]\n    signers:\n      - name: k\n        key: k.pub\n",
    )
    .unwrap();
    let p = Policy::load(&path).unwrap();
    assert!(matches!(p.scopes[0].signers[0].kind, SignerKind::Key(_)));
    std::fs::write(
        &path,
        "version: 1\nscopes:\n  - repositories: [\"**\"]\n    signers:\n      - name: k\n        key: missing.pub\n",
    )
    .unwrap();
    let err = Policy::load(&path).unwrap_err();
    assert!(
        matches!(&err, PolicyError::Invalid { line: Some(5), message } if message.contains("missing.pub")),
        "{err:?}"
    );
}

/// Scope matching: the most specific pattern wins; no match is no scope.
#[test]
fn scope_matching_table() {
    let text = "version: 1\nscopes:\n  - name: all\n    repositories: [\"**\"]\n  - name: acme\n    repositories: [\"ghcr.io/acme/**\"]\n  - name: app\n    repositories: [\"ghcr.io/acme/app\"]\n  - name: team\n    repositories: [\"ghcr.io/acme/team/*\"]\n";
    let p = yaml(text).unwrap();
    for (repo, want) in [
        ("ghcr.io/acme/app", "app"),
        ("ghcr.io/acme/other", "acme"),
        ("ghcr.io/acme/team/x", "team"),
        ("docker.io/library/alpine", "all"),
    ] {
        assert_eq!(p.scope_for(repo).unwrap().name, want, "{repo}");
    }
    let narrow =
        yaml("version: 1\nscopes:\n  - name: acme\n    repositories: [\"ghcr.io/acme/*\"]\n")
            .unwrap();
    assert!(narrow.scope_for("ghcr.io/other/app").is_none());
    assert!(narrow.scope_for("ghcr.io/acme/team/app").is_none());
}

/// Issue 10, finding 2: the spelling of the host never picks the scope. Every spelling of a
/// prod repository, and a prod pattern written with another spelling, lands in `prod`, never
/// in the lax catch-all.
#[test]
fn host_spellings_pick_the_same_scope() {
    let policy = |prod: &str| {
        yaml(&format!(
            "version: 1\nscopes:\n  - name: lax\n    repositories: [\"**\"]\n  - name: prod\n    repositories: [\"{prod}\"]\n  - name: hub\n    repositories: [\"index.docker.io/acme/*\", \"alpine\"]\n"
        ))
        .unwrap()
    };
    let repositories = [
        "localhost:5000/prod/app",
        "LOCALHOST:5000/prod/app",
        "LocalHost.:5000/prod/app",
        "localhost:05000/prod/app",
    ];
    for pattern in [
        "localhost:5000/prod/**",
        "LOCALHOST:5000/prod/**",
        "localhost.:5000/prod/**",
    ] {
        let p = policy(pattern);
        for repo in repositories {
            assert_eq!(
                p.scope_for(repo).unwrap().name,
                "prod",
                "{pattern} vs {repo}"
            );
        }
        assert_eq!(p.scope_for("localhost:5001/prod/app").unwrap().name, "lax");
    }
    for pattern in [
        "registry.example.com/prod/**",
        "Registry.Example.com:443/prod/**",
        "registry.example.com.:443/prod/**",
    ] {
        let p = policy(pattern);
        for repo in [
            "registry.example.com/prod/app",
            "registry.example.com:443/prod/app",
            "REGISTRY.EXAMPLE.COM/prod/app",
            "registry.example.com./prod/app",
            "registry.example.com.:443/prod/app",
        ] {
            assert_eq!(
                p.scope_for(repo).unwrap().name,
                "prod",
                "{pattern} vs {repo}"
            );
        }
        // Another port is another registry.
        assert_eq!(
            p.scope_for("registry.example.com:8443/prod/app")
                .unwrap()
                .name,
            "lax"
        );
    }
    let p = policy("localhost:5000/prod/**");
    for repo in [
        "docker.io/acme/app",
        "index.docker.io/acme/app",
        "registry-1.docker.io:443/acme/app",
        "alpine",
        "docker.io/alpine",
        "Docker.IO/library/alpine",
    ] {
        assert_eq!(p.scope_for(repo).unwrap().name, "hub", "{repo}");
    }
    assert_eq!(
        p.scopes[1].repositories[0].as_str(),
        "localhost:5000/prod/**"
    );
    assert_eq!(p.scopes[2].repositories[0].as_str(), "docker.io/acme/*");
    assert_eq!(
        p.scopes[2].repositories[1].as_str(),
        "docker.io/library/alpine"
    );
    // A pattern whose literal host is not a host is refused at load, naming it.
    let err = yaml("version: 1\nscopes:\n  - name: bad\n    repositories: [\"reg..example/**\"]\n")
        .unwrap_err();
    assert!(err.to_string().contains("reg..example/**"), "{err}");
}

#[test]
fn the_starter_policy_parses_once_its_keys_exist() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/release.pub"), pem()).unwrap();
    std::fs::write(dir.path().join("keys/dev.pub"), pem()).unwrap();
    let p = Policy::parse(
        STARTER_POLICY.as_bytes(),
        Format::Yaml,
        dir.path(),
        "starter",
    )
    .unwrap();
    assert_eq!(p.scopes.len(), 2);
    let prod = p.scope_for("registry.example.com/prod/app").unwrap();
    assert_eq!(prod.name, "production");
    assert_eq!(prod.provenance.as_ref().unwrap().min_build_level, 2);
    assert_eq!(prod.provenance.as_ref().unwrap().max_age, Some(90 * 86_400));
    assert!(prod.sbom.as_ref().unwrap().required);
}

#[test]
fn malformed_policies_never_panic() {
    let inputs: Vec<String> = vec![
        String::new(),
        "\u{0}".into(),
        "[".repeat(10_000),
        "a: &a [*a, *a]\n".into(),
        format!("version: 1\nscopes:\n{}", "  - ".repeat(5000)),
        "version: !!binary AAAA\n".into(),
        "- - - - -\n".repeat(100),
    ];
    for input in inputs {
        let r = yaml(&input);
        assert!(r.is_err(), "{input:.40}");
        let _ = Policy::parse(input.as_bytes(), Format::Json, Path::new("."), "x");
    }
    let big = vec![b' '; MAX_POLICY_SIZE + 1];
    assert!(matches!(
        Policy::parse(&big, Format::Yaml, Path::new("."), "x"),
        Err(PolicyError::TooLarge { .. })
    ));
}

const GATES: &str = "    vulnerabilities:
      databases: [osv/crates.io, /abs/all.zip]
      max_severity: medium
      grace_period_days: 14
      vex_signers: [k]
      exceptions:
        - id: CVE-2019-15551
          reason: never called
          expires: 2026-06-30
          purl: pkg:cargo/smallvec
    sources:
      internal:
        - packages: [\"pkg:npm/@acme/*\"]
          registries: [https://npm.acme.internal/]
";

#[test]
fn vulnerabilities_and_sources_sections_are_checked() {
    let p = Policy::parse(
        key_policy(GATES).as_bytes(),
        Format::Yaml,
        Path::new("/policies"),
        "test.yaml",
    )
    .unwrap();
    let gate = p.scopes[0].vulnerabilities.as_ref().unwrap();
    assert_eq!(
        gate.rules.max_severity,
        crate::decisions::vuln::Rating::Medium
    );
    assert_eq!(
        gate.rules.unknown_severity_as,
        crate::decisions::vuln::Rating::High
    );
    assert_eq!(gate.rules.grace_period_days, Some(14));
    assert_eq!(gate.rules.exceptions[0].id.as_str(), "CVE-2019-15551");
    assert_eq!(
        gate.databases,
        vec![
            PathBuf::from("/policies/osv/crates.io"),
            PathBuf::from("/abs/all.zip")
        ]
    );
    assert_eq!(gate.vex_signers, Some(vec!["k".to_string()]));
    let sources = p.scopes[0].sources.as_ref().unwrap();
    assert_eq!(sources.internal[0].packages, vec!["pkg:npm/@acme/*"]);
    assert!(sources.internal[0].allow_local_paths);

    // No sections: nothing to gate.
    let p = yaml(&key_policy("")).unwrap();
    assert!(p.scopes[0].vulnerabilities.is_none() && p.scopes[0].sources.is_none());

    // Each mistake is refused, naming it.
    let table: &[(&str, &str, &str)] = &[
        ("vex_signers: [k]", "vex_signers: [nobody]", "nobody"),
        ("max_severity: medium", "max_severity: severe", "severe"),
        ("max_severity: medium", "max_sev: medium", "max_sev"),
        ("reason: never called", "reason: \"  \"", "reason is empty"),
        ("expires: 2026-06-30", "expires: soon", "soon"),
        (
            "registries: [https://npm.acme.internal/]",
            "registries: [npm.acme.internal]",
            "not a URL prefix",
        ),
        (
            "- packages: [\"pkg:npm/@acme/*\"]",
            "- packages: []",
            "`packages` is empty",
        ),
    ];
    for (from, to, needle) in table {
        let text = key_policy(&GATES.replace(from, to));
        let err = yaml(&text).unwrap_err();
        assert!(err.to_string().contains(needle), "{to}: {err}");
        assert!(err.line().is_some(), "{to}: {err} has no line");
    }
}

#[test]
fn the_schema_names_exactly_the_gate_fields() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../../schemas/policy.schema.json")).unwrap();
    let scope = &schema["$defs"]["scope"]["properties"];
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    // The vulnerabilities section: the rule fields of VulnerabilityRules, plus databases and
    // vex_signers.
    let rules = crate::decisions::vuln::policy::VulnerabilityRules {
        grace_period_days: Some(1),
        exceptions: vec![crate::decisions::vuln::policy::Exception {
            id: crate::decisions::vuln::AdvisoryId::parse("X-1").unwrap(),
            reason: "r".into(),
            expires: crate::decisions::vuln::Date::parse("2026-01-01").unwrap(),
            purl: Some("pkg:cargo/x".into()),
        }],
        ..Default::default()
    };
    let mut value = serde_json::to_value(&rules).unwrap();
    value["databases"] = serde_json::json!([]);
    value["vex_signers"] = serde_json::json!([]);
    assert_eq!(keys(&value), keys(&scope["vulnerabilities"]["properties"]));
    assert_eq!(
        keys(&value["exceptions"][0]),
        keys(&scope["vulnerabilities"]["properties"]["exceptions"]["items"]["properties"])
    );
    // And every one of those keys is read by the policy parser.
    let json = serde_json::json!({"version": 1, "scopes": [{"repositories": ["**"],
        "vulnerabilities": value, "sources": serde_json::to_value(crate::decisions::sources::SourcesRules {
            internal: vec![crate::decisions::sources::InternalRule {
                packages: vec!["pkg:npm/@a/*".into()],
                registries: vec!["https://r/".into()],
                allow_local_paths: false,
            }],
        }).unwrap()}]});
    let text = serde_json::to_string(&json).unwrap();
    let p = Policy::parse(text.as_bytes(), Format::Json, Path::new("."), "x.json").unwrap();
    assert!(p.scopes[0].vulnerabilities.is_some());
    let sources = serde_json::to_value(p.scopes[0].sources.as_ref().unwrap()).unwrap();
    assert_eq!(
        keys(&sources["internal"][0]),
        keys(&scope["sources"]["properties"]["internal"]["items"]["properties"])
    );
    assert_eq!(keys(&sources), keys(&scope["sources"]["properties"]));
}

#[test]
fn signature_types_and_vsa_expectations_are_checked() {
    let vsa = crate::evidence::attest::PREDICATE_SLSA_VSA_V1;
    let p = yaml(&key_policy(&format!(
        "    signature_predicate_types: [\"https://slsa.dev/provenance/v1\"]\n    attestations:\n      - predicate_type: {vsa}\n        policy_uri: https://example.com/policy.yaml\n        resource_uri: \"reg.example/prod/*@*\"\n"
    )))
    .unwrap();
    let scope = &p.scopes[0];
    assert_eq!(
        scope.signature_predicate_types,
        ["https://slsa.dev/provenance/v1"]
    );
    let expect = &scope.attestations[0].vsa;
    assert_eq!(
        expect.policy_uri.as_deref(),
        Some("https://example.com/policy.yaml")
    );
    assert!(
        expect
            .resource_uri
            .as_ref()
            .unwrap()
            .matches("reg.example/prod/app@sha256:00")
    );
    // No signature types by default: an attestation is not a signature.
    assert!(
        yaml(&key_policy("")).unwrap().scopes[0]
            .signature_predicate_types
            .is_empty()
    );

    let rows = [
        (
            "    attestations:\n      - predicate_type: https://slsa.dev/provenance/v1\n        policy_uri: https://example.com/p\n",
            "apply to a verification summary",
        ),
        (
            &*format!("    signature_predicate_types: [\"{vsa}\"]\n"),
            "it is not a signature",
        ),
        (
            "    signature_predicate_types: [\"\"]\n",
            "empty predicate type",
        ),
        (
            "    attestations:\n      - predicate_type: x\n        verdict: PASSED\n",
            "unknown field",
        ),
    ];
    for (extra, want) in rows {
        let err = yaml(&key_policy(extra)).unwrap_err();
        assert!(err.to_string().contains(want), "{extra}: {err}");
        if want != "unknown field" {
            assert!(matches!(err, PolicyError::Invalid { .. }), "{err:?}");
        }
    }
}

#[test]
fn a_scope_names_its_trust_as_a_file_or_a_tuf_mirror() {
    let parse = |trust: &str| {
        Policy::parse(
            format!(
                "version: 1\nscopes:\n  - repositories: [\"**\"]\n    signers:\n      - name: k\n        issuer: https://i\n        subject: s\n    trust: {trust}\n"
            )
            .as_bytes(),
            Format::Yaml,
            Path::new("/policies"),
            "p.yaml",
        )
    };
    let p = parse("{trusted_root: roots/internal.json}").unwrap();
    assert_eq!(
        p.scopes[0].trust,
        Some(ScopeTrust::TrustedRoot(
            "/policies/roots/internal.json".into()
        ))
    );
    let p = parse("{tuf: {mirror: \"https://tuf.internal\", root: /abs/root.json}}").unwrap();
    assert_eq!(
        p.scopes[0].trust,
        Some(ScopeTrust::Tuf {
            mirror: "https://tuf.internal".into(),
            root: "/abs/root.json".into()
        })
    );
    for bad in [
        "{}",
        "{trusted_root: a.json, tuf: {mirror: \"https://t\", root: r.json}}",
        "{tuf: {mirror: \"file:///x\", root: r.json}}",
    ] {
        let err = parse(bad).unwrap_err();
        assert!(
            matches!(err, PolicyError::Invalid { ref message, .. } if message.contains("trust")),
            "{bad}: {err:?}"
        );
    }
    let err = parse("{tuf: {mirror: \"https://t\"}}").unwrap_err();
    assert!(matches!(err, PolicyError::Syntax { .. }), "{err:?}");
}

#[test]
fn an_unknown_field_suggests_the_nearest_known_one() {
    let err = yaml("version: 1\nscopes:\n  - name: a\n    repositorys: [\"**\"]\n").unwrap_err();
    assert_eq!(
        err.suggestion().as_deref(),
        Some("did you mean `repositories`?")
    );
    // Nothing near: no guess.
    let err = yaml("version: 1\nscopes:\n  - name: a\n    zzzzzzzzzzzz: 1\n").unwrap_err();
    assert_eq!(err.suggestion(), None);
    // The JSON form names the fields in backticks.
    assert_eq!(
        super::did_you_mean("unknown field `treshold`, expected one of `name`, `threshold`")
            .as_deref(),
        Some("did you mean `threshold`?")
    );
    assert_eq!(super::did_you_mean("unknown field `x"), None);
    assert_eq!(super::edit_distance("kitten", "sitting"), 3);
}

#[test]
fn a_scope_names_its_attestations_repository() {
    let p = yaml(&key_policy(
        "    attestations_repository: reg.example/prod/sigs\n",
    ))
    .unwrap();
    let r = p.scopes[0].attestations_repository.as_ref().unwrap();
    assert_eq!(r.repository, "reg.example/prod/sigs");
    assert_eq!(
        r.source,
        Source::Policy {
            scope: "prod".into()
        }
    );
    assert!(
        yaml(&key_policy("")).unwrap().scopes[0]
            .attestations_repository
            .is_none()
    );
    for bad in ["reg.example/prod/sigs:v1", "\"not a repo\""] {
        let err = yaml(&key_policy(&format!(
            "    attestations_repository: {bad}\n"
        )))
        .unwrap_err();
        assert!(
            matches!(&err, PolicyError::Invalid { line: Some(_), message } if message.contains("attestations repository")),
            "{bad}: {err:?}"
        );
    }
}
