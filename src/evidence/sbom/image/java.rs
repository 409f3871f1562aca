//! Java archives (`.jar`, `.war`, `.ear`) in a layer: each is spooled to an anonymous temporary
//! file (at most [`MAX_ARCHIVE_BYTES`]; a larger one is reported unread), then its zip central
//! directory is walked entry by entry, keeping only `META-INF/maven/<g>/<a>/pom.properties` and
//! the archives nested one level deep (Spring Boot's `BOOT-INF/lib`, a war's `WEB-INF/lib`).
//! Memory stays flat: nothing but those few entries is held, every entry read is capped, and
//! a nested deflated archive inflates to disk within a budget shared by the whole archive.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use super::super::{Component, ComponentType, Purl};
use super::purl_encode;

/// The largest archive spooled and read, outer or nested.
pub const MAX_ARCHIVE_BYTES: u64 = 256 << 20;
/// What all the nested archives of one archive may inflate to, together.
const MAX_NESTED_INFLATED: u64 = 1 << 30;
/// Central directory entries walked; a jar of a large application has tens of thousands.
const MAX_ENTRIES: u64 = 500_000;
const MAX_POM_BYTES: u64 = 64 << 10;
/// Entries kept from one central directory.
const MAX_POMS: usize = 1024;
const MAX_NESTED: usize = 4096;
/// The end record search window: the record and the longest comment.
const EOCD_LEN: u64 = 22;
const EOCD_WINDOW: u64 = EOCD_LEN + 0xffff;

/// Maven coordinates from one `pom.properties`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MavenPackage {
    pub group: String,
    pub artifact: String,
    pub version: String,
    /// The nested archive it came from, e.g. `BOOT-INF/lib/x.jar`; `None` for the archive
    /// itself.
    pub nested: Option<String>,
}

/// What one archive holds, and what in it could not be read (with why).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Archive {
    pub packages: Vec<MavenPackage>,
    pub unread: Vec<String>,
}

/// Why an archive (or part of one) could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JarError {
    #[error("no zip end of central directory record")]
    NoEndRecord,
    #[error("{what} at offset {offset} lies outside the archive")]
    OutOfBounds { what: &'static str, offset: u64 },
    #[error("{what} at offset {offset} has a bad signature")]
    Signature { what: &'static str, offset: u64 },
    #[error("central directory of {count} entries is over the limit of {MAX_ENTRIES}")]
    TooManyEntries { count: u64 },
    #[error("entry {name:?} uses compression method {method}, which is not read")]
    Method { name: String, method: u16 },
    #[error("entry {name:?} is encrypted")]
    Encrypted { name: String },
    #[error("entry {name:?} is larger than {limit} bytes")]
    EntryTooLarge { name: String, limit: u64 },
    #[error("could not read the archive")]
    Io(#[source] io::Error),
}

impl From<io::Error> for JarError {
    fn from(e: io::Error) -> JarError {
        JarError::Io(e)
    }
}

/// Whether a path names a Java archive custody reads.
pub fn is_archive(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty()
            && ["jar", "war", "ear"]
                .iter()
                .any(|e| ext.eq_ignore_ascii_case(e))
    })
}

/// Reads one archive from a tar entry of `size` bytes. An error reading the entry itself (the
/// layer) is returned; anything wrong with the archive is in [`Archive::unread`].
pub fn catalog(entry: &mut impl Read, size: u64) -> io::Result<Archive> {
    if size > MAX_ARCHIVE_BYTES {
        return Ok(unread(format!(
            "archive larger than {MAX_ARCHIVE_BYTES} bytes is not read"
        )));
    }
    let mut spool = match tempfile::tempfile() {
        Ok(f) => f,
        Err(e) => return Ok(unread(format!("could not spool the archive: {e}"))),
    };
    let copied = io::copy(&mut entry.take(size), &mut spool)?;
    if copied != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "tar entry ends early",
        ));
    }
    Ok(read(&spool, size))
}

fn unread(why: String) -> Archive {
    Archive {
        packages: Vec::new(),
        unread: vec![why],
    }
}

