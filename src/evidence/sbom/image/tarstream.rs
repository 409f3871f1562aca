//! A streaming tar reader with bounds: ustar and GNU headers, GNU long names and PAX `path` and
//! `size` records. Every metadata block it buffers is capped (a long name at 64 KiB, a PAX
//! header at 1 MiB), so a hostile layer cannot make it allocate; file data is never buffered,
//! only passed through [`TarStream::data`].

use std::io::{self, Read};

const BLOCK: usize = 512;
const MAX_LONG_NAME: u64 = 64 << 10;
const MAX_PAX: u64 = 1 << 20;

/// One entry's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub path: String,
    /// The typeflag (`b'0'` file, `b'5'` directory, `b'2'` symlink, ...).
    pub kind: u8,
    pub mode: u32,
    /// Bytes of data that follow.
    pub size: u64,
}

impl Header {
    pub fn is_file(&self) -> bool {
        matches!(self.kind, b'0' | 0 | b'7')
    }
    pub fn is_dir(&self) -> bool {
        self.kind == b'5'
    }
}

pub struct TarStream<R> {
    inner: R,
    /// Data of the current entry not read yet, then its padding.
    remaining: u64,
    padding: u64,
    done: bool,
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn octal(field: &[u8], what: &str) -> io::Result<u64> {
    // GNU base-256 for large values: high bit of the first byte set.
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            value = value
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| invalid(format!("tar {what} field overflows")))?;
        }
        return Ok(value);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| *b != 0 && *b != b' ')
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let text = std::str::from_utf8(&text).map_err(|_| invalid(format!("tar {what} field")))?;
    u64::from_str_radix(text, 8).map_err(|_| invalid(format!("tar {what} field {text:?}")))
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

impl<R: Read> TarStream<R> {
    pub fn new(inner: R) -> TarStream<R> {
        TarStream {
            inner,
            remaining: 0,
            padding: 0,
            done: false,
        }
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        if copied != n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar stream ends inside an entry",
            ));
        }
        Ok(())
    }

    /// Reads a metadata entry's data (long name, PAX records), at most `max` bytes.
    fn read_meta(&mut self, size: u64, max: u64, what: &str) -> io::Result<Vec<u8>> {
        if size > max {
            return Err(invalid(format!("tar {what} of {size} bytes is over {max}")));
        }
        let mut data = vec![0u8; size as usize];
        self.inner.read_exact(&mut data)?;
        self.skip(padding(size))?;
        Ok(data)
    }

    /// The next entry's header, after skipping what is left of the current one; `None` at the
    /// end of the archive.
    pub fn next_entry(&mut self) -> io::Result<Option<Header>> {
        if self.done {
            return Ok(None);
        }
        self.skip(self.remaining + self.padding)?;
        self.remaining = 0;
        self.padding = 0;
        let mut long_name: Option<Vec<u8>> = None;
        let mut pax_path: Option<Vec<u8>> = None;
        let mut pax_size: Option<u64> = None;
        loop {
            let mut block = [0u8; BLOCK];
            let mut filled = 0;
            while filled < BLOCK {
                let n = self.inner.read(&mut block[filled..])?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                // No end-of-archive blocks: accepted, as GNU tar does with a warning.
                self.done = true;
                return Ok(None);
            }
            if filled < BLOCK {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "tar stream ends inside a header",
                ));
            }
            if block.iter().all(|b| *b == 0) {
                self.done = true;
                return Ok(None);
            }
            let stored = octal(&block[148..156], "checksum")?;
            let sum: u64 = block
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        u64::from(b' ')
                    } else {
                        u64::from(*b)
                    }
                })
                .sum();
            if sum != stored {
                return Err(invalid("tar header checksum does not match"));
            }
            let kind = block[156];
            let size = octal(&block[124..136], "size")?;
            match kind {
                b'L' => {
                    let mut name = self.read_meta(size, MAX_LONG_NAME, "long name")?;
                    name.truncate(cstr(&name).len());
                    long_name = Some(name);
                    continue;
                }
                b'K' => {
                    self.read_meta(size, MAX_LONG_NAME, "long link name")?;
                    continue;
                }
                b'x' => {
                    let data = self.read_meta(size, MAX_PAX, "pax header")?;
                    for (key, value) in pax_records(&data)? {
                        match key {
                            b"path" => pax_path = Some(value.to_vec()),
                            b"size" => {
                                let text = std::str::from_utf8(value)
                                    .map_err(|_| invalid("pax size record"))?;
                                pax_size = Some(
                                    text.parse()
                                        .map_err(|_| invalid(format!("pax size {text:?}")))?,
                                );
                            }
                            _ => {}
                        }
                    }
                    continue;
                }
                b'g' => {
                    self.read_meta(size, MAX_PAX, "pax global header")?;
                    continue;
                }
                _ => {}
            }
            let name = match (pax_path.take(), long_name.take()) {
                (Some(p), _) => p,
                (None, Some(l)) => l,
                (None, None) => {
                    let name = cstr(&block[0..100]);
                    let prefix = cstr(&block[345..500]);
                    if &block[257..262] == b"ustar" && !prefix.is_empty() {
                        [prefix, b"/", name].concat()
                    } else {
                        name.to_vec()
                    }
                }
            };
            let size = pax_size.take().unwrap_or(size);
            // Links, devices, directories and FIFOs carry no data whatever the size says.
            let size = if matches!(kind, b'1'..=b'6') { 0 } else { size };
            self.remaining = size;
            self.padding = padding(size);
            return Ok(Some(Header {
                path: String::from_utf8_lossy(&name).into_owned(),
                kind,
                mode: octal(&block[100..108], "mode")? as u32,
                size,
            }));
        }
    }

    /// The current entry's data.
    pub fn data(&mut self) -> EntryData<'_, R> {
        EntryData { stream: self }
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// `"<len> key=value\n"` records.
fn pax_records(data: &[u8]) -> io::Result<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|b| *b == 0) {
            break;
        }
        let space = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| invalid("pax record without a length"))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|l| *l > space + 1 && *l <= rest.len())
            .ok_or_else(|| invalid("pax record length"))?;
        let record = &rest[space + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or_else(|| invalid("pax record without a newline"))?;
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(|| invalid("pax record without '='"))?;
        out.push((&record[..eq], &record[eq + 1..]));
        rest = &rest[len..];
    }
    Ok(out)
}

