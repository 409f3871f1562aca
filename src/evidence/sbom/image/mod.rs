//! An SBOM of what a container image contains. Each layer blob is streamed once (gzip, zstd or
//! plain tar, sniffed by magic bytes, digest checked as it passes), and only the catalogers'
//! small results are kept, keyed by path: package databases, `os-release`, Go build info.
//! Whiteouts, opaque directories and paths replaced by an upper layer drop what lower layers
//! put there, so only files in the final file system count. Memory does not grow with the size
//! of the image, only with the number of packages and binaries found.

pub(crate) mod apk;
pub(crate) mod auditable;
pub(crate) mod dpkg;
mod gobin;
pub(crate) mod java;
pub(crate) mod npm;
pub(crate) mod python;
pub mod rpmdb;
mod sqlite;
mod tarstream;

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::mpsc;

use crate::evidence::attest::Timestamp;
use crate::foundation::digest::{Digest, HashingReader};
use crate::foundation::oci::{Descriptor, ImageManifest, Manifest, Platform};
use crate::foundation::reference::Reference;
use crate::storage::store::{self, Store};
use crate::storage::transfer;

use super::{
    Bom, Component, ComponentType, Dependency, HashEntry, Lifecycle, Metadata, Property, Purl,
    SerialNumber, SpecVersion, Tools,
};

/// The most a package database or `os-release` may hold before it is reported unread.
const MAX_DB_BYTES: u64 = 64 << 20;
const MAX_OS_RELEASE: u64 = 64 << 10;
const MAX_CONFIG: u64 = 4 << 20;
/// Chunks in flight between the download and the reader.
const PIPE_DEPTH: usize = 8;

/// Why an image could not be cataloged.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Transfer(#[from] transfer::Error),
    #[error("{reference} is not an image: its manifest has no layers and is not an index")]
    NotAnImage { reference: String },
    #[error("{reference} has no manifest for platform {platform}")]
    NoSuchPlatform { reference: String, platform: String },
    #[error("platform {input:?} is not os/arch[/variant]")]
    BadPlatform { input: String },
    #[error("layer {digest}: expected {expected} from the registry, found {found} ({size} bytes)")]
    LayerDigest {
        digest: Digest,
        expected: Digest,
        found: Digest,
        size: u64,
    },
    #[error("layer {digest}: could not read its tar stream")]
    LayerTar {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    #[error("layer {digest} has an invalid whiteout entry {path:?}")]
    InvalidWhiteout { digest: Digest, path: String },
    #[error("config {digest} of {reference} is not an image config")]
    Config { digest: Digest, reference: String },
}

/// Which manifests of an index to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformChoice {
    /// A single image as is; for an index, every platform.
    All,
    /// `os/arch[/variant]`.
    One {
        os: String,
        architecture: String,
        variant: Option<String>,
    },
}

impl std::str::FromStr for PlatformChoice {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<PlatformChoice, ImageError> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => {
                Ok(PlatformChoice::One {
                    os: (*os).to_owned(),
                    architecture: (*arch).to_owned(),
                    variant: parts.get(2).map(|v| (*v).to_owned()),
                })
            }
            _ => Err(ImageError::BadPlatform {
                input: s.to_owned(),
            }),
        }
    }
}

/// Options for [`sbom`].
#[derive(Debug, Clone)]
pub struct ImageSbomOptions {
    pub spec_version: SpecVersion,
    pub platform: PlatformChoice,
    pub timestamp: Timestamp,
    pub serial_number: Option<SerialNumber>,
}

/// What one path in the final file system contributed.
#[derive(Debug, Clone)]
enum Found {
    Deb(Vec<dpkg::DebPackage>),
    Apk(Vec<apk::ApkPackage>),
    Rpm(Vec<rpmdb::RpmPackage>),
    OsRelease(BTreeMap<String, String>),
    Go(Box<gobin::BuildInfo>),
    Python(python::PythonPackage),
    Npm(npm::NpmPackage),
    Java(Box<java::Archive>),
    Cargo(Box<auditable::DepInfo>),
    /// A database custody does not read (yet), with why.
    Unread(String),
}

