//! Overrides from the command line: the trust and requirement flags of `verify`, `promote` and
//! `tree`, applied to every scope of a policy file (one scope applies per run), or made into a
//! policy of their own when no file is given. The CLI only fills [`Overrides`]; what each flag
//! does to a policy is decided here.

use crate::evidence::sign::keys::PublicKey;
use crate::evidence::sign::verify::{SubjectMatcher, TlogRequirement};
use crate::foundation::glob::PatternError;

use super::{
    BuilderRule, Pattern, Policy, ProvenanceRules, RequiredAttestation, SbomRules, Scope,
    SignerKind, TrustedSigner, VsaExpectation,
};

/// The flags, as given. Empty lists and `None` leave the policy as it is.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Trusted public keys; they replace every scope's signers.
    pub keys: Vec<PublicKey>,
    /// A keyless signer's exact identity (SAN); needs `certificate_oidc_issuer`.
    pub certificate_identity: Option<String>,
    /// A keyless signer's identity as a regular expression (unanchored).
    pub certificate_identity_regexp: Option<String>,
    pub certificate_oidc_issuer: Option<String>,
    pub threshold: Option<u32>,
    pub require_tlog: bool,
    /// Predicate types that must have a trusted attestation.
    pub require_attestation: Vec<String>,
    pub require_provenance: bool,
    /// Glob patterns; each list replaces the provenance rule it names.
    pub builder_id: Vec<String>,
    pub source_repository: Vec<String>,
    pub source_ref: Vec<String>,
    pub build_type: Vec<String>,
    pub min_build_level: Option<u8>,
    /// `30d`, `12h`, `1d12h`.
    pub max_age: Option<String>,
    pub allow_dirty: bool,
    pub require_sbom: bool,
}

/// Why the overrides cannot make a usable policy. Messages name the flags, which is how users
/// give these.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    #[error("--certificate-identity needs --certificate-oidc-issuer")]
    IdentityWithoutIssuer,
    #[error(
        "--certificate-oidc-issuer needs --certificate-identity or --certificate-identity-regexp"
    )]
    IssuerWithoutIdentity,
    #[error("invalid regular expression {regex:?}")]
    Regex {
        regex: String,
        #[source]
        source: regex::Error,
    },
    #[error("bad pattern {pattern:?}")]
    Pattern {
        pattern: String,
        #[source]
        source: PatternError,
    },
    /// `reason` is the duration parser's own sentence, which names the input.
    #[error("{reason}")]
    MaxAge { input: String, reason: String },
    #[error("--threshold 0 would trust anything")]
    ZeroThreshold,
    #[error(
        "no trusted signers: give --policy, a public key (--key; --trust-key in promote), or --certificate-identity with --certificate-oidc-issuer"
    )]
    NoSigners,
}

/// The policy of a run with no policy file: one scope for every repository, nothing trusted
/// until the overrides name a signer.
pub fn flags_policy() -> Policy {
    Policy {
        scopes: vec![Scope {
            name: "flags".into(),
            repositories: vec![Pattern::parse("**").expect("a valid pattern")],
            signers: Vec::new(),
            threshold: 1,
            key_tlog: TlogRequirement::Skip,
            attestations: Vec::new(),
            signature_predicate_types: Vec::new(),
            provenance: None,
            sbom: None,
            vulnerabilities: None,
            sources: None,
            trust: None,
            attestations_repository: None,
        }],
        source: "flags".into(),
        digest: None,
    }
}

impl Overrides {
    /// Applies the overrides to every scope of `policy` (or of [`flags_policy`] when there is no
    /// file). Refuses a result that trusts no signer in any scope.
    pub fn apply(&self, policy: Option<Policy>) -> Result<Policy, OverrideError> {
        let mut policy = policy.unwrap_or_else(flags_policy);
        let signers = self.signers()?;
        let max_age = match &self.max_age {
            Some(s) => Some(
                crate::foundation::time::parse_duration(s).map_err(|reason| {
                    OverrideError::MaxAge {
                        input: s.clone(),
                        reason,
                    }
                })?,
            ),
            None => None,
        };
        for scope in &mut policy.scopes {
            self.apply_to(scope, &signers, max_age)?;
        }
        if policy.scopes.iter().all(|s| s.signers.is_empty()) {
            return Err(OverrideError::NoSigners);
        }
        Ok(policy)
    }

