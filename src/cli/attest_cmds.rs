//! `custody source`, `custody sbom` and `custody provenance`: read the process environment (the
//! only place that does), call the library, write files and print a summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::Report;
use custody::evidence::attest::{self, ProvenanceInput, ResourceDescriptor, Timestamp};
use custody::evidence::ci::{self, CiContext};
use custody::evidence::sbom::{self, SbomOptions, SpecVersion};
use custody::evidence::source::{self, DirtyPolicy, SourceOptions, SourceRecord};
use custody::foundation::digest::Digest;

/// A snapshot of the process environment, for [`ci::detect`].
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

fn detect_ci() -> anyhow::Result<CiContext> {
    ci::detect(&process_env()).context("could not tell which ci runs custody")
}

fn record_source(dir: &Path, dirty: DirtyPolicy, ctx: &CiContext) -> anyhow::Result<SourceRecord> {
    let options = SourceOptions {
        dirty,
        hints: ctx.source_hints.clone(),
        ..Default::default()
    };
    source::record(dir, &options).with_context(|| {
        format!(
            "could not record the source of {} (hint: commit or stash changes, or pass --allow-dirty)",
            dir.display()
        )
    })
}

fn dirty_policy(allow: bool) -> DirtyPolicy {
    if allow {
        DirtyPolicy::Allow
    } else {
        DirtyPolicy::Refuse
    }
}

/// The report of a command that wrote `value`: `human` lines, or `value` as JSON.
fn report(human: String, value: &impl Serialize) -> anyhow::Result<Report> {
    Ok(Report {
        human,
        json: serde_json::to_value(value)?,
    })
}

/// How `-o` is named in a summary.
fn written_to(out: &Path) -> String {
    if super::stdio::is_dash(out) {
        "standard output".to_owned()
    } else {
        out.display().to_string()
    }
}

/// Record the source commit of the work tree.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// Any folder inside the work tree.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Record a work tree with uncommitted or untracked files instead of refusing it.
    #[arg(long)]
    pub allow_dirty: bool,
}

pub mod source_cmd {
    use super::*;

    pub fn run(args: SourceArgs) -> anyhow::Result<Report> {
        let ctx = detect_ci()?;
        let record = record_source(&args.dir, dirty_policy(args.allow_dirty), &ctx)?;
        let mut human = String::new();
        let repo = record
            .repository
            .as_ref()
            .map_or("(no remote)".to_owned(), ToString::to_string);
        let _ = writeln!(human, "repository  {repo}");
        let _ = writeln!(human, "commit      {}", record.commit);
        let _ = writeln!(human, "tree        {}", record.tree);
        let _ = writeln!(
            human,
            "ref         {}",
            record.git_ref.as_deref().unwrap_or("(detached, unknown)")
        );
        if !record.tags.is_empty() {
            let _ = writeln!(human, "tags        {}", record.tags.join(", "));
        }
        let _ = writeln!(
            human,
            "signed      {}",
            if record.signed {
                "yes (not verified)"
            } else {
                "no"
            }
        );
        if record.shallow {
            let _ = writeln!(human, "shallow     yes");
        }
        if record.dirty {
            let _ = writeln!(human, "dirty       yes: {}", record.dirty_paths.join(", "));
        }
        report(human, &record)
    }
}

fn parse_spec_version(s: &str) -> Result<SpecVersion, String> {
    s.parse().map_err(|e: sbom::SbomError| e.to_string())
}

/// Write a CycloneDX SBOM of artifact files and the lockfiles of their source.
#[derive(Debug, Clone, clap::Args)]
pub struct SbomArgs {
    /// Artifact files the SBOM describes.
    #[arg(required_unless_present = "image")]
    pub files: Vec<PathBuf>,
    /// An image (registry or `oci:` layout) whose contents the SBOM describes instead: OS
    /// packages and binaries, each with the layer and path it was found at.
    #[arg(long, conflicts_with_all = ["files", "lockfiles"])]
    pub image: Option<String>,
    /// With --image: only this platform of an index (`os/arch[/variant]`); default: every one.
    #[arg(long, requires = "image")]
    pub platform: Option<String>,
    /// Where to write the SBOM (`-`: standard output, with the summary on standard error).
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
    /// Lockfile to read (repeatable); default: the lockfiles at the top of the work tree.
    #[arg(long = "lockfile")]
    pub lockfiles: Vec<PathBuf>,
    /// CycloneDX version: 1.6 (default), 1.5 or 1.7.
    #[arg(long, default_value = "1.6", value_parser = parse_spec_version)]
    pub spec_version: SpecVersion,
    /// Document format: cyclonedx-json (default) or spdx-json (SPDX 2.3, the same packages,
    /// graph and origins).
    #[arg(long, value_enum, default_value_t = SbomFormat::CyclonedxJson)]
    pub format: SbomFormat,
    /// Any folder inside the source work tree.
    #[arg(long, default_value = ".")]
    pub source: PathBuf,
    /// Artifact name (default: the lockfile's root package, else the first file name).
    #[arg(long)]
    pub name: Option<String>,
    /// Artifact version (default: a tag at HEAD, else the lockfile's root package version).
    #[arg(long = "artifact-version")]
    pub artifact_version: Option<String>,
}