/// Reads an archive held in `file` (its first `len` bytes).
pub fn read(file: &File, len: u64) -> Archive {
    let mut out = Archive::default();
    let mut budget = MAX_NESTED_INFLATED;
    let span = Span {
        file,
        start: 0,
        len,
    };
    if let Err(e) = read_archive(span, None, &mut budget, &mut out) {
        out.unread.push(format!("not a readable zip archive: {e}"));
    }
    out.packages.sort();
    out.packages.dedup();
    out
}

/// One library component per Maven package, with the `pkg:maven/<group>/<artifact>@<version>`
/// purl syft writes, and the nested archive it came from, if any.
pub fn components(archive: &Archive) -> Vec<(Option<&str>, Component)> {
    archive
        .packages
        .iter()
        .map(|p| {
            let mut c = Component::new(ComponentType::Library, p.artifact.clone());
            c.group = Some(p.group.clone());
            c.version = Some(p.version.clone());
            c.purl = Purl::try_from(format!(
                "pkg:maven/{}/{}@{}",
                purl_encode(&p.group),
                purl_encode(&p.artifact),
                purl_encode(&p.version)
            ))
            .ok();
            (p.nested.as_deref(), c)
        })
        .collect()
}

/// A byte range of a file, read by offset. Reads are bounds-checked against the range.
#[derive(Clone, Copy)]
struct Span<'a> {
    file: &'a File,
    start: u64,
    len: u64,
}

