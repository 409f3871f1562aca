//! `release`: the pipeline a CI step runs, with defaults that make the first run work on a
//! laptop (the embedded store, a local development key).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::attest_cmds::process_env;
use super::secops_cmds::Audited;
use super::{Cli, ExitStatus, Failure, Printer, Report, sign_cmds, store_options};
use custody::decisions::verify;
use custody::evidence::attach::LegacyTags;
use custody::evidence::attest::Timestamp;
use custody::evidence::ci;
use custody::evidence::sbom::SpecVersion;
use custody::evidence::sign::{self, ChosenSigner, KeySigner, SignerSetupError, SigningKey, keys};
use custody::evidence::source::{DirtyPolicy, SourceError};
use custody::foundation::hint::Hint as _;
use custody::foundation::reference::Reference;
use custody::storage::store;
use custody::storage::transfer::{self, TagPolicy};
use custody::workflows::audit;
use custody::workflows::release::{self, BuildkitStatements, ReleaseRequest, SourceMode, Subject};

#[derive(clap::Args, Debug)]
pub struct ReleaseArgs {
    /// Artifact files to release (pushed as one OCI artifact).
    #[arg(required_unless_present = "image", conflicts_with = "image")]
    pub files: Vec<PathBuf>,
    /// Destination: registry/repo[:tag] or oci:<dir>[:tag]. Default: the embedded store
    /// `.custody/store` at the top of the work tree. Without a tag, the version tag at HEAD
    /// (else `git-<commit>`) is used.
    #[arg(long)]
    pub to: Option<String>,
    /// Attest an image a container build already pushed, in place, instead of files.
    #[arg(long)]
    pub image: Option<String>,
    /// How to sign: --key, else keyless with an identity token (CI), else a local development
    /// key created on first use.
    #[command(flatten)]
    pub signer: super::attach_cmds::SignerArgs,
    /// A folder inside the work tree the artifact was built from.
    #[arg(long, default_value = ".")]
    pub source: PathBuf,
    /// Lockfile for the SBOM (repeatable). Default: those at the top of the work tree.
    #[arg(long = "lockfile", value_name = "FILE")]
    pub lockfiles: Vec<PathBuf>,
    /// Release from a work tree with uncommitted changes; the provenance records it.
    #[arg(long)]
    pub allow_dirty: bool,
    /// Release without a git source record (outside a work tree); the provenance then names
    /// no commit, which policies that require one refuse. Needs a tag in --to.
    #[arg(long, conflicts_with = "allow_dirty")]
    pub no_source: bool,
    /// Manifest annotation KEY=VALUE of the released files (repeatable).
    /// `org.opencontainers.image.created` is set unless given: SOURCE_DATE_EPOCH, else the
    /// commit's time.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Also write cosign v2 `.sig`/`.att` tags for tools that read only those.
    #[arg(long)]
    pub legacy_cosign_tags: bool,
    /// CycloneDX version of the SBOM.
    #[arg(long, default_value = "1.6")]
    pub sbom_spec_version: SpecVersion,
    /// The artifact type of the pushed manifest.
    #[arg(long)]
    pub artifact_type: Option<String>,
    /// Move the destination tag even if it names another digest.
    #[arg(long)]
    pub force_tag: bool,
    /// With --image on an index built by BuildKit: check that each of BuildKit's in-toto
    /// statements (SLSA provenance, SPDX SBOM) is about the platform manifest it is listed
    /// for, then sign it as given and attach it to that manifest, so policies can require it.
    /// One statement about anything else refuses the release before anything is signed.
    /// Without this flag BuildKit's statements stay unsigned and never count.
    #[arg(long, requires = "image")]
    pub adopt_buildkit: bool,
}

/// custody's folder in the user's configuration directory.
fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("custody"));
    }
    let home = std::env::var_os("HOME").context("neither XDG_CONFIG_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".config").join("custody"))
}

/// How to sign in CI when neither a key nor a token is there.
pub const CI_NO_SIGNER_HINT: &str = "GitHub Actions: give the job `permissions: id-token: write`; GitLab CI: add `id_tokens: SIGSTORE_ID_TOKEN: aud: sigstore` to the job; or pass --key";