/// The format `custody sbom` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SbomFormat {
    CyclonedxJson,
    SpdxJson,
}

/// The bytes of `bom` in `format`, and how the summary names the format.
fn sbom_bytes(bom: &sbom::Bom, format: SbomFormat) -> anyhow::Result<(Vec<u8>, String)> {
    Ok(match format {
        SbomFormat::CyclonedxJson => (
            bom.to_json_bytes()?,
            format!("CycloneDX {}", bom.spec_version),
        ),
        SbomFormat::SpdxJson => (
            sbom::spdx::from_bom(bom).to_json_bytes()?,
            sbom::spdx::SPDX_VERSION.to_owned(),
        ),
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SbomReport {
    pub path: PathBuf,
    pub digest: Digest,
    pub format: SbomFormat,
    pub spec_version: SpecVersion,
    pub components: usize,
    pub lockfiles: Vec<PathBuf>,
}

pub mod sbom_cmd {
    use super::*;

    fn run_image(
        image: &str,
        args: &SbomArgs,
        store_options: &custody::storage::store::Options,
    ) -> anyhow::Result<Report> {
        use custody::evidence::sbom::image::{self, ImageSbomOptions, PlatformChoice};
        let reference: custody::foundation::reference::Reference = image
            .parse()
            .with_context(|| format!("{image:?} is not an image reference"))?;
        let platform = match &args.platform {
            Some(p) => p.parse()?,
            None => PlatformChoice::All,
        };
        let store = custody::storage::store::open_existing(&reference, store_options)?;
        let bom = image::sbom(
            store.as_ref(),
            &reference,
            &ImageSbomOptions {
                spec_version: args.spec_version,
                platform,
                timestamp: now(),
                serial_number: None,
            },
        )?;
        let (bytes, format) = sbom_bytes(&bom, args.format)?;
        crate::cli::stdio::write(&args.out, &bytes)?;
        let sbom = SbomReport {
            path: args.out.clone(),
            digest: Digest::of(&bytes),
            format: args.format,
            spec_version: args.spec_version,
            components: bom.components.len(),
            lockfiles: Vec::new(),
        };
        let human = format!(
            "sbom written to {} ({format}, {} components from image {image}, {})\n",
            written_to(&sbom.path),
            sbom.components,
            sbom.digest
        );
        report(human, &sbom)
    }

    /// `store` (registry options and credentials) is used only with `--image`.
    pub fn run(args: SbomArgs, store: custody::storage::store::Options) -> anyhow::Result<Report> {
        if let Some(image) = &args.image {
            return run_image(image, &args, &store);
        }
        let artifacts = sbom::artifacts_from_files(&args.files)?;
        let ctx = detect_ci()?;
        // The SBOM notes a dirty tree rather than refusing it; provenance is the gate.
        let source = match source::record(
            &args.source,
            &SourceOptions {
                dirty: DirtyPolicy::Allow,
                hints: ctx.source_hints.clone(),
                ..Default::default()
            },
        ) {
            Ok(record) => Some(record),
            Err(source::SourceError::NotARepository { .. }) => None,
            Err(e) => return Err(e).context("could not record the source"),
        };
        let lockfiles = if args.lockfiles.is_empty() {
            let root = workdir_root(&args.source);
            sbom::discover_lockfiles(&root)
        } else {
            args.lockfiles.clone()
        };
        let locks = lockfiles
            .iter()
            .map(|p| sbom::read_lockfile(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut options = SbomOptions::new(now());
        options.spec_version = args.spec_version;
        options.name = args.name;
        options.version = args.artifact_version.or_else(|| {
            source
                .as_ref()
                .and_then(|s| s.tags.first())
                .map(|t| version_from_tag(t))
        });
        options.source = source;
        let bom = sbom::generate(&artifacts, &locks, &options)?;
        let (bytes, format) = sbom_bytes(&bom, args.format)?;
        crate::cli::stdio::write(&args.out, &bytes)?;
        let sbom = SbomReport {
            path: args.out,
            digest: Digest::of(&bytes),
            format: args.format,
            spec_version: args.spec_version,
            components: bom.components.len(),
            lockfiles,
        };
        let human = format!(
            "sbom written to {} ({format}, {} components from {} lockfiles, {})\n",
            written_to(&sbom.path),
            sbom.components,
            sbom.lockfiles.len(),
            sbom.digest
        );
        report(human, &sbom)
    }
}

/// `v1.2.3` → `1.2.3`; other tags unchanged.
fn version_from_tag(tag: &str) -> String {
    match tag.strip_prefix('v') {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest.to_owned(),
        _ => tag.to_owned(),
    }
}

/// The top of the work tree containing `dir`, or `dir` when it is not in one.
fn workdir_root(dir: &Path) -> PathBuf {
    gix::discover(dir)
        .ok()
        .and_then(|r| r.workdir().map(Path::to_owned))
        .unwrap_or_else(|| dir.to_owned())
}

fn parse_material(s: &str) -> Result<ResourceDescriptor, String> {
    let (uri, digest) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?} is not URI=sha256:HEX"))?;
    let digest: Digest = digest.parse().map_err(|e| format!("{e}"))?;
    Ok(ResourceDescriptor {
        uri: Some(uri.to_owned()),
        digest: attest::DigestSet::sha256(&digest),
        ..ResourceDescriptor::default()
    })
}

fn parse_timestamp(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse(s).map_err(|e| e.to_string())
}

/// Write an SLSA provenance v1 statement (unsigned) for artifact files.
#[derive(Debug, Clone, clap::Args)]
pub struct ProvenanceArgs {
    /// Artifact files: each becomes a subject (file name + sha256).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Where to write the statement (`-`: standard output, with the summary on standard error).
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
    /// The SBOM written for this build, recorded as a byproduct.
    #[arg(long)]
    pub sbom: Option<PathBuf>,
    /// A further input, `URI=sha256:HEX` (repeatable).
    #[arg(long = "material", value_parser = parse_material)]
    pub materials: Vec<ResourceDescriptor>,
    /// Any folder inside the source work tree.
    #[arg(long, default_value = ".")]
    pub source: PathBuf,
    /// Record a dirty work tree (annotated as dirty) instead of refusing it.
    #[arg(long)]
    pub allow_dirty: bool,
    /// When the build started (RFC 3339 UTC).
    #[arg(long, value_parser = parse_timestamp)]
    pub started_on: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvenanceReport {
    pub path: PathBuf,
    pub digest: Digest,
    pub builder_id: String,
    pub build_type: String,
    pub subjects: usize,
    pub commit: String,
}

pub mod provenance_cmd {
    use super::*;

    pub fn run(args: ProvenanceArgs) -> anyhow::Result<Report> {
        let subjects = attest::file_subjects(&args.files)?;
        let ctx = detect_ci()?;
        let source = record_source(&args.source, dirty_policy(args.allow_dirty), &ctx)?;
        let sbom = match &args.sbom {
            Some(path) => {
                let (digest, _) = custody::foundation::digest::of_file(path)
                    .with_context(|| format!("could not read sbom {}", path.display()))?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Some(ResourceDescriptor {
                    media_type: Some(attest::MEDIA_TYPE_CYCLONEDX_JSON.to_owned()),
                    ..ResourceDescriptor::file(name, &digest)
                })
            }
            None => None,
        };
        let mut input = ProvenanceInput::new(subjects, &ctx);
        input.source = Some(&source);
        input.materials = args.materials;
        input.sbom = sbom;
        input.started_on = args.started_on.or_else(|| job_started_at(&ctx));
        input.finished_on = Some(now());
        let statement = attest::provenance(input)?;
        let bytes = statement.to_bytes()?;
        crate::cli::stdio::write(&args.out, &bytes)?;
        let provenance = ProvenanceReport {
            path: args.out,
            digest: Digest::of(&bytes),
            builder_id: ctx.builder_id.clone(),
            build_type: ctx.build_type.clone(),
            subjects: statement.subject.len(),
            commit: source.commit.to_string(),
        };
        let mut human = String::new();
        let _ = writeln!(
            human,
            "provenance written to {} ({} subjects, {})",
            written_to(&provenance.path),
            provenance.subjects,
            provenance.digest
        );
        let _ = writeln!(human, "builder     {}", provenance.builder_id);
        let _ = writeln!(human, "build type  {}", provenance.build_type);
        let _ = writeln!(human, "commit      {}", provenance.commit);
        if ctx.platform == ci::Platform::Local {
            let _ = writeln!(
                human,
                "note        built locally: this provenance does not claim a hosted build"
            );
        }
        report(human, &provenance)
    }

    /// GitLab tells when the job started (`CI_JOB_STARTED_AT`); GitHub has no such variable.
    fn job_started_at(ctx: &CiContext) -> Option<Timestamp> {
        if ctx.platform != ci::Platform::GitlabCi {
            return None;
        }
        let env = process_env();
        env.get("CI_JOB_STARTED_AT")
            .and_then(|t| Timestamp::parse(t).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_give_versions() {
        assert_eq!(version_from_tag("v1.2.3"), "1.2.3");
        assert_eq!(version_from_tag("1.0"), "1.0");
        assert_eq!(version_from_tag("vnext"), "vnext");
    }

    #[test]
    fn materials_parse() {
        let hex = "a".repeat(64);
        let m = parse_material(&format!("pkg:docker/rust@1.80=sha256:{hex}")).unwrap();
        assert_eq!(m.uri.as_deref(), Some("pkg:docker/rust@1.80"));
        assert_eq!(m.digest.0["sha256"], hex);
        assert!(
            parse_material("nodigest")
                .unwrap_err()
                .contains("URI=sha256:HEX")
        );
    }
}