impl<'a> Span<'a> {
    fn check(&self, at: u64, n: u64, what: &'static str) -> Result<(), JarError> {
        match at.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(JarError::OutOfBounds { what, offset: at }),
        }
    }

    fn reader(&self, at: u64, n: u64, what: &'static str) -> Result<io::Take<&'a File>, JarError> {
        self.check(at, n, what)?;
        let mut file = self.file;
        file.seek(SeekFrom::Start(self.start + at))?;
        Ok(file.take(n))
    }

    fn read_at(&self, at: u64, buf: &mut [u8], what: &'static str) -> Result<(), JarError> {
        self.reader(at, buf.len() as u64, what)?.read_exact(buf)?;
        Ok(())
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(bytes)
}

/// Where the central directory is: its offset as recorded, its size, its entry count, and the
/// offset of the end record (a prefix such as a launch script shifts every recorded offset).
struct EndRecord {
    cd_offset: u64,
    cd_size: u64,
    entries: u64,
    at: u64,
}

fn end_record(span: Span<'_>) -> Result<EndRecord, JarError> {
    if span.len < EOCD_LEN {
        return Err(JarError::NoEndRecord);
    }
    let window = span.len.min(EOCD_WINDOW);
    let mut tail = vec![0u8; window as usize];
    span.read_at(span.len - window, &mut tail, "end record")?;
    // The last signature whose comment ends exactly at the end of the file.
    let found = (0..=tail.len() - EOCD_LEN as usize).rev().find(|&i| {
        tail[i..i + 4] == *b"PK\x05\x06"
            && i + EOCD_LEN as usize + usize::from(u16_at(&tail, i + 20)) == tail.len()
    });
    let i = found.ok_or(JarError::NoEndRecord)?;
    let at = span.len - window + i as u64;
    let mut record = EndRecord {
        entries: u64::from(u16_at(&tail, i + 10)),
        cd_size: u64::from(u32_at(&tail, i + 12)),
        cd_offset: u64::from(u32_at(&tail, i + 16)),
        at,
    };
    let zip64 = record.entries == 0xffff
        || record.cd_size == 0xffff_ffff
        || record.cd_offset == 0xffff_ffff;
    if zip64 && at >= 20 {
        let mut locator = [0u8; 20];
        span.read_at(at - 20, &mut locator, "zip64 locator")?;
        if locator[..4] == *b"PK\x06\x07" {
            let offset = u64_at(&locator, 8);
            let mut end64 = [0u8; 56];
            span.read_at(offset, &mut end64, "zip64 end record")?;
            if end64[..4] != *b"PK\x06\x06" {
                return Err(JarError::Signature {
                    what: "zip64 end record",
                    offset,
                });
            }
            record.entries = u64_at(&end64, 32);
            record.cd_size = u64_at(&end64, 40);
            record.cd_offset = u64_at(&end64, 48);
            // The zip64 records sit between the directory and the end record.
            record.at = offset;
        }
    }
    Ok(record)
}

/// One central directory entry custody wants.
struct Wanted {
    name: String,
    method: u16,
    flags: u16,
    compressed: u64,
    uncompressed: u64,
    local_offset: u64,
}

fn central_directory(span: Span<'_>, nested: bool) -> Result<(Vec<Wanted>, Vec<Wanted>), JarError> {
    let end = end_record(span)?;
    if end.entries > MAX_ENTRIES {
        return Err(JarError::TooManyEntries { count: end.entries });
    }
    // Offsets are recorded from the start of the zip; bytes before it shift them all.
    let cd_start = end
        .at
        .checked_sub(end.cd_size)
        .ok_or(JarError::OutOfBounds {
            what: "central directory",
            offset: end.cd_offset,
        })?;
    let base = cd_start
        .checked_sub(end.cd_offset)
        .ok_or(JarError::OutOfBounds {
            what: "central directory",
            offset: end.cd_offset,
        })?;
    let mut cd = BufReader::new(span.reader(cd_start, end.cd_size, "central directory")?);
    let mut poms = Vec::new();
    let mut archives = Vec::new();
    let mut position = cd_start;
    for _ in 0..end.entries {
        let mut fixed = [0u8; 46];
        cd.read_exact(&mut fixed)
            .map_err(|_| JarError::OutOfBounds {
                what: "central directory entry",
                offset: position,
            })?;
        if fixed[..4] != *b"PK\x01\x02" {
            return Err(JarError::Signature {
                what: "central directory entry",
                offset: position,
            });
        }
        let name_len = usize::from(u16_at(&fixed, 28));
        let extra_len = usize::from(u16_at(&fixed, 30));
        let comment_len = u64::from(u16_at(&fixed, 32));
        let mut name = vec![0u8; name_len];
        let mut extra = vec![0u8; extra_len];
        cd.read_exact(&mut name)
            .and_then(|()| cd.read_exact(&mut extra))
            .and_then(|()| {
                let skipped = io::copy(&mut (&mut cd).take(comment_len), &mut io::sink())?;
                if skipped == comment_len {
                    Ok(())
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                }
            })
            .map_err(|_| JarError::OutOfBounds {
                what: "central directory entry",
                offset: position,
            })?;
        position += 46 + (name_len + extra_len) as u64 + comment_len;
        let name = String::from_utf8_lossy(&name).into_owned();
        let is_pom = is_pom_properties(&name);
        let is_nested = !nested && !name.ends_with('/') && is_archive(&name);
        if !is_pom && !is_nested {
            continue;
        }
        let mut entry = Wanted {
            name,
            flags: u16_at(&fixed, 8),
            method: u16_at(&fixed, 10),
            compressed: u64::from(u32_at(&fixed, 20)),
            uncompressed: u64::from(u32_at(&fixed, 24)),
            local_offset: u64::from(u32_at(&fixed, 42)),
        };
        apply_zip64_extra(&mut entry, &extra);
        entry.local_offset = entry.local_offset.saturating_add(base);
        if is_pom && poms.len() < MAX_POMS {
            poms.push(entry);
        } else if is_nested && archives.len() < MAX_NESTED {
            archives.push(entry);
        }
    }
    Ok((poms, archives))
}

/// The zip64 extended information field (id 1) holds, in order, whichever of the uncompressed
/// size, compressed size and local header offset overflowed 32 bits.
fn apply_zip64_extra(entry: &mut Wanted, extra: &[u8]) {
    let mut at = 0;
    while at + 4 <= extra.len() {
        let id = u16_at(extra, at);
        let len = usize::from(u16_at(extra, at + 2));
        let Some(body) = extra.get(at + 4..at + 4 + len) else {
            return;
        };
        if id == 1 {
            let mut fields = body.chunks_exact(8).map(|c| u64_at(c, 0));
            for value in [
                &mut entry.uncompressed,
                &mut entry.compressed,
                &mut entry.local_offset,
            ] {
                if *value == 0xffff_ffff {
                    match fields.next() {
                        Some(v) => *value = v,
                        None => return,
                    }
                }
            }
            return;
        }
        at += 4 + len;
    }
}

fn is_pom_properties(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    matches!(
        parts.as_slice(),
        ["META-INF", "maven", g, a, "pom.properties"] if !g.is_empty() && !a.is_empty()
    )
}

/// An entry's data: `(offset in the span, compressed size)`, after its local header.
fn entry_data(span: Span<'_>, entry: &Wanted) -> Result<u64, JarError> {
    if entry.flags & 1 != 0 {
        return Err(JarError::Encrypted {
            name: entry.name.clone(),
        });
    }
    let mut local = [0u8; 30];
    span.read_at(entry.local_offset, &mut local, "local header")?;
    if local[..4] != *b"PK\x03\x04" {
        return Err(JarError::Signature {
            what: "local header",
            offset: entry.local_offset,
        });
    }
    let data =
        entry.local_offset + 30 + u64::from(u16_at(&local, 26)) + u64::from(u16_at(&local, 28));
    span.check(data, entry.compressed, "entry data")?;
    Ok(data)
}

/// The entry's content, inflated, at most `limit` bytes.
fn entry_reader<'a>(span: Span<'a>, entry: &Wanted) -> Result<Box<dyn Read + 'a>, JarError> {
    let data = entry_data(span, entry)?;
    let raw = span.reader(data, entry.compressed, "entry data")?;
    match entry.method {
        0 => Ok(Box::new(raw)),
        8 => Ok(Box::new(flate2::read::DeflateDecoder::new(raw))),
        method => Err(JarError::Method {
            name: entry.name.clone(),
            method,
        }),
    }
}

