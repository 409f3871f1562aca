//! `-` as a path: standard input or output where a command can use it, and a usage error
//! where it cannot (a key pair, a folder of pulled files), instead of a file named `-`.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, bail};

/// Whether a path argument means standard input or output.
pub fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Writes `bytes` to `path`, or to standard output for `-`.
pub fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if is_dash(path) {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(bytes)
            .and_then(|()| out.flush())
            .context("could not write to standard output");
    }
    std::fs::write(path, bytes).with_context(|| format!("could not write {}", path.display()))
}

/// Reads at most `limit` bytes from `path`, or from standard input for `-`; more is an error
/// naming the input.
pub fn read(path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
    let what = name(path);
    let mut bytes = Vec::new();
    if is_dash(path) {
        std::io::stdin()
            .lock()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .context("could not read standard input")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
            .with_context(|| format!("cannot read {what}"))?;
    }
    if bytes.len() as u64 > limit {
        bail!("{what} is more than the {limit} bytes allowed");
    }
    Ok(bytes)
}

/// How a path argument is named in messages.
pub fn name(path: &Path) -> String {
    if is_dash(path) {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Refuses `-` for an argument that cannot be a stream; `why` says what it must be instead.
pub fn refuse_dash(path: &Path, flag: &str, why: &str) -> anyhow::Result<()> {
    if is_dash(path) {
        bail!("{flag} cannot be `-` (standard input or output): {why}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_is_only_a_lone_dash() {
        assert!(is_dash(Path::new("-")));
        for other in ["./-", "--", "-x", "", "a-"] {
            assert!(!is_dash(Path::new(other)), "{other}");
        }
        assert_eq!(name(Path::new("-")), "standard input");
    }

    #[test]
    fn reads_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read(&path, 5).unwrap(), b"12345");
        let err = read(&path, 4).unwrap_err().to_string();
        assert!(err.contains("more than the 4 bytes allowed"), "{err}");
        let err = refuse_dash(Path::new("-"), "--output-key-prefix", "keys are files")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "--output-key-prefix cannot be `-` (standard input or output): keys are files"
        );
        assert!(refuse_dash(Path::new("./-"), "--x", "y").is_ok());
    }
}
