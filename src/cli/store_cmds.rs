//! `push`, `pull`, `resolve`, `copy`, `discover`: the store commands.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use super::secops_cmds::Audited;
use super::{Cli, Failure, Report, store_options};
use custody::foundation::reference::Reference;
use custody::storage::store;
use custody::storage::store::elsewhere::Evidence;
use custody::storage::transfer::{
    self, CopyOptions, PushOptions, ReferrerNode, TagOutcome, TagPolicy,
};
use custody::workflows::audit;

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// Files to push, one layer each, titled with the file name.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Destination: registry/repo[:tag] or oci:<dir>[:tag].
    #[arg(long)]
    pub to: String,
    /// The artifact type of the manifest.
    #[arg(long)]
    pub artifact_type: Option<String>,
    /// Manifest annotation key=value (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Move the tag even if it already names another digest.
    #[arg(long)]
    pub force_tag: bool,
}

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// The artifact: registry/repo[:tag][@digest] or oci:<dir>[:tag][@digest].
    pub reference: String,
    /// Folder to write the files into.
    #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
    pub output_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ResolveArgs {
    /// The artifact: `registry/repo[:tag][@digest]` or `oci:<dir>[:tag][@digest]`.
    pub reference: String,
}

#[derive(clap::Args, Debug)]
pub struct CopyArgs {
    /// What to copy: `registry/repo[:tag][@digest]` or `oci:<dir>[:tag][@digest]`.
    pub source: String,
    /// Where to: `registry/repo[:tag]` or `oci:<dir>[:tag]`; the digest stays the same.
    pub destination: String,
    /// Move the destination tag even if it names another digest.
    #[arg(long)]
    pub force_tag: bool,
    /// Say what would be copied, copy nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the copy's signatures and attestations in this repository at the destination
    /// (default: beside the copied artifact). The source's are read from
    /// --attestations-repository (or its environment variables) when set.
    #[arg(long, value_name = "REPO")]
    pub to_attestations_repository: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct DiscoverArgs {
    /// The artifact: `registry/repo[:tag][@digest]` or `oci:<dir>[:tag][@digest]`.
    pub reference: String,
}

fn parse_ref(input: &str) -> Result<Reference, Failure> {
    Ok(input
        .parse::<Reference>()
        .with_context(|| format!("cannot use {input:?} as a reference"))?)
}

fn open(cli: &Cli, reference: &Reference) -> Result<Box<dyn store::Store>, Failure> {
    Ok(store::open(reference, &store_options(cli))
        .with_context(|| format!("cannot open {}", reference.repository()))?)
}

/// Opens a store only to read from it: a missing layout is an error, never created.
fn open_existing(cli: &Cli, reference: &Reference) -> Result<Box<dyn store::Store>, Failure> {
    Ok(store::open_existing(reference, &store_options(cli))
        .with_context(|| format!("cannot open {}", reference.repository()))?)
}

fn tag_policy(force: bool) -> TagPolicy {
    if force {
        TagPolicy::Force
    } else {
        TagPolicy::Immutable
    }
}

fn describe_tag(tag: &Option<String>, outcome: &Option<TagOutcome>) -> String {
    match (tag, outcome) {
        (Some(t), Some(TagOutcome::Created)) => format!("tag {t}: created\n"),
        (Some(t), Some(TagOutcome::Unchanged)) => {
            format!("tag {t}: already pointed at this digest\n")
        }
        (Some(t), Some(TagOutcome::Moved { previous })) => {
            format!("tag {t}: MOVED by --force-tag (it named {previous})\n")
        }
        _ => String::new(),
    }
}

pub fn push(cli: &Cli, args: &PushArgs) -> Result<Audited, Failure> {
    let reference = parse_ref(&args.to)?;
    if reference.digest.is_some() {
        return Err(anyhow::anyhow!(
            "push destination {} names a digest; give a repository and optionally a tag",
            args.to
        )
        .into());
    }
    let store = open(cli, &reference)?;
    let mut annotations = transfer::parse_annotations(&args.annotations)?;
    // Retention (`prune --keep-last`) orders by this; the files' newest modification keeps a
    // re-push of unchanged files on the same digest.
    if !annotations.contains_key(custody::workflows::release::ANNOTATION_CREATED)
        && let Some(created) = super::release_cmds::source_date_epoch()?
            .or_else(|| custody::workflows::release::newest_mtime(&args.files))
    {
        annotations.insert(
            custody::workflows::release::ANNOTATION_CREATED.to_owned(),
            created.to_string(),
        );
    }
    let options = PushOptions {
        artifact_type: args.artifact_type.clone(),
        annotations,
        layer_media_type: None,
        tag_policy: tag_policy(args.force_tag),
    };
    let outcome = transfer::push_files(store.as_ref(), &reference, &args.files, &options)
        .with_context(|| format!("cannot push to {reference}"))?;
    let mut human = String::new();
    let _ = writeln!(
        human,
        "pushed {} file(s) to {}",
        outcome.layers.len(),
        store.name()
    );
    let _ = writeln!(human, "digest: {}", outcome.digest);
    human.push_str(&describe_tag(&outcome.tag, &outcome.tag_outcome));
    let _ = writeln!(human, "{}", outcome.pinned);
    Ok(Audited {
        report: Report {
            human,
            json: serde_json::to_value(&outcome).expect("serialisable"),
        },
        done: audit::Done::Pushed(Box::new(outcome)),
    })
}

pub fn pull(cli: &Cli, args: &PullArgs) -> Result<Report, Failure> {
    super::stdio::refuse_dash(
        &args.output_dir,
        "--output-dir",
        "an artifact may hold several files; give a folder",
    )?;
    let reference = parse_ref(&args.reference)?;
    let store = open_existing(cli, &reference)?;
    let outcome = transfer::pull(store.as_ref(), &reference, &args.output_dir)
        .with_context(|| format!("cannot pull {reference}"))?;
    let mut human = String::new();
    let _ = writeln!(human, "pulled {}", outcome.pinned);
    for f in &outcome.files {
        let _ = writeln!(
            human,
            "  {}  {}  {}",
            f.digest.short(),
            f.path.display(),
            super::printer::size(f.size)
        );
    }
    for d in &outcome.skipped {
        let _ = writeln!(human, "  {}  (no title, not written)", d.short());
    }
    Ok(Report {
        human,
        json: serde_json::to_value(&outcome).expect("serialisable"),
    })
}

pub fn resolve(cli: &Cli, args: &ResolveArgs) -> Result<Report, Failure> {
    let reference = parse_ref(&args.reference)?;
    let store = open_existing(cli, &reference)?;
    let fetched = transfer::resolve(store.as_ref(), &reference)
        .with_context(|| format!("cannot resolve {reference}"))?;
    let d = &fetched.descriptor;
    Ok(Report {
        human: format!("{}\n", d.digest),
        json: serde_json::json!({
            "reference": reference.to_string(),
            "digest": d.digest,
            "mediaType": d.media_type,
            "size": d.size,
            "pinned": reference.pinned(&d.digest),
        }),
    })
}

pub fn copy(cli: &Cli, args: &CopyArgs) -> Result<Audited, Failure> {
    let src_ref = parse_ref(&args.source)?;
    let dst_ref = parse_ref(&args.destination)?;
    let src = open_existing(cli, &src_ref)?;
    let dst = open(cli, &dst_ref)?;
    let options = CopyOptions {
        tag_policy: tag_policy(args.force_tag),
        dry_run: args.dry_run,
        jobs: super::jobs(cli),
    };
    let src_elsewhere = super::attestations_repository(cli)?
        .map(|r| {
            r.open_existing(&store_options(cli)).with_context(|| {
                format!(
                    "cannot open attestations repository {} (from {})",
                    r.repository, r.source
                )
            })
        })
        .transpose()?;
    let dst_elsewhere =
        super::open_named_attestations_repository(cli, args.to_attestations_repository.as_deref())?;
    let outcome = transfer::copy_with(
        Evidence::new(src.as_ref(), src_elsewhere.as_deref()),
        &src_ref,
        Evidence::new(dst.as_ref(), dst_elsewhere.as_deref()),
        &dst_ref,
        &options,
    )
    .with_context(|| format!("cannot copy {src_ref} to {dst_ref}"))?;
    let mut human = String::new();
    let verb = if outcome.dry_run {
        "would copy"
    } else {
        "copied"
    };
    let _ = writeln!(
        human,
        "{verb} {} manifest(s) ({} referrer(s)), {} blob(s) / {}; {} mounted, {} already present",
        outcome.manifests.len(),
        outcome.referrers,
        outcome.blobs_copied,
        super::printer::size(outcome.bytes_copied),
        outcome.blobs_mounted,
        outcome.blobs_present
    );
    if outcome.dry_run {
        for m in &outcome.manifests {
            let _ = writeln!(
                human,
                "  {}  {}",
                m.digest,
                m.artifact_type.as_deref().unwrap_or(&m.media_type)
            );
        }
    }
    for t in &outcome.legacy_tags {
        let _ = writeln!(human, "legacy cosign tag {t}");
    }
    human.push_str(&describe_tag(&outcome.tag, &outcome.tag_outcome));
    if let Some(p) = &outcome.pinned {
        let _ = writeln!(human, "{p}");
    }
    Ok(Audited {
        report: Report {
            human,
            json: serde_json::to_value(&outcome).expect("serialisable"),
        },
        done: audit::Done::Copied(Box::new(outcome)),
    })
}

fn tree(out: &mut String, nodes: &[ReferrerNode], prefix: &str) {
    for (i, node) in nodes.iter().enumerate() {
        let last = i + 1 == nodes.len();
        let (branch, next) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let d = &node.descriptor;
        let _ = writeln!(
            out,
            "{prefix}{branch}{}  {}",
            d.artifact_type.as_deref().unwrap_or(&d.media_type),
            d.digest
        );
        for (k, v) in &d.annotations {
            let _ = writeln!(out, "{prefix}{next}  {k}: {v}");
        }
        tree(out, &node.referrers, &format!("{prefix}{next}"));
    }
}

pub fn discover(cli: &Cli, args: &DiscoverArgs) -> Result<Report, Failure> {
    let reference = parse_ref(&args.reference)?;
    let store = open_existing(cli, &reference)?;
    let limits = store::referrers::Limits {
        jobs: super::jobs(cli),
        ..store::referrers::Limits::DEFAULT
    };
    let discovery = transfer::discover(store.as_ref(), &reference, &limits)
        .with_context(|| format!("cannot list the referrers of {reference}"))?;
    let mut human = format!("{}\n", discovery.pinned);
    tree(&mut human, &discovery.referrers, "");
    if discovery.referrers.is_empty() {
        human.push_str("(no referrers)\n");
    }
    Ok(Report {
        human,
        json: serde_json::to_value(&discovery).expect("serialisable"),
    })
}

#[derive(clap::Args, Debug)]
pub struct DigestArgs {
    /// Files to hash; `-` hashes standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn digest(args: &DigestArgs) -> Result<Report, Failure> {
    let mut human = String::new();
    let mut json = Vec::new();
    if args
        .files
        .iter()
        .filter(|p| super::stdio::is_dash(p))
        .count()
        > 1
    {
        return Err(anyhow::anyhow!("`-` (standard input) can be given only once").into());
    }
    for path in &args.files {
        let (digest, size) = if super::stdio::is_dash(path) {
            custody::foundation::digest::of_reader(std::io::stdin().lock())
                .context("cannot read standard input")?
        } else {
            custody::foundation::digest::of_file(path)
                .with_context(|| format!("cannot read {}", path.display()))?
        };
        let _ = writeln!(human, "{digest}  {size}  {}", path.display());
        json.push(serde_json::json!({"path": path, "digest": digest, "size": size}));
    }
    Ok(Report {
        human,
        json: serde_json::Value::Array(json),
    })
}