fn read_archive(
    span: Span<'_>,
    nested: Option<&str>,
    budget: &mut u64,
    out: &mut Archive,
) -> Result<(), JarError> {
    let (poms, archives) = central_directory(span, nested.is_some())?;
    let prefix = nested.map(|n| format!("{n}: ")).unwrap_or_default();
    let before = out.packages.len();
    for pom in &poms {
        match read_pom(span, pom) {
            Ok(Some((group, artifact, version))) => out.packages.push(MavenPackage {
                group,
                artifact,
                version,
                nested: nested.map(str::to_owned),
            }),
            Ok(None) => out.unread.push(format!(
                "{prefix}{} lacks groupId, artifactId or version",
                pom.name
            )),
            Err(e) => out.unread.push(format!("{prefix}{e}")),
        }
    }
    if out.packages.len() == before {
        out.unread
            .push(format!("{prefix}no META-INF/maven pom.properties"));
    }
    for archive in &archives {
        if let Err(e) = read_nested(span, archive, budget, out) {
            out.unread.push(format!("{}: {e}", archive.name));
        }
    }
    Ok(())
}

fn read_pom(span: Span<'_>, entry: &Wanted) -> Result<Option<(String, String, String)>, JarError> {
    let mut bytes = Vec::new();
    entry_reader(span, entry)?
        .take(MAX_POM_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_POM_BYTES {
        return Err(JarError::EntryTooLarge {
            name: entry.name.clone(),
            limit: MAX_POM_BYTES,
        });
    }
    let text = String::from_utf8_lossy(&bytes);
    let (mut group, mut artifact, mut version) = (None, None, None);
    for (key, value) in properties(&text) {
        match key {
            "groupId" => group = Some(value),
            "artifactId" => artifact = Some(value),
            "version" => version = Some(value),
            _ => {}
        }
    }
    Ok(match (group, artifact, version) {
        (Some(g), Some(a), Some(v)) if !g.is_empty() && !a.is_empty() && !v.is_empty() => {
            Some((g.to_owned(), a.to_owned(), v.to_owned()))
        }
        _ => None,
    })
}

/// `key=value`, `key: value` and `key value` lines of a Java properties file; `#` and `!`
/// start comments. Escapes and continuation lines do not occur in Maven's coordinates.
fn properties(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            return None;
        }
        let split = line
            .find(|c: char| c == '=' || c == ':' || c.is_whitespace())
            .unwrap_or(line.len());
        let (key, rest) = line.split_at(split);
        let rest = rest.trim_start();
        let value = rest.strip_prefix(['=', ':']).map_or(rest, str::trim_start);
        Some((key, value.trim_end()))
    })
}

