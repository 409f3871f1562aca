//! Rust binaries built with cargo-auditable: the ELF section `.dep-v0` holds zlib-compressed
//! JSON naming every crate compiled in (rust-secure-code/cargo-auditable `PARSING.md`). The
//! section table sits at the end of an ELF file, so an executable is spooled to an anonymous
//! temporary file as it streams past (at most [`MAX_SPOOL_BYTES`]) and read from there; the
//! section is capped before and after inflating.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use super::super::{Component, ComponentType, Purl, PurlType};
use super::prop;

/// The largest executable spooled; a larger one is reported unread.
pub const MAX_SPOOL_BYTES: u64 = 512 << 20;
/// `PARSING.md` calls 8 MiB of JSON plenty; the compressed section is far smaller.
const MAX_JSON_BYTES: u64 = 8 << 20;
const MAX_SECTION_BYTES: u64 = 8 << 20;
const MAX_SECTIONS: u64 = 1 << 16;
const MAX_NAMES_BYTES: u64 = 1 << 20;
const SECTION: &[u8] = b".dep-v0";
/// Section type `SHT_NOBITS`: no bytes in the file.
const SHT_NOBITS: u32 = 8;

/// One crate as the binary records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crate {
    pub name: String,
    pub version: String,
    /// `crates.io`, `git`, `local`, `registry` or another source.
    pub source: String,
    /// Only used to build the binary (a build script or proc-macro and what it needs).
    pub build: bool,
    pub root: bool,
    /// Indices into [`DepInfo::crates`].
    pub dependencies: Vec<usize>,
}

/// The dependency tree of one binary: a single root, no cycles, every index in range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepInfo {
    pub crates: Vec<Crate>,
}