    /// The signers the flags name: each key, then the keyless identity.
    fn signers(&self) -> Result<Vec<TrustedSigner>, OverrideError> {
        let mut signers: Vec<TrustedSigner> = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, key)| TrustedSigner {
                name: if self.keys.len() == 1 {
                    "key".into()
                } else {
                    format!("key {}", i + 1)
                },
                kind: SignerKind::Key(key.clone()),
            })
            .collect();
        let subject = match (
            &self.certificate_identity,
            &self.certificate_identity_regexp,
            &self.certificate_oidc_issuer,
        ) {
            (None, None, None) => return Ok(signers),
            (_, _, None) => return Err(OverrideError::IdentityWithoutIssuer),
            (None, None, Some(_)) => return Err(OverrideError::IssuerWithoutIdentity),
            (Some(exact), _, Some(_)) => SubjectMatcher::Exact(exact.clone()),
            (None, Some(r), Some(_)) => {
                SubjectMatcher::Regex(regex::Regex::new(r).map_err(|source| {
                    OverrideError::Regex {
                        regex: r.clone(),
                        source,
                    }
                })?)
            }
        };
        let issuer = self.certificate_oidc_issuer.clone().expect("matched above");
        signers.push(TrustedSigner {
            name: "identity".into(),
            kind: SignerKind::Identity { issuer, subject },
        });
        Ok(signers)
    }

    /// Whether any flag asks something of the provenance.
    fn touches_provenance(&self, max_age: Option<u64>) -> bool {
        self.require_provenance
            || !self.builder_id.is_empty()
            || !self.source_repository.is_empty()
            || !self.source_ref.is_empty()
            || !self.build_type.is_empty()
            || self.min_build_level.is_some()
            || max_age.is_some()
    }

    fn apply_to(
        &self,
        scope: &mut Scope,
        signers: &[TrustedSigner],
        max_age: Option<u64>,
    ) -> Result<(), OverrideError> {
        if !signers.is_empty() {
            scope.signers = signers.to_vec();
            // The policy's signer names no longer exist; any trusted signer may sign.
            scope.attestations.iter_mut().for_each(|a| a.signers = None);
            if let Some(p) = &mut scope.provenance {
                p.signers = None;
            }
            if let Some(s) = &mut scope.sbom {
                s.signers = None;
            }
        }
        if let Some(t) = self.threshold {
            if t == 0 {
                return Err(OverrideError::ZeroThreshold);
            }
            scope.threshold = t;
        }
        if self.require_tlog {
            scope.key_tlog = TlogRequirement::Required;
        }
        for a in &self.require_attestation {
            scope.attestations.push(RequiredAttestation {
                predicate_type: a.clone(),
                signers: None,
                vsa: VsaExpectation::default(),
            });
        }
        if self.touches_provenance(max_age) {
            self.apply_provenance(scope, max_age)?;
        }
        if self.allow_dirty
            && let Some(p) = &mut scope.provenance
        {
            p.allow_dirty = true;
        }
        if self.require_sbom {
            scope
                .sbom
                .get_or_insert(SbomRules {
                    required: true,
                    signers: None,
                })
                .required = true;
        }
        Ok(())
    }

    /// Provenance becomes required; each list given replaces the rule it names.
    fn apply_provenance(
        &self,
        scope: &mut Scope,
        max_age: Option<u64>,
    ) -> Result<(), OverrideError> {
        let p = scope.provenance.get_or_insert_with(|| ProvenanceRules {
            required: true,
            require_commit: true,
            ..ProvenanceRules::default()
        });
        p.required = true;
        if !self.builder_id.is_empty() {
            p.builders = patterns(&self.builder_id)?
                .into_iter()
                .map(|id| BuilderRule { id, level: None })
                .collect();
        }
        if !self.source_repository.is_empty() {
            p.source_repositories = patterns(&self.source_repository)?;
        }
        if !self.source_ref.is_empty() {
            p.refs = patterns(&self.source_ref)?;
        }
        if !self.build_type.is_empty() {
            p.build_types = patterns(&self.build_type)?;
        }
        if let Some(l) = self.min_build_level {
            p.min_build_level = l;
        }
        if max_age.is_some() {
            p.max_age = max_age;
        }
        Ok(())
    }
}