/// A nested archive: a stored one is read in place, a deflated one inflated to a temporary
/// file first, within what is left of the shared budget.
fn read_nested(
    span: Span<'_>,
    entry: &Wanted,
    budget: &mut u64,
    out: &mut Archive,
) -> Result<(), JarError> {
    let too_large = |limit| JarError::EntryTooLarge {
        name: entry.name.clone(),
        limit,
    };
    if entry.uncompressed > MAX_ARCHIVE_BYTES {
        return Err(too_large(MAX_ARCHIVE_BYTES));
    }
    let data = entry_data(span, entry)?;
    if entry.method == 0 && entry.compressed == entry.uncompressed {
        let inner = Span {
            file: span.file,
            start: span.start + data,
            len: entry.compressed,
        };
        return read_archive(inner, Some(&entry.name), budget, out);
    }
    let limit = MAX_ARCHIVE_BYTES.min(*budget);
    let mut spool = tempfile::tempfile()?;
    let inflated = io::copy(&mut entry_reader(span, entry)?.take(limit + 1), &mut spool)?;
    *budget = budget.saturating_sub(inflated);
    if inflated > limit {
        return Err(too_large(limit));
    }
    let inner = Span {
        file: &spool,
        start: 0,
        len: inflated,
    };
    read_archive(inner, Some(&entry.name), budget, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
        let mut z = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        for (name, data, deflate) in entries {
            let method = if *deflate {
                zip::CompressionMethod::Deflated
            } else {
                zip::CompressionMethod::Stored
            };
            let opts = zip::write::SimpleFileOptions::default().compression_method(method);
            z.start_file(*name, opts).expect("start");
            z.write_all(data).expect("write");
        }
        z.finish().expect("finish").into_inner()
    }

    fn read_bytes(bytes: &[u8]) -> Archive {
        catalog(&mut &bytes[..], bytes.len() as u64).expect("spooled")
    }

    const POM: &[u8] =
        b"#Generated by Maven\nartifactId=demo\ngroupId=com.example\nversion=1.2.3\n";

    fn pkg(g: &str, a: &str, v: &str, nested: Option<&str>) -> MavenPackage {
        MavenPackage {
            group: g.to_owned(),
            artifact: a.to_owned(),
            version: v.to_owned(),
            nested: nested.map(str::to_owned),
        }
    }

    #[test]
    fn reads_pom_properties() {
        let jar = zip_of(&[
            ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n", true),
            ("META-INF/maven/com.example/demo/pom.properties", POM, true),
            ("com/example/Demo.class", b"\xca\xfe\xba\xbe", true),
        ]);
        let archive = read_bytes(&jar);
        assert_eq!(
            archive.packages,
            vec![pkg("com.example", "demo", "1.2.3", None)]
        );
        assert!(archive.unread.is_empty(), "{:?}", archive.unread);
    }

    #[test]
    fn properties_forms() {
        let parsed: Vec<_> = properties("! c\n# c\na=1\nb : 2 \nc 3\n d=\n").collect();
        assert_eq!(parsed, vec![("a", "1"), ("b", "2"), ("c", "3"), ("d", "")]);
    }

    #[test]
    fn nested_stored_and_deflated_one_level() {
        let inner_pom = b"groupId=org.lib\nartifactId=inner\nversion=4.5\n";
        let deepest = zip_of(&[("META-INF/maven/x/deep/pom.properties", POM, false)]);
        let inner = zip_of(&[
            (
                "META-INF/maven/org.lib/inner/pom.properties",
                inner_pom,
                true,
            ),
            ("lib/deeper.jar", &deepest, false),
        ]);
        let outer = zip_of(&[
            ("META-INF/maven/com.example/demo/pom.properties", POM, true),
            ("BOOT-INF/lib/inner.jar", &inner, false),
            ("WEB-INF/lib/inner-deflated.jar", &inner, true),
        ]);
        let archive = read_bytes(&outer);
        assert_eq!(
            archive.packages,
            vec![
                pkg("com.example", "demo", "1.2.3", None),
                pkg("org.lib", "inner", "4.5", Some("BOOT-INF/lib/inner.jar")),
                pkg(
                    "org.lib",
                    "inner",
                    "4.5",
                    Some("WEB-INF/lib/inner-deflated.jar")
                ),
            ]
        );
        assert!(archive.unread.is_empty(), "{:?}", archive.unread);
    }

    #[test]
    fn prefixed_archive_shifts_offsets() {
        // A Spring Boot "fully executable" jar starts with a launch script.
        let mut bytes = b"#!/bin/sh\nexec java -jar \"$0\"\n".to_vec();
        bytes.extend(zip_of(&[(
            "META-INF/maven/com.example/demo/pom.properties",
            POM,
            true,
        )]));
        assert_eq!(read_bytes(&bytes).packages.len(), 1);
    }

    #[test]
    fn jar_without_coordinates_is_reported() {
        let jar = zip_of(&[("a.class", b"x", true)]);
        let archive = read_bytes(&jar);
        assert!(archive.packages.is_empty());
        assert_eq!(archive.unread, vec!["no META-INF/maven pom.properties"]);
    }

    #[test]
    fn incomplete_pom_is_reported() {
        let jar = zip_of(&[(
            "META-INF/maven/g/a/pom.properties",
            b"groupId=g\nartifactId=a\n",
            false,
        )]);
        let archive = read_bytes(&jar);
        assert_eq!(
            archive.unread,
            vec![
                "META-INF/maven/g/a/pom.properties lacks groupId, artifactId or version",
                "no META-INF/maven pom.properties"
            ]
        );
    }

    #[test]
    fn not_a_zip_and_truncated() {
        let archive = read_bytes(b"plain text, not a zip");
        assert_eq!(
            archive.unread,
            vec!["not a readable zip archive: no zip end of central directory record"]
        );
        let jar = zip_of(&[("META-INF/maven/com.example/demo/pom.properties", POM, true)]);
        for cut in [1, 10, 22, jar.len() / 2, jar.len() - 1] {
            let archive = read_bytes(&jar[..cut]);
            assert!(archive.packages.is_empty(), "cut at {cut}");
            assert_eq!(
                archive.unread.len(),
                1,
                "cut at {cut}: {:?}",
                archive.unread
            );
        }
        // The end record alone, pointing at a directory before the start of the file.
        let mut lying = b"PK\x05\x06\0\0\0\0\x01\0\x01\0".to_vec();
        lying.extend(100u32.to_le_bytes());
        lying.extend(0u32.to_le_bytes());
        lying.extend(0u16.to_le_bytes());
        assert_eq!(
            read_bytes(&lying).unread,
            vec![
                "not a readable zip archive: central directory at offset 0 lies outside the archive"
            ]
        );
    }

    #[test]
    fn every_truncation_and_corruption_is_bounded() {
        let inner = zip_of(&[("META-INF/maven/g/in/pom.properties", POM, true)]);
        let jar = zip_of(&[
            ("META-INF/maven/com.example/demo/pom.properties", POM, true),
            ("BOOT-INF/lib/inner.jar", &inner, false),
        ]);
        for i in 0..jar.len() {
            let mut bad = jar.clone();
            bad[i] ^= 0xff;
            let _ = read_bytes(&bad);
            let _ = read_bytes(&jar[..i]);
        }
    }

    #[test]
    fn pom_bomb_is_capped() {
        let bomb = vec![b'#'; 16 << 20];
        let jar = zip_of(&[("META-INF/maven/g/a/pom.properties", &bomb, true)]);
        assert!(jar.len() < 1 << 20, "deflate squeezes it");
        let archive = read_bytes(&jar);
        assert_eq!(
            archive.unread,
            vec![
                format!(
                    "entry \"META-INF/maven/g/a/pom.properties\" is larger than {MAX_POM_BYTES} bytes"
                ),
                "no META-INF/maven pom.properties".to_owned()
            ]
        );
    }

    #[test]
    fn nested_bomb_stops_at_the_budget() {
        // 8 MiB of zeros deflate to a few KiB; with 1 MiB of budget left the inflation stops
        // at the budget, whatever the directory says the size is.
        let zeros = vec![0u8; 8 << 20];
        let jar = zip_of(&[("WEB-INF/lib/bomb.jar", &zeros, true)]);
        let mut file = tempfile::tempfile().expect("tmp");
        file.write_all(&jar).expect("write");
        let span = Span {
            file: &file,
            start: 0,
            len: jar.len() as u64,
        };
        let mut out = Archive::default();
        let mut budget = 1 << 20;
        read_archive(span, None, &mut budget, &mut out).expect("directory reads");
        assert_eq!(
            out.unread,
            vec![
                "no META-INF/maven pom.properties".to_owned(),
                format!(
                    "WEB-INF/lib/bomb.jar: entry \"WEB-INF/lib/bomb.jar\" is larger than {} bytes",
                    1 << 20
                )
            ]
        );
        assert_eq!(budget, 0);
    }

    #[test]
    fn huge_entry_count_is_refused_early() {
        let mut bytes = Vec::new();
        bytes.extend(b"PK\x06\x06");
        bytes.extend(44u64.to_le_bytes());
        bytes.extend([45, 0, 45, 0]);
        bytes.extend([0u8; 8]);
        bytes.extend(u64::MAX.to_le_bytes());
        bytes.extend(u64::MAX.to_le_bytes());
        bytes.extend(0u64.to_le_bytes());
        bytes.extend(0u64.to_le_bytes());
        bytes.extend(b"PK\x06\x07\0\0\0\0");
        bytes.extend(0u64.to_le_bytes());
        bytes.extend(1u32.to_le_bytes());
        bytes.extend(b"PK\x05\x06\0\0\0\0\xff\xff\xff\xff");
        bytes.extend([0xff; 8]);
        bytes.extend([0, 0]);
        assert_eq!(
            read_bytes(&bytes).unread,
            vec![format!(
                "not a readable zip archive: central directory of {} entries is over the limit of {MAX_ENTRIES}",
                u64::MAX
            )]
        );
    }

    #[test]
    fn many_small_entries_read_in_flat_memory() {
        // 100 000 entries (a zip64 directory): walked, not kept.
        let mut z = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for i in 0..100_000 {
            z.start_file(format!("c/{i}.class"), opts).expect("start");
        }
        z.start_file("META-INF/maven/g/a/pom.properties", opts)
            .expect("start");
        z.write_all(b"groupId=g\nartifactId=a\nversion=1\n")
            .expect("write");
        let bytes = z.finish().expect("finish").into_inner();
        assert_eq!(read_bytes(&bytes).packages, vec![pkg("g", "a", "1", None)]);
    }

    #[test]
    fn over_bound_archive_is_reported_unread_without_reading() {
        let archive = catalog(&mut io::empty(), MAX_ARCHIVE_BYTES + 1).expect("not read");
        assert_eq!(
            archive.unread,
            vec![format!(
                "archive larger than {MAX_ARCHIVE_BYTES} bytes is not read"
            )]
        );
    }

    #[test]
    fn archive_names() {
        for (path, yes) in [
            ("usr/share/java/a.jar", true),
            ("app/x.WAR", true),
            ("a.ear", true),
            ("lib/.jar", false),
            ("a.jar.sha1", false),
            ("jar", false),
        ] {
            assert_eq!(is_archive(path), yes, "{path}");
        }
    }
}