/// Reads the current entry's data and no further.
pub struct EntryData<'a, R> {
    stream: &'a mut TarStream<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stream.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.stream.remaining).unwrap_or(usize::MAX));
        let n = self.stream.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar stream ends inside an entry",
            ));
        }
        self.stream.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(bytes: &[u8]) -> io::Result<Vec<(Header, Vec<u8>)>> {
        let mut t = TarStream::new(bytes);
        let mut out = Vec::new();
        while let Some(h) = t.next_entry()? {
            let mut data = Vec::new();
            t.data().read_to_end(&mut data)?;
            out.push((h, data));
        }
        Ok(out)
    }

    fn build(long: bool) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let name = if long {
            format!("{}/file", "d".repeat(200))
        } else {
            "etc/os-release".to_owned()
        };
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o755);
        h.set_cksum();
        b.append_data(&mut h, &name, &b"abc"[..]).expect("append");
        b.into_inner().expect("tar")
    }

    #[test]
    fn reads_names_long_names_and_data() {
        let got = entries(&build(false)).expect("tar");
        assert_eq!(got[0].0.path, "etc/os-release");
        assert_eq!(got[0].0.mode, 0o755);
        assert_eq!(got[0].1, b"abc");
        let got = entries(&build(true)).expect("tar");
        assert_eq!(got[0].0.path.len(), 205);
    }

    #[test]
    fn pax_path_and_size() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("path", &b"pax/name"[..])])
            .expect("pax");
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        h.set_cksum();
        b.append_data(&mut h, "short", &b"hi"[..]).expect("append");
        let got = entries(&b.into_inner().expect("tar")).expect("tar");
        assert_eq!(got[0].0.path, "pax/name");
        assert_eq!(got[0].1, b"hi");
    }

    #[test]
    fn malformed_archives_are_errors_never_panics() {
        let good = build(false);
        let mut bad_sum = good.clone();
        bad_sum[0] ^= 1;
        assert_eq!(
            entries(&bad_sum).err().map(|e| e.kind()),
            Some(io::ErrorKind::InvalidData)
        );
        for cut in [1, 511, 513, 600] {
            let err = entries(&good[..cut]).err().map(|e| e.kind());
            assert_eq!(err, Some(io::ErrorKind::UnexpectedEof), "cut {cut}");
        }
        // A long name claiming 1 GiB is refused before anything is allocated.
        let mut huge = [0u8; 512];
        huge[..9].copy_from_slice(b"././@Long");
        huge[124..135].copy_from_slice(b"10000000000");
        huge[156] = b'L';
        huge[148..156].copy_from_slice(b"        ");
        let sum: u32 = huge.iter().map(|b| u32::from(*b)).sum();
        huge[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let err = entries(&huge).expect_err("refused");
        assert!(err.to_string().contains("long name"), "{err}");
        for records in [&b"x"[..], b"5 a=b", b"99 a=b\n", b"3 =\n", b"6 ab\n\n"] {
            assert!(pax_records(records).is_err(), "{records:?}");
        }
        for seed in 0..200u64 {
            fastrand::seed(seed);
            let mut bytes = good.clone();
            for _ in 0..8 {
                let i = fastrand::usize(..bytes.len());
                bytes[i] = fastrand::u8(..);
            }
            let _ = entries(&bytes);
        }
    }
}