fn running_in_ci() -> bool {
    ["GITHUB_ACTIONS", "GITLAB_CI"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| s == "true"))
}

/// The local development key, created on first use (private key mode 0600). Artifacts signed
/// with it carry the local builder id, which production policies refuse.
pub fn development_key(printer: &Printer) -> anyhow::Result<(SigningKey, PathBuf)> {
    let dir = config_dir()?;
    let private = dir.join("dev-key.pem");
    let public = dir.join("dev-key.pub");
    if private.is_file() {
        let pem = zeroize::Zeroizing::new(
            std::fs::read_to_string(&private)
                .with_context(|| format!("cannot read {}", private.display()))?,
        );
        let key = keys::load_private_key(&pem, None)
            .with_context(|| format!("cannot load the development key {}", private.display()))?;
        return Ok((key, public));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = SigningKey::generate_p256().context("cannot generate a development key")?;
    let pem = key
        .to_pkcs8_pem()
        .context("cannot encode the development key")?;
    write_private(&private, pem.expose().as_bytes())?;
    std::fs::write(&public, key.public_key().to_pem())
        .with_context(|| format!("cannot write {}", public.display()))?;
    printer.stderr(&format!(
        "note: created a local development key at {} (public key {}); what it signs is marked as a local build\n",
        private.display(),
        public.display()
    ));
    Ok((key, public))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".custody-key-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a key file in {}", dir.display()))?;
    std::fs::set_permissions(
        temp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist_noclobber(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // Belt and braces: the final file is 0600 whatever the umask did.
    let _ = std::fs::OpenOptions::new().mode(0o600).open(path);
    Ok(())
}

/// Where a release goes when `--to` is not given: `.custody/store` at the top of the work tree.
/// The folder ignores itself (a `.gitignore` of `*`, as virtual environments do), so the store
/// never makes the work tree dirty.
fn default_destination(source_dir: &Path) -> anyhow::Result<Reference> {
    let root = release::workdir_root(source_dir);
    // Keep a relative root relative and tidy: `.custody/store`, not `./.custody/store`.
    let root = if root.components().all(|c| c == std::path::Component::CurDir) {
        PathBuf::new()
    } else {
        root
    };
    let dir = root.join(".custody");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(
            &ignore,
            "# custody's embedded store; not part of the source\n*\n",
        )
        .with_context(|| format!("cannot write {}", ignore.display()))?;
    }
    Ok(Reference::layout(dir.join("store")))
}

pub fn release(cli: &Cli, args: &ReleaseArgs, printer: &Printer) -> Result<Audited, Failure> {
    let env = process_env();
    let ci = ci::detect(&env).context("cannot tell which CI runs custody")?;
    let (image, destination) = destination(args)?;
    let (signer, key_note) = signer(args, printer)?;
    let store = store::open(&destination, &store_options(cli))
        .with_context(|| format!("cannot open {}", destination.repository()))?;
    let request = ReleaseRequest {
        jobs: super::jobs(cli),
        attestations: super::attestations_lookup(cli)?,
        ..request(args, &image, &destination)?
    };
    release::check_request(&request).map_err(|e| release_failure(e, &destination))?;
    let (outcome, report) = match release::release(store.as_ref(), &signer, &ci, &request)
        .map_err(|e| release_failure(e, &destination))?
    {
        release::Released::Verified { outcome, verified } => (*outcome, verified.into_report()),
        release::Released::Refused { outcome, report } => {
            let json = serde_json::to_value(&report).expect("serialisable");
            return Err(Failure {
                error: anyhow::anyhow!(
                    "what was just published at {} does not verify:\n{}",
                    outcome.pinned,
                    serde_json::to_string_pretty(&json).expect("json")
                ),
                status: ExitStatus::Failure,
                hint: Some(
                    "the artifact was not tagged; fix the cause and run the release again".into(),
                ),
            });
        }
    };

    let human = human(&outcome, &report, key_note.as_deref());
    let mut json = serde_json::to_value(&outcome).expect("serialisable");
    json["signingKey"] = serde_json::json!(key_note);
    json["verified"] = serde_json::json!(report.verified);
    json["verification"] = serde_json::to_value(&report).expect("serialisable");
    Ok(Audited {
        report: Report { human, json },
        done: audit::Done::Released {
            outcome: Box::new(outcome),
            verified: report.verified,
        },
    })
}