fn patterns(list: &[String]) -> Result<Vec<Pattern>, OverrideError> {
    list.iter()
        .map(|p| {
            Pattern::parse(p).map_err(|source| OverrideError::Pattern {
                pattern: p.clone(),
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::sign::keys::SigningKey;

    fn key() -> PublicKey {
        SigningKey::generate_p256().unwrap().public_key()
    }

    fn file_policy() -> Policy {
        let mut p = flags_policy();
        p.source = "policy.yaml".into();
        p.scopes[0].name = "prod".into();
        p.scopes[0].signers = vec![TrustedSigner {
            name: "release".into(),
            kind: SignerKind::Key(key()),
        }];
        p.scopes[0].sbom = Some(SbomRules {
            required: false,
            signers: Some(vec!["release".into()]),
        });
        p
    }

    #[test]
    fn keys_replace_the_signers_and_clear_the_names_that_referred_to_them() {
        let overrides = Overrides {
            keys: vec![key(), key()],
            ..Overrides::default()
        };
        let p = overrides.apply(Some(file_policy())).unwrap();
        let scope = &p.scopes[0];
        let names: Vec<&str> = scope.signers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["key 1", "key 2"]);
        assert_eq!(scope.sbom.as_ref().unwrap().signers, None);
        assert_eq!(p.source, "policy.yaml");

        let one = Overrides {
            keys: vec![key()],
            ..Overrides::default()
        };
        assert_eq!(one.apply(None).unwrap().scopes[0].signers[0].name, "key");
    }

    #[test]
    fn a_policy_file_keeps_its_signers_when_no_trust_flag_is_given() {
        let p = Overrides::default().apply(Some(file_policy())).unwrap();
        assert_eq!(p.scopes[0].signers[0].name, "release");
        assert_eq!(
            p.scopes[0].sbom.as_ref().unwrap().signers,
            Some(vec!["release".into()])
        );
    }

    #[test]
    fn keyless_flags_need_both_an_identity_and_an_issuer() {
        let issuer = Some("https://issuer.example".to_owned());
        let rows: Vec<(Overrides, Result<SubjectMatcher, &str>)> = vec![
            (
                Overrides {
                    certificate_identity: Some("me@example.com".into()),
                    ..Overrides::default()
                },
                Err("identity without issuer"),
            ),
            (
                Overrides {
                    certificate_oidc_issuer: issuer.clone(),
                    ..Overrides::default()
                },
                Err("issuer without identity"),
            ),
            (
                Overrides {
                    certificate_identity_regexp: Some("(".into()),
                    certificate_oidc_issuer: issuer.clone(),
                    ..Overrides::default()
                },
                Err("bad regex"),
            ),
            (
                Overrides {
                    certificate_identity: Some("me@example.com".into()),
                    certificate_oidc_issuer: issuer.clone(),
                    ..Overrides::default()
                },
                Ok(SubjectMatcher::Exact("me@example.com".into())),
            ),
        ];
        for (overrides, want) in rows {
            let got = overrides.apply(None);
            match (got, want) {
                (Ok(p), Ok(SubjectMatcher::Exact(want))) => {
                    let SignerKind::Identity { issuer, subject } = &p.scopes[0].signers[0].kind
                    else {
                        panic!("an identity signer");
                    };
                    assert_eq!(issuer, "https://issuer.example");
                    assert!(matches!(subject, SubjectMatcher::Exact(s) if *s == want));
                }
                (Err(e), Err("identity without issuer")) => {
                    assert!(matches!(e, OverrideError::IdentityWithoutIssuer), "{e}");
                }
                (Err(e), Err("issuer without identity")) => {
                    assert!(matches!(e, OverrideError::IssuerWithoutIdentity), "{e}");
                }
                (Err(e), Err("bad regex")) => {
                    assert!(matches!(e, OverrideError::Regex { ref regex, .. } if regex == "("));
                }
                (got, want) => panic!("got {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn nothing_trusted_and_a_zero_threshold_are_refused() {
        assert!(matches!(
            Overrides::default().apply(None),
            Err(OverrideError::NoSigners)
        ));
        let zero = Overrides {
            keys: vec![key()],
            threshold: Some(0),
            ..Overrides::default()
        };
        assert!(matches!(
            zero.apply(None),
            Err(OverrideError::ZeroThreshold)
        ));
        let two = Overrides {
            keys: vec![key()],
            threshold: Some(2),
            require_tlog: true,
            ..Overrides::default()
        };
        let p = two.apply(None).unwrap();
        assert_eq!(p.scopes[0].threshold, 2);
        assert_eq!(p.scopes[0].key_tlog, TlogRequirement::Required);
    }

    #[test]
    fn provenance_flags_make_provenance_required_and_replace_each_rule_they_name() {
        let overrides = Overrides {
            keys: vec![key()],
            builder_id: vec!["https://github.com/*".into()],
            source_ref: vec!["refs/tags/v*".into()],
            min_build_level: Some(2),
            max_age: Some("30d".into()),
            allow_dirty: true,
            ..Overrides::default()
        };
        let p = overrides.apply(None).unwrap();
        let rules = p.scopes[0].provenance.as_ref().unwrap();
        assert!(rules.required && rules.require_commit && rules.allow_dirty);
        assert_eq!(rules.builders[0].id.as_str(), "https://github.com/*");
        assert_eq!(rules.refs[0].as_str(), "refs/tags/v*");
        assert!(rules.source_repositories.is_empty());
        assert_eq!(rules.min_build_level, 2);
        assert_eq!(rules.max_age, Some(30 * 24 * 3600));

        // --allow-dirty alone asks nothing of provenance the policy does not have.
        let dirty = Overrides {
            keys: vec![key()],
            allow_dirty: true,
            ..Overrides::default()
        };
        assert!(dirty.apply(None).unwrap().scopes[0].provenance.is_none());
    }

    #[test]
    fn malformed_patterns_and_durations_name_the_input() {
        let bad_pattern = Overrides {
            keys: vec![key()],
            build_type: vec![String::new()],
            ..Overrides::default()
        };
        assert!(matches!(
            bad_pattern.apply(None),
            Err(OverrideError::Pattern { ref pattern, .. }) if pattern.is_empty()
        ));
        let bad_age = Overrides {
            keys: vec![key()],
            max_age: Some("soon".into()),
            ..Overrides::default()
        };
        let err = bad_age.apply(None).unwrap_err();
        assert!(matches!(err, OverrideError::MaxAge { ref input, .. } if input == "soon"));
        assert!(err.to_string().contains("soon"), "{err}");
    }

    #[test]
    fn required_attestations_and_sbom_are_added() {
        let overrides = Overrides {
            keys: vec![key()],
            require_attestation: vec!["https://example.com/p".into()],
            require_sbom: true,
            ..Overrides::default()
        };
        let p = overrides.apply(Some(file_policy())).unwrap();
        let scope = &p.scopes[0];
        assert_eq!(
            scope.attestations[0].predicate_type,
            "https://example.com/p"
        );
        assert!(scope.sbom.as_ref().unwrap().required);
    }
}
