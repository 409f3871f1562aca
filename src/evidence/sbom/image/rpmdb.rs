//! rpm's SQLite package database (`rpmdb.sqlite`, RHEL 9, Fedora 33 and later): one header
//! blob per row of the `Packages` table. A stored header has no magic: the index entry count
//! and the data length (big-endian u32 each), the 16-byte index entries `{tag, type, offset,
//! count}`, then the data. Only the tags an SBOM needs are read (name, epoch, version,
//! release, arch, source rpm, license, vendor); every offset is checked against the data.

use super::sqlite::{self, Value};

/// An installed rpm package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmPackage {
    pub name: String,
    pub epoch: Option<u32>,
    pub version: String,
    pub release: String,
    pub arch: Option<String>,
    /// The source rpm file name (`bash-5.1.8-6.el9_1.src.rpm`).
    pub source_rpm: Option<String>,
    pub license: Option<String>,
    pub vendor: Option<String>,
}

/// Why a database or one of its headers could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RpmDbError {
    #[error(transparent)]
    Sqlite(#[from] sqlite::SqliteError),
    #[error("rpm header {row} is malformed: {what}")]
    Header { row: usize, what: &'static str },
}

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_VENDOR: u32 = 1011;
const TAG_LICENSE: u32 = 1014;
const TAG_ARCH: u32 = 1022;
const TAG_SOURCERPM: u32 = 1044;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// rpm's own bounds on a header (`hdrblobVerifyInfo`): 64 Ki entries, 256 MiB of data.
const MAX_ENTRIES: usize = 0xffff;
const MAX_DATA: usize = 256 << 20;

/// Every package of an `rpmdb.sqlite` file's bytes.
pub fn read(bytes: &[u8]) -> Result<Vec<RpmPackage>, RpmDbError> {
    let db = sqlite::Database::open(bytes)?;
    let mut out = Vec::new();
    for (row, values) in db.rows("Packages")?.into_iter().enumerate() {
        let blob = values
            .into_iter()
            .find_map(|v| match v {
                Value::Blob(b) => Some(b),
                _ => None,
            })
            .ok_or(RpmDbError::Header {
                row,
                what: "row has no blob",
            })?;
        out.push(header(row, &blob)?);
    }
    Ok(out)
}

struct Entry {
    tag: u32,
    kind: u32,
    offset: usize,
}

/// Reads one stored header.
pub fn header(row: usize, blob: &[u8]) -> Result<RpmPackage, RpmDbError> {
    let bad = |what| RpmDbError::Header { row, what };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(blob.get(at..at + 4)?.try_into().ok()?))
    };
    let il = u32_at(0).ok_or(bad("truncated"))? as usize;
    let dl = u32_at(4).ok_or(bad("truncated"))? as usize;
    if il == 0 || il > MAX_ENTRIES || dl > MAX_DATA {
        return Err(bad("entry count or data length out of bounds"));
    }
    let data_start = 8 + il * 16;
    let data = blob
        .get(data_start..data_start + dl)
        .ok_or(bad("data past the end of the blob"))?;
    let mut entries = Vec::new();
    for i in 0..il {
        let at = 8 + i * 16;
        let (tag, kind, offset) = (
            u32_at(at).ok_or(bad("truncated"))?,
            u32_at(at + 4).ok_or(bad("truncated"))?,
            u32_at(at + 8).ok_or(bad("truncated"))?,
        );
        let offset = offset as usize;
        if offset >= dl && matches!(tag, TAG_NAME..=TAG_SOURCERPM) {
            return Err(bad("entry offset past the data"));
        }
        entries.push(Entry { tag, kind, offset });
    }
    let string = |tag: u32| -> Result<Option<String>, RpmDbError> {
        let Some(e) = entries.iter().find(|e| e.tag == tag) else {
            return Ok(None);
        };
        if !matches!(e.kind, TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING) {
            return Err(bad("a string tag of another type"));
        }
        let rest = data
            .get(e.offset..)
            .ok_or(bad("entry offset past the data"))?;
        let end = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or(bad("string without its terminating nul"))?;
        Ok(Some(String::from_utf8_lossy(&rest[..end]).into_owned()))
    };
    let epoch = match entries.iter().find(|e| e.tag == TAG_EPOCH) {
        None => None,
        Some(e) if e.kind == TYPE_INT32 => Some(
            data.get(e.offset..e.offset + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
                .ok_or(bad("epoch past the data"))?,
        ),
        Some(_) => return Err(bad("epoch is not an int32")),
    };
    let name = string(TAG_NAME)?.filter(|s| !s.is_empty());
    let version = string(TAG_VERSION)?;
    let release = string(TAG_RELEASE)?;
    let (Some(name), Some(version), Some(release)) = (name, version, release) else {
        return Err(bad("no name, version or release"));
    };
    let optional = |tag| -> Result<Option<String>, RpmDbError> {
        Ok(string(tag)?.filter(|s| !s.is_empty() && s != "(none)"))
    };
    Ok(RpmPackage {
        name,
        epoch,
        version,
        release,
        arch: optional(TAG_ARCH)?,
        source_rpm: optional(TAG_SOURCERPM)?,
        license: optional(TAG_LICENSE)?,
        vendor: optional(TAG_VENDOR)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header with the given (tag, type, value) entries, as rpm stores it.
    fn blob(entries: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, kind, value) in entries {
            if *kind == TYPE_INT32 {
                while data.len() % 4 != 0 {
                    data.push(0);
                }
            }
            index.extend_from_slice(&tag.to_be_bytes());
            index.extend_from_slice(&kind.to_be_bytes());
            index.extend_from_slice(&(data.len() as u32).to_be_bytes());
            index.extend_from_slice(&1u32.to_be_bytes());
            data.extend_from_slice(value);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }

    fn bash() -> Vec<u8> {
        blob(&[
            (TAG_NAME, TYPE_STRING, b"bash\0"),
            (TAG_VERSION, TYPE_STRING, b"5.1.8\0"),
            (TAG_RELEASE, TYPE_STRING, b"6.el9_1\0"),
            (TAG_EPOCH, TYPE_INT32, &1u32.to_be_bytes()),
            (TAG_ARCH, TYPE_STRING, b"x86_64\0"),
            (TAG_SOURCERPM, TYPE_STRING, b"bash-5.1.8-6.el9_1.src.rpm\0"),
            (TAG_LICENSE, TYPE_STRING, b"GPLv3+\0"),
        ])
    }

    #[test]
    fn reads_the_tags_it_needs() {
        let p = header(0, &bash()).expect("reads");
        assert_eq!(p.name, "bash");
        assert_eq!(p.epoch, Some(1));
        assert_eq!(
            (p.version.as_str(), p.release.as_str()),
            ("5.1.8", "6.el9_1")
        );
        assert_eq!(p.arch.as_deref(), Some("x86_64"));
        assert_eq!(p.source_rpm.as_deref(), Some("bash-5.1.8-6.el9_1.src.rpm"));
        assert_eq!(p.vendor, None);
    }

    #[test]
    fn malformed_headers_are_errors_never_panics() {
        let good = bash();
        for cut in 0..good.len() {
            assert!(header(0, &good[..cut]).is_err(), "cut at {cut}");
        }
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..5000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut b = good.clone();
            let i = (seed as usize) % b.len();
            b[i] ^= 1 << (seed % 8);
            let _ = header(0, &b);
        }
        let missing_name = blob(&[(TAG_VERSION, TYPE_STRING, b"1\0")]);
        assert_eq!(
            header(3, &missing_name),
            Err(RpmDbError::Header {
                row: 3,
                what: "no name, version or release"
            })
        );
        let huge = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert!(matches!(header(0, &huge), Err(RpmDbError::Header { .. })));
    }
}