/// The image to attest in place (if any) and the destination reference.
fn destination(args: &ReleaseArgs) -> Result<(Option<Reference>, Reference), Failure> {
    let image = args
        .image
        .as_deref()
        .map(|i| {
            i.parse::<Reference>()
                .with_context(|| format!("cannot use {i:?} as a reference"))
        })
        .transpose()?;
    let destination = match (&args.to, &image) {
        (Some(to), _) => to
            .parse::<Reference>()
            .with_context(|| format!("cannot use {to:?} as a destination"))?,
        (None, Some(image)) => image.clone(),
        (None, None) => default_destination(&args.source)?,
    };
    if destination.digest.is_some() && image.is_none() {
        return Err(anyhow::anyhow!(
            "the destination {destination} names a digest; give a repository and optionally a tag"
        )
        .into());
    }
    Ok((image, destination))
}

/// The signer: --key, else keyless with a token, else (outside CI) the development key; the
/// public key to name when the development key signed.
fn signer(
    args: &ReleaseArgs,
    printer: &Printer,
) -> Result<(ChosenSigner, Option<PathBuf>), Failure> {
    let options = sign_cmds::signer_options(args.signer.key.as_deref(), &args.signer.keyless)?;
    match sign::choose_signer(&options, &sign_cmds::token_env()) {
        Ok(chosen) => Ok((chosen, None)),
        // On a hosted CI runner a development key would sign a provenance naming the CI
        // builder with a key nobody can trust: refuse and say how to get a token.
        Err(SignerSetupError::NoSigner) if running_in_ci() => Err(Failure {
            error: anyhow::anyhow!(
                "no key and no identity token in CI; a development key is only made outside CI"
            ),
            status: super::ExitStatus::Error,
            hint: Some(CI_NO_SIGNER_HINT.into()),
        }),
        Err(SignerSetupError::NoSigner) => {
            let (key, public) = development_key(printer)?;
            Ok((ChosenSigner::Key(KeySigner::new(key)), Some(public)))
        }
        Err(e) => {
            let hint = e.hint();
            Err(Failure {
                error: anyhow::Error::new(e).context("cannot set up signing"),
                status: ExitStatus::Error,
                hint,
            })
        }
    }
}

/// The library's request from the flags.
fn request(
    args: &ReleaseArgs,
    image: &Option<Reference>,
    destination: &Reference,
) -> Result<ReleaseRequest, Failure> {
    Ok(ReleaseRequest {
        subject: match &image {
            Some(i) => Subject::Image(i.clone()),
            None => Subject::Files(args.files.clone()),
        },
        destination: destination.clone(),
        source_dir: args.source.clone(),
        lockfiles: args.lockfiles.clone(),
        dirty: if args.allow_dirty {
            DirtyPolicy::Allow
        } else {
            DirtyPolicy::Refuse
        },
        source_mode: if args.no_source {
            SourceMode::Untracked
        } else {
            SourceMode::Git
        },
        annotations: transfer::parse_annotations(&args.annotations)?,
        created: source_date_epoch()?,
        sbom_spec: args.sbom_spec_version,
        legacy_tags: if args.legacy_cosign_tags {
            LegacyTags::Write
        } else {
            LegacyTags::Skip
        },
        tag_policy: if args.force_tag {
            TagPolicy::Force
        } else {
            TagPolicy::Immutable
        },
        artifact_type: args.artifact_type.clone(),
        attestations: Default::default(),
        now: Timestamp::from_system_time(std::time::SystemTime::now()),
        jobs: 0,
        buildkit: if args.adopt_buildkit {
            BuildkitStatements::Adopt
        } else {
            BuildkitStatements::Leave
        },
    })
}