/// Why a binary's `.dep-v0` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("not an ELF file")]
    NotElf,
    #[error("{what} at offset {offset} lies outside the file")]
    OutOfBounds { what: &'static str, offset: u64 },
    #[error("{what} of {size} is over the limit of {limit}")]
    TooLarge {
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error(".dep-v0 is not zlib data")]
    Inflate(#[source] io::Error),
    #[error(".dep-v0 is not the dependency JSON cargo-auditable writes")]
    Json(#[source] serde_json::Error),
    #[error(".dep-v0 names {count} root packages, not one")]
    Roots { count: usize },
    #[error(".dep-v0 package {package} depends on index {index}, out of range")]
    BadIndex { package: usize, index: usize },
    #[error(".dep-v0 dependencies form a cycle through package {package}")]
    Cycle { package: usize },
    #[error("could not read the spooled file")]
    Io(#[source] io::Error),
}

impl From<io::Error> for AuditError {
    fn from(e: io::Error) -> AuditError {
        AuditError::Io(e)
    }
}

/// Copies an executable to a temporary file as it streams past, unless it is too large.
pub struct Spool {
    file: Option<File>,
    written: u64,
    /// Why the file is not being kept, when it is not.
    skipped: Option<String>,
}

impl Spool {
    /// A spool for a file of `size` bytes.
    pub fn new(size: u64) -> Spool {
        if size > MAX_SPOOL_BYTES {
            return Spool {
                file: None,
                written: 0,
                skipped: Some(format!(
                    "executable larger than {MAX_SPOOL_BYTES} bytes is not searched for .dep-v0"
                )),
            };
        }
        match tempfile::tempfile() {
            Ok(file) => Spool {
                file: Some(file),
                written: 0,
                skipped: None,
            },
            Err(e) => Spool {
                file: None,
                written: 0,
                skipped: Some(format!("could not spool the executable: {e}")),
            },
        }
    }

    /// Whether bytes still matter.
    pub fn wants_more(&self) -> bool {
        self.file.is_some()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if let Some(file) = &mut self.file {
            match file.write_all(bytes) {
                Ok(()) => self.written += bytes.len() as u64,
                Err(e) => {
                    self.file = None;
                    self.skipped = Some(format!("could not spool the executable: {e}"));
                }
            }
        }
    }

    /// The dependency info: `Ok(None)` when the binary has no `.dep-v0`, `Err` with why it
    /// could not be searched or read.
    pub fn finish(self) -> Result<Option<DepInfo>, String> {
        match (self.file, self.skipped) {
            (Some(file), _) => read(&file, self.written).map_err(|e| e.to_string()),
            (None, Some(why)) => Err(why),
            (None, None) => Ok(None),
        }
    }
}

/// One component per crate (`pkg:cargo/<name>@<version>`, the root an application), and the
/// dependency edges between their purls.
pub fn components(info: &DepInfo) -> (Vec<Component>, Vec<(String, Vec<String>)>) {
    let purls: Vec<Option<Purl>> = info
        .crates
        .iter()
        .map(|c| Purl::new(PurlType::Cargo, &c.name, Some(&c.version), &BTreeMap::new()).ok())
        .collect();
    let mut components = Vec::new();
    let mut edges = Vec::new();
    for (krate, purl) in info.crates.iter().zip(&purls) {
        let kind = if krate.root {
            ComponentType::Application
        } else {
            ComponentType::Library
        };
        let mut c = Component::new(kind, krate.name.clone());
        c.version = Some(krate.version.clone());
        c.purl = purl.clone();
        c.properties
            .push(prop("custody:cargo:source", krate.source.clone()));
        if krate.build {
            c.properties.push(prop("custody:cargo:kind", "build"));
        }
        components.push(c);
        if let Some(from) = purl {
            let to: Vec<String> = krate
                .dependencies
                .iter()
                .filter_map(|&i| purls.get(i).cloned().flatten())
                .map(|p| p.to_string())
                .collect();
            edges.push((from.to_string(), to));
        }
    }
    (components, edges)
}

/// Reads the `.dep-v0` section of the ELF file held in `file` (its first `len` bytes).
pub fn read(file: &File, len: u64) -> Result<Option<DepInfo>, AuditError> {
    let elf = Elf { file, len };
    let Some(section) = elf.find_section(SECTION)? else {
        return Ok(None);
    };
    let (offset, size) = section;
    if size > MAX_SECTION_BYTES {
        return Err(AuditError::TooLarge {
            what: "section .dep-v0",
            size,
            limit: MAX_SECTION_BYTES,
        });
    }
    let compressed = elf.bytes(offset, size, "section .dep-v0")?;
    parse(&compressed).map(Some)
}

/// Inflates (at most [`MAX_JSON_BYTES`]) and checks a `.dep-v0` section's bytes.
pub fn parse(compressed: &[u8]) -> Result<DepInfo, AuditError> {
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(AuditError::Inflate)?;
    if json.len() as u64 > MAX_JSON_BYTES {
        return Err(AuditError::TooLarge {
            what: "inflated .dep-v0",
            size: json.len() as u64,
            limit: MAX_JSON_BYTES,
        });
    }
    let raw: RawInfo = serde_json::from_slice(&json).map_err(AuditError::Json)?;
    let count = raw.packages.iter().filter(|p| p.root).count();
    if count != 1 {
        return Err(AuditError::Roots { count });
    }
    let len = raw.packages.len();
    for (package, p) in raw.packages.iter().enumerate() {
        if let Some(&index) = p.dependencies.iter().find(|&&i| i >= len) {
            return Err(AuditError::BadIndex { package, index });
        }
    }
    if let Some(package) = find_cycle(&raw.packages) {
        return Err(AuditError::Cycle { package });
    }
    Ok(DepInfo {
        crates: raw
            .packages
            .into_iter()
            .map(|p| Crate {
                name: p.name,
                version: p.version,
                source: p.source,
                build: p.kind.as_deref() == Some("build"),
                root: p.root,
                dependencies: p.dependencies,
            })
            .collect(),
    })
}

#[derive(serde::Deserialize)]
struct RawInfo {
    packages: Vec<RawPackage>,
}

#[derive(serde::Deserialize)]
struct RawPackage {
    name: String,
    version: String,
    source: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    dependencies: Vec<usize>,
    #[serde(default)]
    root: bool,
}

/// A package on a dependency cycle, found with an iterative depth-first walk (no recursion:
/// a hostile file may nest as deep as it likes).
fn find_cycle(packages: &[RawPackage]) -> Option<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Closed,
    }
    let mut mark = vec![Mark::New; packages.len()];
    for start in 0..packages.len() {
        if mark[start] != Mark::New {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        mark[start] = Mark::Open;
        while let Some((node, next)) = stack.last_mut() {
            match packages[*node].dependencies.get(*next) {
                Some(&dep) => {
                    *next += 1;
                    match mark[dep] {
                        Mark::Open => return Some(dep),
                        Mark::New => {
                            mark[dep] = Mark::Open;
                            stack.push((dep, 0));
                        }
                        Mark::Closed => {}
                    }
                }
                None => {
                    mark[*node] = Mark::Closed;
                    stack.pop();
                }
            }
        }
    }
    None
}

/// An ELF file (32 or 64 bits, either byte order) read by offset, every read bounds-checked.
struct Elf<'a> {
    file: &'a File,
    len: u64,
}

struct Layout {
    wide: bool,
    little: bool,
}

impl Layout {
    fn u16(&self, b: &[u8], at: usize) -> u16 {
        let v = [b[at], b[at + 1]];
        if self.little {
            u16::from_le_bytes(v)
        } else {
            u16::from_be_bytes(v)
        }
    }
    fn u32(&self, b: &[u8], at: usize) -> u32 {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.little {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        }
    }
    fn u64(&self, b: &[u8], at: usize) -> u64 {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[at..at + 8]);
        if self.little {
            u64::from_le_bytes(v)
        } else {
            u64::from_be_bytes(v)
        }
    }
    /// A section header (`entsize` bytes, at least the standard size).
    fn section(&self, h: &[u8]) -> SectionHeader {
        SectionHeader {
            name: self.u32(h, 0),
            kind: self.u32(h, 4),
            offset: self.word(h, 16, 24),
            size: self.word(h, 20, 32),
            link: self.u32(h, if self.wide { 40 } else { 24 }),
        }
    }
    /// A word: 4 bytes in ELF32, 8 in ELF64.
    fn word(&self, b: &[u8], at32: usize, at64: usize) -> u64 {
        if self.wide {
            self.u64(b, at64)
        } else {
            u64::from(self.u32(b, at32))
        }
    }
}

