//! Which scope's `sources:` rules a `sources check` of an SBOM or lockfile uses: the scope named,
//! the one that applies to a repository, or the policy's only scope with such a section.

use super::{Policy, Scope};
use crate::decisions::sources::SourcesRules;

/// How the scope is chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ScopeChoice {
    /// The only scope with a `sources:` section.
    #[default]
    Only,
    /// A scope by its name.
    Named(String),
    /// The scope that applies to an artifact in this repository (as `verify` picks it).
    Repository(String),
}

/// Why no `sources:` rules could be chosen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourcesScopeError {
    #[error("policy {policy} has no scope named {name:?} (scopes: {scopes})")]
    NoSuchScope {
        policy: String,
        name: String,
        scopes: String,
    },
    #[error("no scope of policy {policy} applies to {repository}")]
    NoScopeFor { policy: String, repository: String },
    #[error("scope {scope} of policy {policy} has no sources: section")]
    NoSources { policy: String, scope: String },
    #[error("policy {policy} has no scope with a sources: section")]
    NoneHasSources { policy: String },
    #[error("policy {policy} has {count} scopes with a sources: section ({scopes})")]
    Ambiguous {
        policy: String,
        count: usize,
        scopes: String,
    },
}

impl crate::foundation::hint::Hint for SourcesScopeError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            SourcesScopeError::NoSuchScope { .. } | SourcesScopeError::Ambiguous { .. } => {
                "choose one with --scope NAME, or --repository REPOSITORY as verify would".into()
            }
            SourcesScopeError::NoScopeFor { .. } => {
                "add a scope for this repository to the policy, or name one with --scope".into()
            }
            SourcesScopeError::NoSources { .. } | SourcesScopeError::NoneHasSources { .. } => {
                "add `sources: {internal: [{packages: [...], registries: [...]}]}` to the scope (`custody policy init` shows one)".into()
            }
        })
    }
}

fn names<'a>(scopes: impl Iterator<Item = &'a Scope>) -> String {
    scopes
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Policy {
    /// The scope `choice` picks and its `sources:` rules.
    pub fn sources_rules(
        &self,
        choice: &ScopeChoice,
    ) -> Result<(&Scope, &SourcesRules), SourcesScopeError> {
        let policy = self.source.clone();
        let scope = match choice {
            ScopeChoice::Named(name) => {
                self.scopes
                    .iter()
                    .find(|s| &s.name == name)
                    .ok_or_else(|| SourcesScopeError::NoSuchScope {
                        policy: policy.clone(),
                        name: name.clone(),
                        scopes: names(self.scopes.iter()),
                    })?
            }
            ScopeChoice::Repository(repository) => {
                self.scope_for(repository)
                    .ok_or_else(|| SourcesScopeError::NoScopeFor {
                        policy: policy.clone(),
                        repository: repository.clone(),
                    })?
            }
            ScopeChoice::Only => {
                let with: Vec<&Scope> =
                    self.scopes.iter().filter(|s| s.sources.is_some()).collect();
                match with.as_slice() {
                    [only] => *only,
                    [] => return Err(SourcesScopeError::NoneHasSources { policy }),
                    many => {
                        return Err(SourcesScopeError::Ambiguous {
                            policy,
                            count: many.len(),
                            scopes: names(many.iter().copied()),
                        });
                    }
                }
            }
        };
        match &scope.sources {
            Some(rules) => Ok((scope, rules)),
            None => Err(SourcesScopeError::NoSources {
                policy,
                scope: scope.name.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::policy::Format;

    const POLICY: &str = "version: 1
scopes:
  - name: internal
    repositories: [\"registry.acme.internal/**\"]
    signers: [{name: k, key: k.pub}]
    sources:
      internal:
        - packages: [\"pkg:npm/@acme/*\"]
          registries: [https://npm.acme.internal/]
  - name: public
    repositories: [\"**\"]
    signers: [{name: k, key: k.pub}]
";

    fn policy(text: &str) -> Policy {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = crate::evidence::sign::keys::SigningKey::generate_p256().expect("key");
        std::fs::write(dir.path().join("k.pub"), key.public_key().to_pem()).expect("write key");
        Policy::parse(text.as_bytes(), Format::Yaml, dir.path(), "p.yaml").expect("policy parses")
    }

    #[test]
    fn the_choice_table() {
        let p = policy(POLICY);
        let pick = |c: ScopeChoice| p.sources_rules(&c).map(|(s, _)| s.name.clone());
        assert_eq!(pick(ScopeChoice::Only), Ok("internal".into()));
        assert_eq!(
            pick(ScopeChoice::Named("internal".into())),
            Ok("internal".into())
        );
        assert!(matches!(
            pick(ScopeChoice::Named("public".into())),
            Err(SourcesScopeError::NoSources { scope, .. }) if scope == "public"
        ));
        assert!(matches!(
            pick(ScopeChoice::Named("nope".into())),
            Err(SourcesScopeError::NoSuchScope { scopes, .. }) if scopes == "internal, public"
        ));
        assert_eq!(
            pick(ScopeChoice::Repository("registry.acme.internal/app".into())),
            Ok("internal".into())
        );
        assert!(matches!(
            pick(ScopeChoice::Repository("ghcr.io/x/y".into())),
            Err(SourcesScopeError::NoSources { scope, .. }) if scope == "public"
        ));
    }

    #[test]
    fn none_or_several_sources_sections_need_a_choice() {
        let none = policy(&POLICY.replace("    sources:\n      internal:\n        - packages: [\"pkg:npm/@acme/*\"]\n          registries: [https://npm.acme.internal/]\n", ""));
        assert!(matches!(
            none.sources_rules(&ScopeChoice::Only),
            Err(SourcesScopeError::NoneHasSources { .. })
        ));
        let two = policy(&format!(
            "{POLICY}    sources:\n      internal:\n        - packages: [\"pkg:cargo/acme-*\"]\n          registries: [sparse+https://cargo.acme.internal/index/]\n"
        ));
        assert!(matches!(
            two.sources_rules(&ScopeChoice::Only),
            Err(SourcesScopeError::Ambiguous { count: 2, .. })
        ));
    }
}
