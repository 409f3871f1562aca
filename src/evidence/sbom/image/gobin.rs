//! Go build info read from a binary as it streams past: the `\xff Go buildinf:` header at a
//! 16-byte aligned offset (the start of `.go.buildinfo`), then, for Go 1.18 and later (flag
//! bit 2), the Go version and the module info inline as length-prefixed strings
//! (golang/go `src/debug/buildinfo/buildinfo.go`). Older binaries store pointers and are not
//! read.

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER: usize = 32;
const FLAG_INLINE: u8 = 0x2;
const MAX_VERSION: u64 = 256;
/// Module info is a few KiB even for large programs.
const MAX_MODINFO: u64 = 4 << 20;

/// One module as the build info records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub path: String,
    pub version: String,
    pub sum: Option<String>,
}

/// What a Go binary says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    pub go_version: String,
    /// The main package path.
    pub path: Option<String>,
    pub main: Option<Module>,
    /// Dependencies, replacements applied (the replacement is what was built).
    pub deps: Vec<Module>,
}

enum State {
    Searching,
    Capturing(Vec<u8>),
    Done(Option<BuildInfo>),
}

/// Fed a file's bytes in order; memory stays bounded by [`MAX_MODINFO`].
pub struct Scanner {
    /// Bytes not yet searched, starting at a 16-byte aligned file offset.
    pending: Vec<u8>,
    state: State,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner {
            pending: Vec::new(),
            state: State::Searching,
        }
    }

    /// True once the scanner needs no more bytes.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        match &mut self.state {
            State::Done(_) => return,
            State::Capturing(buf) => buf.extend_from_slice(bytes),
            State::Searching => self.pending.extend_from_slice(bytes),
        }
        self.run(false);
    }

    /// Searches and parses what has arrived. A loop, not recursion: a file full of
    /// look-alike headers must not grow the stack.
    fn run(&mut self, at_end: bool) {
        loop {
            match &mut self.state {
                State::Done(_) => return,
                State::Searching => {
                    let mut at = 0;
                    let mut found = false;
                    while at + MAGIC.len() <= self.pending.len() {
                        if self.pending[at..at + MAGIC.len()] == MAGIC[..] {
                            found = true;
                            break;
                        }
                        // Advance only over whole 16-byte blocks so `pending` stays aligned.
                        if at + 16 > self.pending.len() {
                            break;
                        }
                        at += 16;
                    }
                    if !found {
                        self.pending.drain(..at);
                        if at_end {
                            self.state = State::Done(None);
                        }
                        return;
                    }
                    let captured = self.pending.split_off(at);
                    self.pending.clear();
                    self.state = State::Capturing(captured);
                }
                State::Capturing(buf) => match parse_blob(buf) {
                    Parsed::Complete(info) => {
                        self.state = State::Done(Some(*info));
                        return;
                    }
                    Parsed::Incomplete
                        if !at_end && (buf.len() as u64) < HEADER as u64 + MAX_MODINFO + 32 =>
                    {
                        return;
                    }
                    Parsed::Incomplete | Parsed::Invalid => {
                        // A look-alike (the string in `debug/buildinfo` itself): search past it.
                        self.pending = buf.split_off(16.min(buf.len()));
                        self.state = State::Searching;
                    }
                },
            }
        }
    }

    /// The build info, if the bytes held a readable one.
    pub fn finish(mut self) -> Option<BuildInfo> {
        self.run(true);
        match self.state {
            State::Done(info) => info,
            _ => None,
        }
    }
}

enum Parsed {
    Incomplete,
    Invalid,
    Complete(Box<BuildInfo>),
}

fn parse_blob(buf: &[u8]) -> Parsed {
    if buf.len() < HEADER {
        return Parsed::Incomplete;
    }
    let ptr_size = buf[14];
    let flags = buf[15];
    if !matches!(ptr_size, 4 | 8) || flags & FLAG_INLINE == 0 {
        return Parsed::Invalid;
    }
    let mut at = HEADER;
    let version = match read_string(buf, &mut at, MAX_VERSION) {
        Ok(v) => v,
        Err(p) => return p,
    };
    let modinfo = match read_string(buf, &mut at, MAX_MODINFO) {
        Ok(v) => v,
        Err(p) => return p,
    };
    let Ok(version) = std::str::from_utf8(version) else {
        return Parsed::Invalid;
    };
    if !(version.starts_with("go") || version.starts_with("devel")) {
        return Parsed::Invalid;
    }
    // The module info is framed by 16-byte sentinels (cmd/go's modload).
    let modinfo = if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        &modinfo[16..modinfo.len() - 16]
    } else {
        &[][..]
    };
    let mut info = parse_modinfo(&String::from_utf8_lossy(modinfo));
    info.go_version = version.to_owned();
    Parsed::Complete(Box::new(info))
}

fn read_string<'a>(buf: &'a [u8], at: &mut usize, max: u64) -> Result<&'a [u8], Parsed> {
    let mut len: u64 = 0;
    let mut shift = 0;
    loop {
        let Some(&b) = buf.get(*at) else {
            return Err(Parsed::Incomplete);
        };
        *at += 1;
        if shift > 63 {
            return Err(Parsed::Invalid);
        }
        len |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    if len > max {
        return Err(Parsed::Invalid);
    }
    let end = at.saturating_add(len as usize);
    let Some(s) = buf.get(*at..end) else {
        return Err(Parsed::Incomplete);
    };
    *at = end;
    Ok(s)
}