/// A section header's fields custody reads.
struct SectionHeader {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

impl<'a> Elf<'a> {
    fn bytes(&self, offset: u64, size: u64, what: &'static str) -> Result<Vec<u8>, AuditError> {
        match offset.checked_add(size) {
            Some(end) if end <= self.len => {}
            _ => return Err(AuditError::OutOfBounds { what, offset }),
        }
        let mut file = self.file;
        file.seek(SeekFrom::Start(offset))?;
        let mut out = vec![0u8; size as usize];
        file.read_exact(&mut out)?;
        Ok(out)
    }

    fn section(
        &self,
        layout: &Layout,
        table: u64,
        entsize: u64,
        index: u64,
    ) -> Result<SectionHeader, AuditError> {
        let at = index
            .checked_mul(entsize)
            .and_then(|o| o.checked_add(table))
            .ok_or(AuditError::OutOfBounds {
                what: "section header",
                offset: table,
            })?;
        Ok(layout.section(&self.bytes(at, entsize, "section header")?))
    }

    /// The `(offset, size)` of the section called `wanted`, if there is one.
    fn find_section(&self, wanted: &[u8]) -> Result<Option<(u64, u64)>, AuditError> {
        let ident = self.bytes(0, 16.min(self.len), "ELF header")?;
        if ident.len() < 16 || ident[..4] != *b"\x7fELF" {
            return Err(AuditError::NotElf);
        }
        let layout = Layout {
            wide: match ident[4] {
                1 => false,
                2 => true,
                _ => return Err(AuditError::NotElf),
            },
            little: match ident[5] {
                1 => true,
                2 => false,
                _ => return Err(AuditError::NotElf),
            },
        };
        let header = self.bytes(0, if layout.wide { 64 } else { 52 }, "ELF header")?;
        let table = layout.word(&header, 0x20, 0x28);
        let field = |wide: usize, narrow: usize| {
            u64::from(layout.u16(&header, if layout.wide { wide } else { narrow }))
        };
        let (entsize, mut count, mut names_index) =
            (field(0x3a, 0x2e), field(0x3c, 0x30), field(0x3e, 0x32));
        if table == 0 {
            return Ok(None);
        }
        let min_entsize = if layout.wide { 64 } else { 40 };
        if entsize < min_entsize {
            return Err(AuditError::OutOfBounds {
                what: "section header table",
                offset: table,
            });
        }
        // Many sections: the real count and string table index sit in section 0.
        if count == 0 || names_index == 0xffff {
            let first = self.section(&layout, table, entsize, 0)?;
            if count == 0 {
                count = first.size;
            }
            if names_index == 0xffff {
                names_index = u64::from(first.link);
            }
        }
        if count > MAX_SECTIONS {
            return Err(AuditError::TooLarge {
                what: "section count",
                size: count,
                limit: MAX_SECTIONS,
            });
        }
        if names_index >= count {
            return Err(AuditError::OutOfBounds {
                what: "section name table",
                offset: table,
            });
        }
        let names = self.section(&layout, table, entsize, names_index)?;
        if names.size > MAX_NAMES_BYTES {
            return Err(AuditError::TooLarge {
                what: "section name table",
                size: names.size,
                limit: MAX_NAMES_BYTES,
            });
        }
        let names = self.bytes(names.offset, names.size, "section name table")?;
        let headers = self.bytes(table, count * entsize, "section header table")?;
        for i in 0..count as usize {
            let at = i * entsize as usize;
            let section = layout.section(&headers[at..at + entsize as usize]);
            let named = names
                .get(section.name as usize..)
                .and_then(|rest| rest.split(|b| *b == 0).next())
                .is_some_and(|n| n == wanted);
            if !named {
                continue;
            }
            if section.kind == SHT_NOBITS {
                return Ok(None);
            }
            return Ok(Some((section.offset, section.size)));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zlib(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(bytes).expect("zlib");
        e.finish().expect("zlib")
    }

    const JSON: &str = r#"{"format":1,"packages":[
        {"name":"hello","version":"0.1.0","source":"local","dependencies":[1,2],"root":true},
        {"name":"itoa","version":"1.0.19","source":"crates.io"},
        {"name":"cc","version":"1.2.0","source":"crates.io","kind":"build"}]}"#;