#[derive(Debug, Clone)]
struct Located {
    layer: Digest,
    found: Found,
}

/// The catalogers' state for one image: path → what was found there, by the highest layer.
#[derive(Default)]
struct Catalog {
    paths: BTreeMap<String, Located>,
}

/// What one layer changes.
#[derive(Default)]
struct LayerChanges {
    /// Whiteout targets and paths this layer replaced with something new.
    removed: Vec<String>,
    /// Opaque directories ("" is the root).
    opaque: Vec<String>,
    found: BTreeMap<String, Found>,
}

impl Catalog {
    /// Every path of the state and all its ancestor directories.
    fn occupied(&self) -> HashSet<String> {
        let mut out = HashSet::new();
        for path in self.paths.keys() {
            let mut p = path.as_str();
            out.insert(p.to_owned());
            while let Some((parent, _)) = p.rsplit_once('/') {
                out.insert(parent.to_owned());
                p = parent;
            }
        }
        out
    }

    fn apply(&mut self, layer: &Digest, changes: LayerChanges) {
        let under = |path: &str, dir: &str| {
            dir.is_empty() || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
        };
        self.paths.retain(|path, _| {
            !changes.opaque.iter().any(|d| under(path, d))
                && !changes.removed.iter().any(|r| path == r || under(path, r))
        });
        for (path, found) in changes.found {
            self.paths.insert(
                path,
                Located {
                    layer: layer.clone(),
                    found,
                },
            );
        }
    }
}

/// Cleans a tar entry name: no leading `./` or `/`, no `.` segments, `..` resolved inside the
/// root, no trailing `/`.
fn clean_path(raw: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    DpkgStatus,
    DpkgStatusD,
    Apk,
    OsRelease,
    RpmBdb,
    RpmSqlite,
    RpmNdb,
}

fn kind_of(path: &str) -> Option<Kind> {
    match path {
        "var/lib/dpkg/status" => return Some(Kind::DpkgStatus),
        "lib/apk/db/installed" | "usr/lib/apk/db/installed" => return Some(Kind::Apk),
        "etc/os-release" | "usr/lib/os-release" => return Some(Kind::OsRelease),
        _ => {}
    }
    if let Some(name) = path.strip_prefix("var/lib/dpkg/status.d/")
        && !name.contains('/')
        && !name.contains('.')
    {
        return Some(Kind::DpkgStatusD);
    }
    for dir in ["var/lib/rpm/", "usr/lib/sysimage/rpm/", "usr/share/rpm/"] {
        match path.strip_prefix(dir) {
            Some("Packages") => return Some(Kind::RpmBdb),
            Some("rpmdb.sqlite") => return Some(Kind::RpmSqlite),
            Some("Packages.db") => return Some(Kind::RpmNdb),
            _ => {}
        }
    }
    None
}

/// Reads at most `limit` bytes; `None` when the entry is larger.
fn read_bounded(entry: &mut impl Read, size: u64, limit: u64) -> io::Result<Option<String>> {
    if size > limit {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry.take(limit).read_to_end(&mut bytes)?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Reads at most `limit` bytes; `None` when the entry is larger.
fn read_bytes_bounded(entry: &mut impl Read, size: u64, limit: u64) -> io::Result<Option<Vec<u8>>> {
    if size > limit {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry.take(limit).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.trim().is_empty() && !k.trim_start().starts_with('#'))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_owned(), v.to_owned())
        })
        .collect()
}