/// `path`, `mod`, `dep`, `=>` (replaces the line before) and `build` lines, tab-separated, as
/// `runtime/debug.ParseBuildInfo` reads them. Unknown or short lines are skipped.
pub fn parse_modinfo(text: &str) -> BuildInfo {
    let mut info = BuildInfo {
        go_version: String::new(),
        path: None,
        main: None,
        deps: Vec::new(),
    };
    let mut last_is_main = false;
    for line in text.lines() {
        let mut parts = line.split('\t');
        let kind = parts.next().unwrap_or_default();
        let fields: Vec<&str> = parts.collect();
        let module = || -> Option<Module> {
            let path = fields.first().filter(|p| !p.is_empty())?;
            Some(Module {
                path: (*path).to_owned(),
                version: fields.get(1).copied().unwrap_or_default().to_owned(),
                sum: fields
                    .get(2)
                    .filter(|s| !s.is_empty())
                    .map(|s| (*s).to_owned()),
            })
        };
        match kind {
            "path" => info.path = fields.first().map(|p| (*p).to_owned()),
            "mod" => {
                info.main = module();
                last_is_main = true;
            }
            "dep" => {
                if let Some(m) = module() {
                    info.deps.push(m);
                }
                last_is_main = false;
            }
            "=>" => {
                let Some(m) = module() else { continue };
                if last_is_main {
                    info.main = Some(m);
                } else if let Some(last) = info.deps.last_mut() {
                    *last = m;
                }
            }
            _ => {}
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &[u8] = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6";
    const END: &[u8] = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2";

    fn varint(mut n: usize, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    fn blob(version: &str, modinfo: &str) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(8);
        out.push(FLAG_INLINE);
        out.resize(HEADER, 0);
        varint(version.len(), &mut out);
        out.extend_from_slice(version.as_bytes());
        let mut framed = START.to_vec();
        framed.extend_from_slice(modinfo.as_bytes());
        framed.extend_from_slice(END);
        varint(framed.len(), &mut out);
        out.extend_from_slice(&framed);
        out
    }

    const MODINFO: &str = "path\texample.com/app\nmod\texample.com/app\t(devel)\t\n\
dep\tgolang.org/x/text\tv0.14.0\th1:abc=\n\
dep\texample.com/old\tv1.0.0\th1:old=\n=>\texample.com/new\tv1.2.0\th1:new=\n\
build\t-compiler=gc\n";

    fn scan(file: &[u8], chunk: usize) -> Option<BuildInfo> {
        let mut s = Scanner::new();
        for c in file.chunks(chunk.max(1)) {
            s.feed(c);
        }
        s.finish()
    }

    #[test]
    fn finds_aligned_blob_across_chunk_boundaries() {
        let mut file = vec![0u8; 4096];
        // A look-alike first, as in binaries that link debug/buildinfo.
        file[64..78].copy_from_slice(MAGIC);
        file.extend_from_slice(&blob("go1.22.1", MODINFO));
        file.extend_from_slice(&[0u8; 100]);
        for chunk in [1, 7, 16, 100, 5000] {
            let info = scan(&file, chunk).expect("build info");
            assert_eq!(info.go_version, "go1.22.1");
            assert_eq!(info.path.as_deref(), Some("example.com/app"));
            assert_eq!(
                info.main.as_ref().map(|m| m.version.as_str()),
                Some("(devel)")
            );
            assert_eq!(info.deps.len(), 2);
            assert_eq!(info.deps[1].path, "example.com/new");
            assert_eq!(info.deps[1].sum.as_deref(), Some("h1:new="));
        }
    }

    #[test]
    fn unaligned_or_malformed_blobs_are_not_read() {
        let mut unaligned = vec![0u8; 3];
        unaligned.extend_from_slice(&blob("go1.22.1", MODINFO));
        assert_eq!(scan(&unaligned, 64), None);
        // Truncated at every length: never a panic, never a made-up result.
        let full = blob("go1.22.1", MODINFO);
        for cut in 0..full.len() {
            assert_eq!(scan(&full[..cut], 5), None, "cut at {cut}");
        }
        let mut bad_ptr = full.clone();
        bad_ptr[14] = 3;
        assert_eq!(scan(&bad_ptr, 64), None);
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&[8, FLAG_INLINE]);
        huge.resize(HEADER, 0);
        huge.extend_from_slice(&[0xff; 12]);
        assert_eq!(scan(&huge, 64), None);
        assert_eq!(scan(&blob("notgo", MODINFO), 64), None);
    }

    #[test]
    fn modinfo_without_sentinels_gives_version_only() {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[8, FLAG_INLINE]);
        out.resize(HEADER, 0);
        varint(8, &mut out);
        out.extend_from_slice(b"go1.21.0");
        varint(0, &mut out);
        let info = scan(&out, 64).expect("build info");
        assert_eq!(info.go_version, "go1.21.0");
        assert_eq!(info.main, None);
    }

    #[test]
    fn modinfo_lines_malformed() {
        let info = parse_modinfo("=>\tx\tv1\nmod\nmod\t\t\ndep\ndep\t\nbuild\nnonsense\t\t\t\n");
        assert_eq!(info.main, None);
        assert!(info.deps.is_empty());
    }
}