    /// A minimal ELF64 little-endian file: header, one data section, a name table, the
    /// section header table at the end (as linkers place it).
    fn elf_with(section: &str, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        let data_at = out.len() as u64;
        out.extend_from_slice(data);
        let names_at = out.len() as u64;
        let mut names = vec![0u8];
        let data_name = names.len() as u32;
        names.extend_from_slice(section.as_bytes());
        names.push(0);
        let names_name = names.len() as u32;
        names.extend_from_slice(b".shstrtab\0");
        out.extend_from_slice(&names);
        let table = out.len() as u64;
        let header = |name: u32, kind: u32, offset: u64, size: u64| {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            h[24..32].copy_from_slice(&offset.to_le_bytes());
            h[32..40].copy_from_slice(&size.to_le_bytes());
            h
        };
        out.extend(header(0, 0, 0, 0));
        out.extend(header(data_name, 1, data_at, data.len() as u64));
        out.extend(header(names_name, 3, names_at, names.len() as u64));
        out[0x28..0x30].copy_from_slice(&table.to_le_bytes());
        out[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        out[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        out[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        out
    }

    fn read_bytes(bytes: &[u8]) -> Result<Option<DepInfo>, String> {
        let mut spool = Spool::new(bytes.len() as u64);
        for chunk in bytes.chunks(7) {
            spool.feed(chunk);
        }
        spool.finish()
    }

    #[test]
    fn reads_dep_v0() {
        let info = read_bytes(&elf_with(".dep-v0", &zlib(JSON.as_bytes())))
            .expect("reads")
            .expect("has .dep-v0");
        let names: Vec<(&str, bool, bool)> = info
            .crates
            .iter()
            .map(|c| (c.name.as_str(), c.root, c.build))
            .collect();
        assert_eq!(
            names,
            vec![
                ("hello", true, false),
                ("itoa", false, false),
                ("cc", false, true)
            ]
        );
        assert_eq!(info.crates[0].dependencies, vec![1, 2]);
        assert_eq!(info.crates[1].source, "crates.io");
    }

    #[test]
    fn other_sections_are_not_read() {
        assert_eq!(
            read_bytes(&elf_with(".dep-v1", &zlib(JSON.as_bytes()))),
            Ok(None)
        );
        // A name that only starts like it.
        assert_eq!(
            read_bytes(&elf_with(".dep-v0x", &zlib(JSON.as_bytes()))),
            Ok(None)
        );
    }

    #[test]
    fn decompression_bomb_is_capped() {
        let bomb = zlib(&vec![b' '; (MAX_JSON_BYTES + 1024) as usize]);
        assert!(bomb.len() < 64 << 10, "zlib squeezes it");
        let err = parse(&bomb).expect_err("over the cap");
        assert!(
            matches!(err, AuditError::TooLarge { what: "inflated .dep-v0", size, limit }
                if size == MAX_JSON_BYTES + 1 && limit == MAX_JSON_BYTES),
            "{err:?}"
        );
    }

    /// An input and the test its error must pass.
    type Case<T> = (T, fn(&AuditError) -> bool);

    #[test]
    fn malformed_contents() {
        let cases: &[Case<&[u8]>] = &[
            (b"not zlib", |e| matches!(e, AuditError::Inflate(_))),
            (&[], |e| matches!(e, AuditError::Inflate(_))),
        ];
        for (bytes, expected) in cases {
            let err = parse(bytes).expect_err("malformed");
            assert!(expected(&err), "{err:?}");
        }
        let json_cases: &[Case<&str>] = &[
            ("{}", |e| matches!(e, AuditError::Json(_))),
            (r#"{"packages":[]}"#, |e| {
                matches!(e, AuditError::Roots { count: 0 })
            }),
            (
                r#"{"packages":[{"name":"a","version":"1","source":"local","root":true},
                    {"name":"b","version":"1","source":"local","root":true}]}"#,
                |e| matches!(e, AuditError::Roots { count: 2 }),
            ),
            (
                r#"{"packages":[{"name":"a","version":"1","source":"local","root":true,"dependencies":[7]}]}"#,
                |e| {
                    matches!(
                        e,
                        AuditError::BadIndex {
                            package: 0,
                            index: 7
                        }
                    )
                },
            ),
            (
                r#"{"packages":[{"name":"a","version":"1","source":"local","root":true,"dependencies":[1]},
                    {"name":"b","version":"1","source":"crates.io","dependencies":[0]}]}"#,
                |e| matches!(e, AuditError::Cycle { package: 0 }),
            ),
            (
                r#"{"packages":[{"name":"a","version":"1","source":"local","root":true,"dependencies":[0]}]}"#,
                |e| matches!(e, AuditError::Cycle { package: 0 }),
            ),
        ];
        for (json, expected) in json_cases {
            let err = parse(&zlib(json.as_bytes())).expect_err(json);
            assert!(expected(&err), "{json}: {err:?}");
        }
    }

    #[test]
    fn deep_chain_is_walked_without_recursion() {
        let n = 60_000;
        let mut json = String::from(r#"{"packages":["#);
        for i in 0..n {
            if i > 0 {
                json.push(',');
            }
            let deps = if i + 1 < n {
                format!("[{}]", i + 1)
            } else {
                "[]".to_owned()
            };
            json.push_str(&format!(
                r#"{{"name":"c{i}","version":"1","source":"crates.io","dependencies":{deps}{}}}"#,
                if i == 0 { r#","root":true"# } else { "" }
            ));
        }
        json.push_str("]}");
        let info = parse(&zlib(json.as_bytes())).expect("a chain is fine");
        assert_eq!(info.crates.len(), n);
    }

    #[test]
    fn malformed_elf_is_bounded() {
        let good = elf_with(".dep-v0", &zlib(JSON.as_bytes()));
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            let _ = read_bytes(&bad);
            let _ = read_bytes(&good[..i]);
        }
        assert_eq!(read_bytes(b"\x7fELF"), Err("not an ELF file".to_owned()));
        let mut huge_table = good.clone();
        huge_table[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            read_bytes(&huge_table),
            Err(format!(
                "section header at offset {} lies outside the file",
                u64::MAX
            ))
        );
    }

    #[test]
    fn over_bound_executable_is_reported() {
        let spool = Spool::new(MAX_SPOOL_BYTES + 1);
        assert!(!spool.wants_more());
        assert_eq!(
            spool.finish(),
            Err(format!(
                "executable larger than {MAX_SPOOL_BYTES} bytes is not searched for .dep-v0"
            ))
        );
    }
}