/// Reads one tar entry's content into what it contributes, if anything.
fn catalog_entry(
    path: &str,
    header: &tarstream::Header,
    entry: &mut impl Read,
) -> io::Result<Option<Found>> {
    let size = header.size;
    let too_large = |what: &str| Found::Unread(format!("{what} larger than {MAX_DB_BYTES} bytes"));
    if let Some(found) = language_entry(path, size, entry)? {
        return Ok(found);
    }
    if let Some(kind) = kind_of(path) {
        let found = match kind {
            Kind::DpkgStatus | Kind::DpkgStatusD => {
                match read_bounded(entry, size, MAX_DB_BYTES)? {
                    Some(text) => Found::Deb(dpkg::parse(&text, kind == Kind::DpkgStatus)),
                    None => too_large("dpkg database"),
                }
            }
            Kind::Apk => match read_bounded(entry, size, MAX_DB_BYTES)? {
                Some(text) => Found::Apk(apk::parse(&text)),
                None => too_large("apk database"),
            },
            Kind::OsRelease => match read_bounded(entry, size, MAX_OS_RELEASE)? {
                Some(text) => Found::OsRelease(parse_os_release(&text)),
                None => return Ok(None),
            },
            Kind::RpmBdb => Found::Unread("rpm berkeley db database is not read".to_owned()),
            Kind::RpmNdb => Found::Unread("rpm ndb database is not read".to_owned()),
            Kind::RpmSqlite => match read_bytes_bounded(entry, size, MAX_DB_BYTES)? {
                Some(bytes) => match rpmdb::read(&bytes) {
                    Ok(packages) => Found::Rpm(packages),
                    Err(e) => Found::Unread(format!("rpm sqlite database: {e}")),
                },
                None => too_large("rpm database"),
            },
        };
        return Ok(Some(found));
    }
    if java::is_archive(path) {
        return Ok(Some(Found::Java(Box::new(java::catalog(entry, size)?))));
    }
    let mode = header.mode;
    if mode & 0o111 == 0 || size < 64 {
        return Ok(None);
    }
    // Executables: ELF files are scanned for Go build info as they stream past, and spooled
    // for cargo-auditable's `.dep-v0` section.
    let mut head = [0u8; 4];
    entry.read_exact(&mut head)?;
    if head != *b"\x7fELF" {
        return Ok(None);
    }
    let mut scanner = gobin::Scanner::new();
    let mut spool = auditable::Spool::new(size);
    scanner.feed(&head);
    spool.feed(&head);
    let mut buf = vec![0u8; 64 << 10];
    while !scanner.is_done() || spool.wants_more() {
        let n = entry.read(&mut buf)?;
        if n == 0 {
            break;
        }
        scanner.feed(&buf[..n]);
        spool.feed(&buf[..n]);
    }
    if let Some(info) = scanner.finish() {
        return Ok(Some(Found::Go(Box::new(info))));
    }
    Ok(match spool.finish() {
        Ok(Some(deps)) => Some(Found::Cargo(Box::new(deps))),
        Ok(None) => None,
        Err(why) => Some(Found::Unread(format!("cargo-auditable data: {why}"))),
    })
}

/// Language packages: Python distributions' metadata and npm `package.json` files. `Some` when
/// the path is one (with what it yielded, if anything).
fn language_entry(
    path: &str,
    size: u64,
    entry: &mut impl Read,
) -> io::Result<Option<Option<Found>>> {
    if python::is_metadata(path) {
        return Ok(Some(python::read(entry)?.map(Found::Python)));
    }
    if npm::is_package_json(path) {
        return Ok(Some(match npm::read(entry, size)? {
            npm::PackageJson::Package(p) => Some(Found::Npm(p)),
            npm::PackageJson::NoPackage => None,
            npm::PackageJson::TooLarge => Some(Found::Unread(format!(
                "package.json larger than {} bytes",
                npm::MAX_PACKAGE_JSON
            ))),
        }));
    }
    Ok(None)
}

// ------------------------------------------------------------------------------ streaming

/// The download side of the pipe: the store writes the blob here.
struct ChannelWriter(mpsc::SyncSender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "layer reader stopped"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.current.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The largest zstd window accepted: zstd's levels use 8 MiB at most; `--long` uses 128 MiB,
/// which would take memory out of proportion to what is cataloged.
const MAX_ZSTD_WINDOW: u64 = 64 << 20;

/// zstd frames back to back (a stream may hold several), each decoded in turn.
struct ZstdFrames<R: BufRead> {
    source: Option<R>,
    decoder: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(decoder) = &mut self.decoder {
                let n = decoder.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.source = self.decoder.take().map(|d| d.into_inner());
            }
            let Some(mut source) = self.source.take() else {
                return Ok(0);
            };
            if source.fill_buf()?.is_empty() {
                self.source = Some(source);
                return Ok(0);
            }
            let decoder = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(
                source,
                MAX_ZSTD_WINDOW,
            )
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?;
            self.decoder = Some(decoder);
        }
    }
}

