//! Verifying a local file under the same policy as an artifact in a store: with the detached
//! bundles given beside it ([`detached`], `verify ./app.tar --bundle B`), or as one of the files
//! of an artifact verified in a store ([`locate`], `verify ./app.tar --from REF`), for a user who
//! downloaded a release asset.

use std::collections::BTreeSet;

use super::{
    Check, CheckKind, Error, ManifestReport, PolicyRef, ReferrerKind, ReferrerReport,
    VerifyOptions, VerifyReport, evaluate_bundle, gates, parse_statement, policy_checks,
};
use crate::decisions::policy::{Policy, Scope};
use crate::evidence::attach::{self, FoundBundle, Origin};
use crate::evidence::attest::PREDICATE_SLSA_PROVENANCE_V1;
use crate::evidence::sign::bundle::{Bundle, Content};
use crate::foundation::digest::Digest;
use crate::foundation::oci::Manifest;
use crate::storage::store::Store;

/// A bundle given with the file (read by the caller, bounded by
/// [`crate::evidence::sign::bundle::MAX_BUNDLE_SIZE`]).
#[derive(Clone, Debug)]
pub struct DetachedBundle {
    /// How the user named it (a path), for the report.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The file as the report names it.
#[derive(Clone, Debug)]
pub struct LocalFile {
    pub name: String,
    pub digest: Digest,
}

/// The scope that applies to a file: the one for `options.scope_repository` (the repository
/// the file belongs to), else the policy's only scope. A file has no repository of its own.
fn scope_for_file<'p>(
    policy: &'p Policy,
    options: &VerifyOptions,
) -> Result<&'p Scope, Box<Check>> {
    let names = || {
        policy
            .scopes
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &options.scope_repository {
        Some(repository) => policy.scope_for(repository).ok_or_else(|| {
            Box::new(Check::fail(CheckKind::Scope, "policy scope")
                .expected(format!("a scope whose repositories match {repository}"))
                .found(format!("no scope matches; scopes: {}", names()))
                .hint(
                    "add a scope for this repository to the policy; nothing is trusted by default",
                ))
        }),
        None => match policy.scopes.as_slice() {
            [only] => Ok(only),
            _ => Err(Box::new(
                Check::fail(CheckKind::Scope, "policy scope")
                    .expected("--scope-as naming the repository the file belongs to")
                    .found(format!(
                        "a file has no repository, and the policy has {} scopes: {}",
                        policy.scopes.len(),
                        names()
                    ))
                    .hint("give --scope-as REPOSITORY to choose the scope whose rules apply"),
            )),
        },
    }
}

/// Verifies `file` with the bundles given for it, against `policy`: the same signature,
/// binding, threshold, provenance, SBOM and gate checks as an artifact in a store, with the
/// file's sha256 as the subject every bundle must name.
pub fn detached(
    file: &LocalFile,
    bundles: &[DetachedBundle],
    policy: &Policy,
    options: &VerifyOptions,
) -> Result<VerifyReport, Error> {
    let now = options.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    let mut checks = vec![
        Check::pass(CheckKind::File, "file digest")
            .expected(file.name.clone())
            .found(file.digest.to_string()),
    ];
    let scope = match scope_for_file(policy, options) {
        Ok(scope) => scope,
        Err(check) => {
            checks.push(*check);
            return Ok(report(file, None, policy, checks, Vec::new()));
        }
    };
    checks.push(
        Check::pass(CheckKind::Scope, "policy scope")
            .expected(
                options
                    .scope_repository
                    .as_ref()
                    .map_or("the policy's only scope".into(), |r| {
                        format!("a scope matching {r}")
                    }),
            )
            .found(scope.name.clone()),
    );
    if scope.vulnerabilities.is_some() && options.vulnerability_db.is_none() {
        return Err(Error::NoVulnerabilityDatabase {
            scope: scope.name.clone(),
        });
    }
    let mut trusted = Vec::new();
    let mut referrers = Vec::new();
    for b in bundles {
        let found = FoundBundle {
            origin: Origin::Detached {
                file: b.name.clone(),
                manifest: Digest::of(&b.bytes),
            },
            media_type: String::new(),
            bundle: b.bytes.clone(),
            claimed_predicate_type: None,
            created: None,
        };
        let (r, t) = evaluate_bundle(&found, &file.digest, scope, &options.trusted_root);
        referrers.push(r);
        trusted.extend(t);
    }
    checks.push(
        Check::pass(CheckKind::Discover, "detached bundles")
            .expected("the bundles given with --bundle")
            .found(format!("{} bundle(s)", bundles.len())),
    );
    let (mut policy_checks, level) = policy_checks(scope, &trusted, &referrers, now);
    checks.append(&mut policy_checks);
    checks.extend(gates::checks(
        &file.digest,
        scope,
        &trusted,
        &referrers,
        options.vulnerability_db.as_deref(),
        gates::day_of(now),
    ));
    let mut r = report(file, Some(scope), policy, checks, referrers);
    r.artifact.build_level = level;
    Ok(r)
}

