//! `custody verify FILE --bundle B...` and `custody verify FILE --from REFERENCE`: a local file
//! (a downloaded release asset) under the same policy as an artifact in a store.

use std::path::Path;

use anyhow::Context as _;

use super::super::{Cli, Failure, Printer};
use super::{VerifyArgs, could_not, load_vulnerability_db};
use custody::decisions::verify::file::{self, DetachedBundle, LocalFile};
use custody::decisions::verify::{VerifyOptions, VerifyReport};
use custody::evidence::sign::bundle::MAX_BUNDLE_SIZE;
use custody::foundation::reference::Reference;
use custody::storage::store;

/// True when `verify` was asked about a local file rather than a stored artifact.
pub fn wanted(args: &VerifyArgs) -> bool {
    !args.bundle.is_empty() || args.from.is_some()
}

/// The hint for a reference that does not parse but names a local file.
pub fn hint_for(reference: &str) -> Option<&'static str> {
    Path::new(reference).is_file().then_some(
        "a local file is verified with its bundles (--bundle B) or against the artifact it came from (--from REGISTRY/REPO:TAG)",
    )
}

fn local_file(path: &str) -> Result<LocalFile, Failure> {
    let (digest, _) = custody::foundation::digest::of_file(Path::new(path))
        .with_context(|| format!("cannot read {path}"))
        .map_err(|e| could_not(e, None))?;
    Ok(LocalFile {
        name: path.to_owned(),
        digest,
    })
}

/// The report for the file; exit codes as for a stored artifact.
pub fn run(cli: &Cli, args: &VerifyArgs, printer: &Printer) -> Result<VerifyReport, Failure> {
    let file = local_file(&args.reference)?;
    match &args.from {
        Some(from) => from_store(cli, args, from, &file, printer),
        None => detached(args, &file),
    }
}

fn detached(args: &VerifyArgs, local: &LocalFile) -> Result<VerifyReport, Failure> {
    let bundles = args
        .bundle
        .iter()
        .map(|path| {
            Ok(DetachedBundle {
                name: super::super::stdio::name(path),
                bytes: super::super::stdio::read(path, MAX_BUNDLE_SIZE as u64)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(|e| could_not(e, None))?;
    let (policy, _) = super::policy_and_root(&args.trust, &args.key, None)?;
    let scope_as = match &args.scope_as {
        None => None,
        Some(text) => Some(
            text.parse::<Reference>()
                .with_context(|| format!("bad --scope-as repository {text:?}"))
                .map_err(|e| could_not(e, None))?
                .repository(),
        ),
    };
    // A file has no repository: the scope named with --scope-as, else the policy's only one.
    let repository = scope_as.clone().or_else(|| match policy.scopes.as_slice() {
        [only] => only.repositories.first().map(|p| p.as_str().to_owned()),
        _ => None,
    });
    let (root, origin) = super::super::trust_cmds::root_for(
        &policy,
        repository.as_deref().unwrap_or_default(),
        args.trusted_root.as_deref(),
        args.offline,
    )?;
    let options = VerifyOptions {
        trusted_root: root,
        platform: None,
        now: None,
        scope_repository: scope_as,
        jobs: 0,
        attestations: Default::default(),
        vulnerability_db: load_vulnerability_db(
            &policy,
            repository.as_deref().unwrap_or_default(),
            &args.trust.db,
        )
        .map_err(|e| could_not(e, None))?,
    };
    let mut report = file::detached(local, &bundles, &policy, &options)
        .map_err(|e| Failure::from(anyhow::Error::new(e).context("could not verify")))?;
    report.trusted_root = origin;
    Ok(report)
}

fn from_store(
    cli: &Cli,
    args: &VerifyArgs,
    from: &str,
    local: &LocalFile,
    printer: &Printer,
) -> Result<VerifyReport, Failure> {
    let stored = VerifyArgs {
        reference: from.to_owned(),
        from: None,
        ..args.clone()
    };
    let mut report = super::run_verify(cli, &stored, printer)?;
    let reference: Reference = from
        .parse()
        .with_context(|| format!("bad --from reference {from:?}"))
        .map_err(|e| could_not(e, None))?;
    let mut options = super::super::store_options(cli);
    options.progress = super::super::request_log(cli);
    let store = store::open_existing(&reference, &options)
        .with_context(|| format!("cannot open {}", reference.repository()))
        .map_err(|e| could_not(e, None))?;
    file::locate(store.as_ref(), &mut report, local)
        .map_err(|e| Failure::from(anyhow::Error::new(e).context("could not verify")))?;
    Ok(report)
}
