//! Just enough of the SQLite file format (sqlite.org/fileformat2.html) to read every row of one
//! table: the schema table on page 1 names the table's root page, whose table b-tree is walked
//! (interior and leaf pages, payloads spilled to overflow pages). For rpm's `rpmdb.sqlite`,
//! whose `Packages` table holds one header blob per package; a C library would be a heavy
//! dependency for this. Every page number, offset and length is checked, pages are visited at
//! most once, and a malformed file is an error, never a panic. A `-wal` file is not read: rpm
//! checkpoints it into the database when it closes.

/// Why a database could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SqliteError {
    #[error("not an sqlite 3 database")]
    NotSqlite,
    #[error("sqlite page size {0} is not valid")]
    PageSize(u32),
    #[error("sqlite text encoding {0} is not utf-8")]
    Encoding(u32),
    #[error("sqlite database has no table {0:?}")]
    NoTable(String),
    #[error("sqlite page {page} is malformed: {what}")]
    Malformed { page: u32, what: &'static str },
}

/// One column value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

pub struct Database<'a> {
    bytes: &'a [u8],
    page_size: usize,
    usable: usize,
}

fn malformed(page: u32, what: &'static str) -> SqliteError {
    SqliteError::Malformed { page, what }
}

/// A varint (1 to 9 bytes, big-endian, 7 bits a byte, all 8 in the ninth) and its length.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let byte = *b.get(i)?;
        if i == 8 {
            return Some(((v << 8) | u64::from(byte), 9));
        }
        v = (v << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn be_u16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl<'a> Database<'a> {
    pub fn open(bytes: &'a [u8]) -> Result<Database<'a>, SqliteError> {
        if bytes.len() < 100 || !bytes.starts_with(b"SQLite format 3\0") {
            return Err(SqliteError::NotSqlite);
        }
        let raw = be_u16(bytes, 16).ok_or(SqliteError::NotSqlite)?;
        let page_size = if raw == 1 { 65536 } else { raw };
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(SqliteError::PageSize(raw as u32));
        }
        let reserved = usize::from(bytes[20]);
        let usable = page_size.saturating_sub(reserved);
        if usable < 480 {
            return Err(SqliteError::PageSize(raw as u32));
        }
        let encoding = be_u32(bytes, 56).unwrap_or(0);
        if encoding > 1 {
            return Err(SqliteError::Encoding(encoding));
        }
        Ok(Database {
            bytes,
            page_size,
            usable,
        })
    }

    fn page_count(&self) -> usize {
        self.bytes.len() / self.page_size
    }

    fn page(&self, number: u32) -> Result<&'a [u8], SqliteError> {
        let n = number as usize;
        if n == 0 || n > self.page_count() {
            return Err(malformed(number, "page number out of range"));
        }
        let start = (n - 1) * self.page_size;
        Ok(&self.bytes[start..start + self.page_size])
    }

    /// Every row of `table`, in rowid order, as column values.
    pub fn rows(&self, table: &str) -> Result<Vec<Vec<Value>>, SqliteError> {
        let root = self
            .rows_at(1)?
            .into_iter()
            .find_map(|row| match row.as_slice() {
                [
                    Value::Text(kind),
                    Value::Text(name),
                    _,
                    Value::Integer(root),
                    ..,
                ] if kind == b"table" && name == table.as_bytes() => u32::try_from(*root).ok(),
                _ => None,
            })
            .ok_or_else(|| SqliteError::NoTable(table.to_owned()))?;
        self.rows_at(root)
    }

    fn rows_at(&self, root: u32) -> Result<Vec<Vec<Value>>, SqliteError> {
        let mut seen = vec![false; self.page_count() + 1];
        let mut rows = Vec::new();
        let mut stack = vec![root];
        while let Some(number) = stack.pop() {
            let slot = seen
                .get_mut(number as usize)
                .ok_or_else(|| malformed(number, "page number out of range"))?;
            if *slot {
                return Err(malformed(number, "page visited twice"));
            }
            *slot = true;
            let page = self.page(number)?;
            let base = if number == 1 { 100 } else { 0 };
            let kind = *page.get(base).ok_or_else(|| malformed(number, "header"))?;
            let cells = be_u16(page, base + 3).ok_or_else(|| malformed(number, "header"))?;
            match kind {
                0x05 => {
                    let right =
                        be_u32(page, base + 8).ok_or_else(|| malformed(number, "header"))?;
                    // Children are pushed right to left so that rows come out in rowid order.
                    stack.push(right);
                    let mut children = Vec::with_capacity(cells);
                    for i in 0..cells {
                        let at = be_u16(page, base + 12 + 2 * i)
                            .ok_or_else(|| malformed(number, "cell pointer"))?;
                        children.push(
                            be_u32(page, at).ok_or_else(|| malformed(number, "child pointer"))?,
                        );
                    }
                    stack.extend(children.into_iter().rev());
                }
                0x0d => {
                    for i in 0..cells {
                        let at = be_u16(page, base + 8 + 2 * i)
                            .ok_or_else(|| malformed(number, "cell pointer"))?;
                        let payload = self.leaf_payload(number, page, at, &mut seen)?;
                        rows.push(record(number, &payload)?);
                    }
                }
                _ => return Err(malformed(number, "not a table b-tree page")),
            }
        }
        Ok(rows)
    }

    /// A table leaf cell's payload, gathered from its overflow pages when it spills.
    fn leaf_payload(
        &self,
        number: u32,
        page: &[u8],
        at: usize,
        seen: &mut [bool],
    ) -> Result<Vec<u8>, SqliteError> {
        let cell = page
            .get(at..)
            .ok_or_else(|| malformed(number, "cell offset"))?;
        let (size, a) = varint(cell).ok_or_else(|| malformed(number, "payload size"))?;
        let (_rowid, b) = varint(&cell[a..]).ok_or_else(|| malformed(number, "rowid"))?;
        let size = usize::try_from(size).map_err(|_| malformed(number, "payload size"))?;
        if size > self.bytes.len() {
            return Err(malformed(number, "payload larger than the database"));
        }
        let u = self.usable;
        let x = u - 35;
        let local = if size <= x {
            size
        } else {
            let m = ((u - 12) * 32 / 255) - 23;
            let k = m + ((size - m) % (u - 4));
            if k <= x { k } else { m }
        };
        let start = a + b;
        let mut out = cell
            .get(start..start + local)
            .ok_or_else(|| malformed(number, "payload past the page"))?
            .to_vec();
        if local == size {
            return Ok(out);
        }
        let mut next = be_u32(cell, start + local).ok_or_else(|| malformed(number, "overflow"))?;
        while out.len() < size {
            let slot = seen
                .get_mut(next as usize)
                .ok_or_else(|| malformed(next, "overflow page out of range"))?;
            if *slot {
                return Err(malformed(next, "overflow page visited twice"));
            }
            *slot = true;
            let overflow = self.page(next)?;
            let take = (size - out.len()).min(u - 4);
            out.extend_from_slice(
                overflow
                    .get(4..4 + take)
                    .ok_or_else(|| malformed(next, "overflow content"))?,
            );
            next = be_u32(overflow, 0).ok_or_else(|| malformed(next, "overflow"))?;
        }
        Ok(out)
    }
}