fn report(
    file: &LocalFile,
    scope: Option<&Scope>,
    policy: &Policy,
    checks: Vec<Check>,
    referrers: Vec<ReferrerReport>,
) -> VerifyReport {
    let verified = scope.is_some() && !checks.iter().any(Check::failed);
    VerifyReport {
        reference: file.name.clone(),
        pinned: format!("{}@{}", file.name, file.digest),
        digest: Some(file.digest.clone()),
        scope: scope.map(|s| s.name.clone()),
        policy: PolicyRef {
            source: policy.source.clone(),
            digest: policy.digest.clone(),
        },
        verified,
        artifact: ManifestReport {
            digest: Some(file.digest.clone()),
            media_type: "application/octet-stream".into(),
            platform: None,
            verified,
            checks,
            referrers,
            ignored: Vec::new(),
            build_level: None,
            platforms: Vec::new(),
            unsigned: Vec::new(),
        },
        trusted_root: None,
        attestations_repository: None,
    }
}

/// After `report` verified the artifact in `store`: adds the check that `file` is one of its
/// files (a layer of the artifact or of one of its platforms, or a subject of its trusted
/// provenance) and refuses the report when it is not. A refused report gets the check as
/// skipped: nothing about the file can be trusted from an artifact that did not verify.
pub fn locate(store: &dyn Store, report: &mut VerifyReport, file: &LocalFile) -> Result<(), Error> {
    let name = format!("{} is one of the artifact's files", file.name);
    let Some(artifact) = report.digest.clone().filter(|_| report.verified) else {
        report.artifact.checks.push(
            Check::skip(CheckKind::File, name)
                .expected(file.digest.to_string())
                .found("the artifact did not verify"),
        );
        return Ok(());
    };
    let mut layers: BTreeSet<Digest> = BTreeSet::new();
    let mut manifests = vec![artifact.clone()];
    while let Some(digest) = manifests.pop() {
        let fetched = store.get_manifest(&digest).map_err(|source| Error::Fetch {
            digest: digest.clone(),
            source: Box::new(source),
        })?;
        match &fetched.manifest {
            Manifest::Image(m) => layers.extend(m.layers.iter().map(|l| l.digest.clone())),
            // Only the platforms the report verified (one level: an index of indexes is not
            // walked further).
            Manifest::Index(i) if digest == artifact => manifests.extend(
                i.manifests
                    .iter()
                    .filter(|m| m.is_manifest_like())
                    .filter(|m| {
                        report
                            .artifact
                            .platforms
                            .iter()
                            .any(|p| p.verified && p.digest.as_ref() == Some(&m.digest))
                    })
                    .map(|m| m.digest.clone()),
            ),
            Manifest::Index(_) => {}
        }
    }
    let found = if layers.contains(&file.digest) {
        Some(format!("a layer of {artifact}"))
    } else if provenance_subjects(store, report)?.contains(file.digest.hex()) {
        Some(format!("a subject of the trusted provenance of {artifact}"))
    } else {
        None
    };
    let check = Check::of(found.is_some(), CheckKind::File, name)
        .expected(format!(
            "{} among the layers or provenance subjects of {artifact}",
            file.digest
        ))
        .found(found.unwrap_or_else(|| {
            format!(
                "neither a layer ({} checked) nor a provenance subject",
                layers.len()
            )
        }))
        .hint("this file is not what was verified: download it again from the release, or name the artifact it came from");
    report.verified &= !check.failed();
    report.artifact.verified &= !check.failed();
    report.artifact.checks.push(check);
    Ok(())
}

/// The sha256 subjects of the provenance bundles the report trusted, read again by their
/// referrer digest (content-addressed, so the same bytes that verified).
fn provenance_subjects(
    store: &dyn Store,
    report: &VerifyReport,
) -> Result<BTreeSet<String>, Error> {
    let wanted: BTreeSet<&Digest> = std::iter::once(&report.artifact)
        .chain(report.artifact.platforms.iter())
        .flat_map(|m| m.referrers.iter())
        .filter(|r| {
            r.trusted
                && r.kind == ReferrerKind::Bundle
                && r.predicate_type.as_deref() == Some(PREDICATE_SLSA_PROVENANCE_V1)
        })
        .map(|r| &r.manifest)
        .collect();
    let mut subjects = BTreeSet::new();
    if wanted.is_empty() {
        return Ok(subjects);
    }
    let subjects_of = |m: &ManifestReport| m.digest.clone();
    for subject in std::iter::once(&report.artifact)
        .chain(report.artifact.platforms.iter())
        .filter_map(subjects_of)
    {
        let limits = attach::Limits {
            referrers: super::MAX_REFERRERS,
            ..attach::Limits::DEFAULT
        };
        attach::discover_each(store, &subject, &limits, &mut |found| {
            let attach::Found::Bundle(b) = found else {
                return;
            };
            let Origin::Referrer { manifest, .. } = &b.origin else {
                return;
            };
            if !wanted.contains(manifest) {
                return;
            }
            if let Ok(bundle) = Bundle::from_json(&b.bundle)
                && let Content::Dsse(env) = bundle.content()
                && let Ok(statement) = parse_statement(&env.payload)
            {
                subjects.extend(statement.subjects);
            }
        })
        .map_err(|source| Error::Discover {
            digest: subject.clone(),
            source: Box::new(source),
        })?;
    }
    Ok(subjects)
}