/// The human report of a release that verified and was tagged.
fn human(
    outcome: &release::ReleaseOutcome,
    report: &verify::VerifyReport,
    key_note: Option<&Path>,
) -> String {
    let mut human = String::new();
    if outcome.already_released {
        let _ = writeln!(
            human,
            "already released {} (its signature, provenance and SBOM verify; nothing new attached)",
            outcome.pinned
        );
    } else {
        let _ = writeln!(human, "released {}", outcome.pinned);
    }
    match &outcome.source {
        Some(source) => {
            let _ = writeln!(
                human,
                "  source   {} @ {}{}",
                source
                    .repository
                    .as_ref()
                    .map_or("(no remote)".to_owned(), |r| r.to_string()),
                source.commit,
                if source.dirty { " (dirty)" } else { "" }
            );
        }
        None => {
            let _ = writeln!(human, "  source   none (--no-source)");
        }
    }
    let _ = writeln!(human, "  builder  {}", outcome.builder_id);
    let _ = writeln!(
        human,
        "  sbom     {} components from {} lockfile(s)",
        outcome.sbom_components,
        outcome.lockfiles.len()
    );
    let verb = if outcome.already_released {
        "found   "
    } else {
        "attached"
    };
    for r in &outcome.referrers {
        let _ = writeln!(
            human,
            "  {verb} {:<10} {}  {}",
            format!("{:?}", r.kind).to_lowercase(),
            r.digest,
            r.predicate_type
        );
    }
    for p in &outcome.platforms {
        let _ = writeln!(
            human,
            "  platform {} {}  (sbom: {} components)",
            p.platform.as_deref().unwrap_or("index"),
            p.digest,
            p.sbom_components
        );
        for r in &p.referrers {
            let _ = writeln!(
                human,
                "    {verb} {:<10} {}  {}",
                format!("{:?}", r.kind).to_lowercase(),
                r.digest,
                r.predicate_type
            );
        }
    }
    for a in &outcome.adopted {
        let _ = writeln!(
            human,
            "  adopted  buildkit {} about {} (signed as referrer {})",
            a.predicate_type, a.platform, a.referrer
        );
    }
    for t in &outcome.legacy_tags {
        let _ = writeln!(human, "  legacy   {t}");
    }
    if let (Some(tag), Some(result)) = (&outcome.tag, &outcome.tag_outcome) {
        let _ = writeln!(human, "  tag      {tag} ({result:?})");
    }
    if let Some(public) = key_note {
        let _ = writeln!(
            human,
            "  signed with the local development key; verify with --key {}",
            public.display()
        );
    }
    let _ = writeln!(
        human,
        "  verified {} check(s) passed against the signer that released it",
        report
            .artifact
            .checks
            .iter()
            .filter(|c| c.status == verify::report::Status::Pass)
            .count()
    );
    if !report.artifact.platforms.is_empty() {
        let _ = writeln!(
            human,
            "  verified each of the {} platform(s) on its own signature, provenance and SBOM",
            report.artifact.platforms.len()
        );
    }
    human
}

/// `SOURCE_DATE_EPOCH` (reproducible builds), when set.
pub(super) fn source_date_epoch() -> anyhow::Result<Option<Timestamp>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .map(|secs| Some(Timestamp::from_unix(secs)))
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")),
        _ => Ok(None),
    }
}

/// A release error with the hint that gets past it.
fn release_failure(error: release::Error, destination: &Reference) -> Failure {
    let hint = match &error {
        release::Error::Source(SourceError::Dirty { .. }) => Some(
            "commit or stash the changes (or add build outputs to .gitignore); the files being released never count. Or pass --allow-dirty, which the provenance records"
                .to_owned(),
        ),
        release::Error::Source(SourceError::NotARepository { .. }) => Some(
            "release from a git work tree; outside git, use `custody push` then `custody sign` and `custody attest`, or pass --no-source (the provenance then names no commit)"
                .to_owned(),
        ),
        _ => None,
    };
    let mut failure = match error {
        // These name what they are about themselves, as their own first line.
        release::Error::UntrackedWithoutTag
        | release::Error::NoTrustedRoot
        | release::Error::Verify { .. }
        | release::Error::Tag { .. } => Failure::from(error),
        _ => Failure::from(
            anyhow::Error::new(error).context(format!("cannot release to {destination}")),
        ),
    };
    if hint.is_some() {
        failure.hint = hint;
    }
    failure
}