/// Streams one layer through the catalogers.
fn read_layer(
    store: &dyn Store,
    layer: &Descriptor,
    occupied: &HashSet<String>,
) -> Result<LayerChanges, ImageError> {
    let (tx, rx) = mpsc::sync_channel(PIPE_DEPTH);
    std::thread::scope(|scope| {
        let download = scope.spawn(move || {
            let mut sink = ChannelWriter(tx);
            store.get_blob(layer, &mut sink)
        });
        let mut hashing = HashingReader::new(ChannelReader {
            rx,
            current: Vec::new(),
            at: 0,
        });
        let read = walk_layer(&mut hashing, &layer.digest, occupied);
        // Whatever the walk left (tar padding, a gzip trailer) is hashed too.
        let drained = io::copy(&mut hashing, &mut io::sink());
        let (found, size) = hashing.finish();
        let downloaded = download.join().unwrap_or_else(|_| {
            Err(store::Error::Io {
                context: format!("download of layer {} panicked", layer.digest),
                source: io::Error::other("panic"),
            })
        });
        downloaded?;
        if found != layer.digest {
            return Err(ImageError::LayerDigest {
                digest: layer.digest.clone(),
                expected: layer.digest.clone(),
                found,
                size,
            });
        }
        drained.map_err(|source| ImageError::LayerTar {
            digest: layer.digest.clone(),
            source,
        })?;
        read
    })
}

fn walk_layer(
    raw: &mut impl Read,
    digest: &Digest,
    occupied: &HashSet<String>,
) -> Result<LayerChanges, ImageError> {
    let tar_err = |source: io::Error| ImageError::LayerTar {
        digest: digest.clone(),
        source,
    };
    let mut buffered = BufReader::with_capacity(256 << 10, raw);
    let magic = buffered.fill_buf().map_err(tar_err)?.to_vec();
    let decoded: Box<dyn Read + '_> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(&mut buffered))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(ZstdFrames {
            source: Some(&mut buffered),
            decoder: None,
        })
    } else {
        Box::new(&mut buffered)
    };
    let mut archive = tarstream::TarStream::new(decoded);
    let mut changes = LayerChanges::default();
    while let Some(header) = archive.next_entry().map_err(tar_err)? {
        let path = clean_path(&header.path);
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (d.to_owned(), n.to_owned()),
            None => (String::new(), path.clone()),
        };
        if name == ".wh..wh..opq" {
            changes.opaque.push(dir);
            continue;
        }
        if let Some(target) = name.strip_prefix(".wh.") {
            if target.is_empty() || target == "." || target == ".." {
                return Err(ImageError::InvalidWhiteout {
                    digest: digest.clone(),
                    path,
                });
            }
            changes.removed.push(if dir.is_empty() {
                target.to_owned()
            } else {
                format!("{dir}/{target}")
            });
            continue;
        }
        // A non-directory over a lower path replaces it and everything under it; a new file
        // over a cataloged path replaces the old result even when it yields none.
        if !header.is_dir() && occupied.contains(&path) {
            changes.removed.push(path.clone());
        }
        if header.is_file()
            && let Some(found) =
                catalog_entry(&path, &header, &mut archive.data()).map_err(tar_err)?
        {
            changes.found.insert(path, found);
        }
    }
    Ok(changes)
}

// ------------------------------------------------------------------------------- the image

/// One image (one platform) as cataloged.
struct ImageRead {
    platform: Option<Platform>,
    manifest: Digest,
    catalog: Catalog,
}