/// A record: a header of serial types, then the values they describe.
fn record(page: u32, payload: &[u8]) -> Result<Vec<Value>, SqliteError> {
    let bad = || malformed(page, "record");
    let (header_len, mut at) = varint(payload).ok_or_else(bad)?;
    let header_len = usize::try_from(header_len).map_err(|_| bad())?;
    if header_len > payload.len() {
        return Err(bad());
    }
    let mut body = header_len;
    let mut values = Vec::new();
    while at < header_len {
        let (serial, n) = varint(&payload[at..header_len]).ok_or_else(bad)?;
        at += n;
        let int = |len: usize, body: usize| -> Result<i64, SqliteError> {
            let b = payload.get(body..body + len).ok_or_else(bad)?;
            let mut v: i64 = if b.first().is_some_and(|x| x & 0x80 != 0) {
                -1
            } else {
                0
            };
            for byte in b {
                v = (v << 8) | i64::from(*byte);
            }
            Ok(v)
        };
        let (value, len) = match serial {
            0 => (Value::Null, 0),
            1..=4 => {
                let len = serial as usize;
                (Value::Integer(int(len, body)?), len)
            }
            5 => (Value::Integer(int(6, body)?), 6),
            6 => (Value::Integer(int(8, body)?), 8),
            7 => {
                let b = payload.get(body..body + 8).ok_or_else(bad)?;
                let bits = u64::from_be_bytes(b.try_into().map_err(|_| bad())?);
                (Value::Real(f64::from_bits(bits)), 8)
            }
            8 => (Value::Integer(0), 0),
            9 => (Value::Integer(1), 0),
            10 | 11 => return Err(bad()),
            n => {
                let len = usize::try_from((n - 12) / 2).map_err(|_| bad())?;
                let bytes = payload.get(body..body + len).ok_or_else(bad)?.to_vec();
                if n % 2 == 0 {
                    (Value::Blob(bytes), len)
                } else {
                    (Value::Text(bytes), len)
                }
            }
        };
        body += len;
        values.push(value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(varint(&[0x05]), Some((5, 1)));
        assert_eq!(varint(&[0x81, 0x00]), Some((128, 2)));
        assert_eq!(varint(&[0xff; 9]), Some((u64::MAX, 9)));
        assert_eq!(varint(&[0x81]), None);
        assert_eq!(varint(&[]), None);
    }

    #[test]
    fn records() {
        // header 4 bytes: NULL, int8, text of 2
        let payload = [4, 0, 1, 17, 0xff, b'h', b'i'];
        assert_eq!(
            record(1, &payload),
            Ok(vec![
                Value::Null,
                Value::Integer(-1),
                Value::Text(b"hi".to_vec())
            ])
        );
        assert!(matches!(
            record(1, &[9, 0]),
            Err(SqliteError::Malformed { .. })
        ));
        assert!(matches!(
            record(1, &[2, 40]),
            Err(SqliteError::Malformed { .. })
        ));
    }

    #[test]
    fn not_sqlite_and_bad_headers() {
        assert_eq!(Database::open(b"nope").err(), Some(SqliteError::NotSqlite));
        let mut header = vec![0u8; 100];
        header[..16].copy_from_slice(b"SQLite format 3\0");
        header[16..18].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(
            Database::open(&header).err(),
            Some(SqliteError::PageSize(1000))
        );
        header[16..18].copy_from_slice(&4096u16.to_be_bytes());
        // One short page: the schema page is out of range.
        let db = Database::open(&header).expect("header reads");
        assert!(matches!(
            db.rows("Packages"),
            Err(SqliteError::Malformed { page: 1, .. })
        ));
    }
}