fn platform_string(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

fn matches_platform(p: &Platform, choice: &PlatformChoice) -> bool {
    match choice {
        PlatformChoice::All => true,
        PlatformChoice::One {
            os,
            architecture,
            variant,
        } => {
            p.os == *os
                && p.architecture == *architecture
                && (variant.is_none() || p.variant == *variant)
        }
    }
}

fn read_config_platform(
    store: &dyn Store,
    manifest: &ImageManifest,
    reference: &str,
) -> Result<Option<Platform>, ImageError> {
    if manifest.config.size > MAX_CONFIG {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    store.get_blob(&manifest.config, &mut bytes)?;
    #[derive(serde::Deserialize)]
    struct Config {
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    let config: Config = serde_json::from_slice(&bytes).map_err(|_| ImageError::Config {
        digest: manifest.config.digest.clone(),
        reference: reference.to_owned(),
    })?;
    Ok(match (config.os, config.architecture) {
        (Some(os), Some(architecture)) => Some(Platform {
            architecture,
            os,
            variant: config.variant,
            os_version: None,
        }),
        _ => None,
    })
}

fn read_image(
    store: &dyn Store,
    manifest: &ImageManifest,
    digest: Digest,
    platform: Option<Platform>,
) -> Result<ImageRead, ImageError> {
    let mut catalog = Catalog::default();
    for layer in &manifest.layers {
        let occupied = catalog.occupied();
        let changes = read_layer(store, layer, &occupied)?;
        catalog.apply(&layer.digest, changes);
    }
    Ok(ImageRead {
        platform,
        manifest: digest,
        catalog,
    })
}

/// Catalogs the image `reference` names (every platform of an index unless one is chosen)
/// and builds its CycloneDX BOM.
pub fn sbom(
    store: &dyn Store,
    reference: &Reference,
    options: &ImageSbomOptions,
) -> Result<Bom, ImageError> {
    let top = transfer::resolve(store, reference)?;
    let name = reference.to_string();
    let mut images = Vec::new();
    match &top.manifest {
        Manifest::Image(m) => {
            if m.layers.is_empty() {
                return Err(ImageError::NotAnImage { reference: name });
            }
            let platform = read_config_platform(store, m, &name)?;
            if let (Some(p), PlatformChoice::One { .. }) = (&platform, &options.platform)
                && !matches_platform(p, &options.platform)
            {
                return Err(ImageError::NoSuchPlatform {
                    reference: name,
                    platform: platform_string(p),
                });
            }
            images.push(read_image(
                store,
                m,
                top.descriptor.digest.clone(),
                platform,
            )?);
        }
        Manifest::Index(index) => {
            for child in &index.manifests {
                let Some(platform) = &child.platform else {
                    continue;
                };
                // Attestation manifests (BuildKit's `unknown/unknown`) hold no file system.
                if platform.os == "unknown" || !matches_platform(platform, &options.platform) {
                    continue;
                }
                let fetched = store.get_manifest(&child.digest)?;
                if let Manifest::Image(m) = &fetched.manifest {
                    images.push(read_image(
                        store,
                        m,
                        child.digest.clone(),
                        Some(platform.clone()),
                    )?);
                }
            }
            if images.is_empty() {
                return Err(ImageError::NoSuchPlatform {
                    reference: name,
                    platform: match &options.platform {
                        PlatformChoice::All => "any".to_owned(),
                        PlatformChoice::One {
                            os, architecture, ..
                        } => format!("{os}/{architecture}"),
                    },
                });
            }
        }
    }
    Ok(build_bom(&name, &top.descriptor.digest, &images, options))
}

// --------------------------------------------------------------------------------- the BOM

fn prop(name: &str, value: impl Into<String>) -> Property {
    Property {
        name: name.to_owned(),
        value: value.into(),
    }
}

/// The OS an image's final file system names (`etc/os-release`, else `usr/lib/os-release`).
fn os_release(catalog: &Catalog) -> BTreeMap<String, String> {
    for path in ["etc/os-release", "usr/lib/os-release"] {
        if let Some(Located {
            found: Found::OsRelease(fields),
            ..
        }) = catalog.paths.get(path)
        {
            return fields.clone();
        }
    }
    BTreeMap::new()
}

fn os_purl(
    ty: &str,
    namespace: &str,
    name: &str,
    version: &str,
    qualifiers: &[(&str, Option<&str>)],
) -> Option<Purl> {
    // rpm names are case-sensitive (purl spec, `rpm` type); deb and apk names are lowercase.
    let name = if ty == "rpm" {
        name.to_owned()
    } else {
        name.to_ascii_lowercase()
    };
    let mut out = format!(
        "pkg:{ty}/{}/{}@{}",
        purl_encode(&namespace.to_ascii_lowercase()),
        purl_encode(&name),
        purl_encode(version)
    );
    let mut sep = '?';
    let mut sorted: Vec<_> = qualifiers
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    sorted.sort();
    for (k, v) in sorted {
        out.push(sep);
        sep = '&';
        out.push_str(k);
        out.push('=');
        out.push_str(&purl_encode(v));
    }
    Purl::try_from(out).ok()
}

/// The purl spec's encoding: RFC 3986 unreserved characters and `:` stay as they are.
fn purl_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Entry {
    component: Component,
}

fn add(
    components: &mut BTreeMap<String, Entry>,
    mut component: Component,
    image: &ImageRead,
    layer: &Digest,
    path: &str,
) {
    let key = component
        .purl
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| {
            format!(
                "{}@{}",
                component.name,
                component.version.clone().unwrap_or_default()
            )
        });
    let mut occurrence = vec![
        prop("custody:layer:digest", layer.to_string()),
        prop("custody:location:path", format!("/{path}")),
    ];
    if let Some(p) = &image.platform {
        occurrence.push(prop("custody:platform", platform_string(p)));
    }
    let entry = components.entry(key.clone()).or_insert_with(|| {
        component.bom_ref = Some(key.clone());
        Entry {
            component: std::mem::replace(
                &mut component,
                Component::new(ComponentType::Library, String::new()),
            ),
        }
    });
    for p in occurrence {
        if !entry.component.properties.contains(&p) || p.name != "custody:platform" {
            entry.component.properties.push(p);
        }
    }
}

fn build_bom(name: &str, digest: &Digest, images: &[ImageRead], options: &ImageSbomOptions) -> Bom {
    let mut components: BTreeMap<String, Entry> = BTreeMap::new();
    let mut dependencies: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut meta_props = vec![prop("custody:image:digest", digest.to_string())];
    for image in images {
        let os = os_release(&image.catalog);
        let id = os.get("ID").map(String::as_str);
        // syft's `distro=`: `ID-VERSION_ID`, else `ID-BUILD_ID` (rolling distributions).
        let distro = match (id, os.get("VERSION_ID").or_else(|| os.get("BUILD_ID"))) {
            (Some(id), Some(v)) => Some(format!("{id}-{v}")),
            _ => None,
        };
        let like = |family: &str| {
            id == Some(family)
                || os
                    .get("ID_LIKE")
                    .is_some_and(|l| l.split_whitespace().any(|w| w == family))
        };
        if let Some(p) = &image.platform {
            meta_props.push(prop(
                "custody:image:platform",
                format!("{} {}", platform_string(p), image.manifest),
            ));
        }
        if let Some(d) = &distro {
            meta_props.push(prop("custody:os:distro", d.clone()));
        }
        for (path, located) in &image.catalog.paths {
            match &located.found {
                Found::Deb(packages) => {
                    let ns = if like("debian") {
                        id.unwrap_or("debian")
                    } else {
                        "debian"
                    };
                    for p in packages {
                        let mut c = Component::new(ComponentType::Library, p.name.clone());
                        c.version = Some(p.version.clone());
                        // The source package, as syft writes it: advisories name sources.
                        let upstream = if p.source_version != p.version {
                            Some(format!("{}@{}", p.source, p.source_version))
                        } else {
                            (p.source != p.name).then(|| p.source.clone())
                        };
                        c.purl = os_purl(
                            "deb",
                            ns,
                            &p.name,
                            &p.version,
                            &[
                                ("arch", p.architecture.as_deref()),
                                ("distro", distro.as_deref()),
                                ("upstream", upstream.as_deref()),
                            ],
                        );
                        c.properties.push(prop(
                            "custody:package:source",
                            format!("{}@{}", p.source, p.source_version),
                        ));
                        add(&mut components, c, image, &located.layer, path);
                    }
                }
                Found::Apk(packages) => {
                    let ns = if like("alpine") || like("wolfi") {
                        id.unwrap_or("alpine")
                    } else {
                        "alpine"
                    };
                    for p in packages {
                        let mut c = Component::new(ComponentType::Library, p.name.clone());
                        c.version = Some(p.version.clone());
                        c.purl = os_purl(
                            "apk",
                            ns,
                            &p.name,
                            &p.version,
                            &[
                                ("arch", p.architecture.as_deref()),
                                ("distro", distro.as_deref()),
                                (
                                    "upstream",
                                    (p.origin != p.name).then_some(p.origin.as_str()),
                                ),
                            ],
                        );
                        c.properties
                            .push(prop("custody:package:source", p.origin.clone()));
                        add(&mut components, c, image, &located.layer, path);
                    }
                }
                Found::Rpm(packages) => {
                    // syft's namespaces: the os-release ID, `rhel` written `redhat`.
                    let ns = match id {
                        Some("rhel") | None => "redhat",
                        Some(other) => other,
                    };
                    for p in packages {
                        let mut c = Component::new(ComponentType::Library, p.name.clone());
                        let version = format!("{}-{}", p.version, p.release);
                        c.version = Some(match p.epoch {
                            Some(e) => format!("{e}:{version}"),
                            None => version.clone(),
                        });
                        let epoch = p.epoch.map(|e| e.to_string());
                        c.purl = os_purl(
                            "rpm",
                            ns,
                            &p.name,
                            &version,
                            &[
                                ("arch", p.arch.as_deref()),
                                ("distro", distro.as_deref()),
                                ("epoch", epoch.as_deref()),
                                ("upstream", p.source_rpm.as_deref()),
                            ],
                        );
                        if let Some(src) = &p.source_rpm {
                            c.properties
                                .push(prop("custody:package:source", src.clone()));
                        }
                        add(&mut components, c, image, &located.layer, path);
                    }
                }
                Found::Go(info) => {
                    for c in go_components(info) {
                        add(&mut components, c, image, &located.layer, path);
                    }
                }
                Found::Python(p) => {
                    add(
                        &mut components,
                        python_component(p),
                        image,
                        &located.layer,
                        path,
                    );
                }
                Found::Npm(p) => {
                    add(
                        &mut components,
                        npm_component(p),
                        image,
                        &located.layer,
                        path,
                    );
                }
                Found::Java(archive) => {
                    // A nested archive's packages are located as syft does: `outer:inner`.
                    for (nested, c) in java::components(archive) {
                        let at = nested.map_or_else(|| path.clone(), |n| format!("{path}:{n}"));
                        add(&mut components, c, image, &located.layer, &at);
                    }
                    for why in &archive.unread {
                        meta_props.push(prop("custody:unread", format!("/{path}: {why}")));
                    }
                }
                Found::Cargo(info) => {
                    let (crates, edges) = auditable::components(info);
                    for c in crates {
                        add(&mut components, c, image, &located.layer, path);
                    }
                    for (from, to) in edges {
                        dependencies.entry(from).or_default().extend(to);
                    }
                }
                Found::OsRelease(_) => {}
                Found::Unread(why) => {
                    meta_props.push(prop("custody:unread", format!("/{path}: {why}")));
                }
            }
        }
    }
    meta_props.dedup();

    let mut image = Component::new(ComponentType::Application, name.to_owned());
    image.bom_ref = Some(format!("image:{digest}"));
    image.hashes = vec![HashEntry {
        alg: "SHA-256".to_owned(),
        content: digest.hex().to_owned(),
    }];
    let mut tool = Component::new(ComponentType::Application, "custody");
    tool.version = Some(env!("CARGO_PKG_VERSION").to_owned());
    Bom {
        schema: format!(
            "http://cyclonedx.org/schema/bom-{}.schema.json",
            options.spec_version
        ),
        bom_format: "CycloneDX".to_owned(),
        spec_version: options.spec_version,
        serial_number: options
            .serial_number
            .clone()
            .unwrap_or_else(SerialNumber::random),
        version: 1,
        metadata: Metadata {
            timestamp: options.timestamp.clone(),
            lifecycles: vec![Lifecycle {
                phase: "post-build".to_owned(),
            }],
            tools: Tools {
                components: vec![tool],
            },
            component: image,
            properties: meta_props,
        },
        components: components.into_values().map(|e| e.component).collect(),
        dependencies: dependencies
            .into_iter()
            .map(|(dependency_ref, to)| Dependency {
                dependency_ref,
                depends_on: to.into_iter().collect(),
            })
            .collect(),
    }
}

/// Adds an image's contents to the SBOM of its source (the lockfiles' components): each image
/// component keeps its layer and path properties; one found in both keeps the source's entry
/// and gains the image's locations. The image's own facts (digest, platforms, OS, unread
/// databases) join the metadata properties. For `release --image`.
pub fn merge_into(source: &mut Bom, image: Bom) {
    let mut by_ref: BTreeMap<String, usize> = source
        .components
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.bom_ref.clone().map(|r| (r, i)))
        .collect();
    for component in image.components {
        match component.bom_ref.as_ref().and_then(|r| by_ref.get(r)) {
            Some(&i) => {
                source.components[i]
                    .properties
                    .extend(component.properties.into_iter().filter(|p| {
                        p.name.starts_with("custody:layer:")
                            || p.name.starts_with("custody:location:")
                            || p.name == "custody:platform"
                    }))
            }
            None => {
                if let Some(r) = &component.bom_ref {
                    by_ref.insert(r.clone(), source.components.len());
                }
                source.components.push(component);
            }
        }
    }
    source.components.sort_by(|a, b| a.bom_ref.cmp(&b.bom_ref));
    source.metadata.properties.extend(image.metadata.properties);
}

/// `pkg:pypi/<name>@<version>`, the name normalised as PEP 503 and the purl spec say.
fn python_component(p: &python::PythonPackage) -> Component {
    let mut c = Component::new(ComponentType::Library, p.name.clone());
    c.version = Some(p.version.clone());
    c.purl = Purl::new(
        super::PurlType::Pypi,
        &p.name,
        Some(&p.version),
        &BTreeMap::new(),
    )
    .ok();
    c
}

/// `pkg:npm/%40scope/name@version` for a scoped package, `pkg:npm/name@version` otherwise.
fn npm_component(p: &npm::NpmPackage) -> Component {
    let mut c = Component::new(ComponentType::Library, p.name.clone());
    c.version = Some(p.version.clone());
    c.purl = Purl::new(
        super::PurlType::Npm,
        &p.name,
        Some(&p.version),
        &BTreeMap::new(),
    )
    .ok();
    c
}

fn go_purl(path: &str, version: &str) -> Option<Purl> {
    let version = (!version.is_empty() && version != "(devel)").then_some(version);
    Purl::new(super::PurlType::Golang, path, version, &BTreeMap::new()).ok()
}

/// The main module, its dependencies and the Go standard library it was built with.
fn go_components(info: &gobin::BuildInfo) -> Vec<Component> {
    let mut out = Vec::new();
    let module = |m: &gobin::Module, main: bool| {
        let mut c = Component::new(
            if main {
                ComponentType::Application
            } else {
                ComponentType::Library
            },
            m.path.clone(),
        );
        c.version = Some(m.version.clone()).filter(|v| !v.is_empty());
        c.purl = go_purl(&m.path, &m.version);
        c.properties.push(prop("custody:go:module", m.path.clone()));
        if let Some(sum) = &m.sum {
            c.properties.push(prop("custody:go:sum", sum.clone()));
        }
        c
    };
    if let Some(main) = &info.main {
        let mut c = module(main, true);
        c.properties
            .push(prop("custody:go:toolchain", info.go_version.clone()));
        if let Some(p) = &info.path {
            c.properties.push(prop("custody:go:package", p.clone()));
        }
        out.push(c);
    }
    out.extend(info.deps.iter().map(|d| module(d, false)));
    if let Some(v) = info.go_version.strip_prefix("go") {
        // `go1.22.1 X:boringcrypto` and the like: the version is the first word.
        let v = v.split_whitespace().next().unwrap_or(v);
        let mut c = Component::new(ComponentType::Library, "stdlib");
        c.version = Some(v.to_owned());
        c.purl = Purl::new(super::PurlType::Golang, "stdlib", Some(v), &BTreeMap::new()).ok();
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
