//! apk's installed database, `lib/apk/db/installed`: records separated by blank lines, one
//! `X:value` field per line (`P` name, `V` version, `A` arch, `o` origin, the source package).

/// An installed Alpine package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApkPackage {
    pub name: String,
    pub version: String,
    pub architecture: Option<String>,
    /// The origin (source) package; the name when the record has none.
    pub origin: String,
}

/// Reads every record with a name and a version; other lines and incomplete records are skipped.
pub fn parse(text: &str) -> Vec<ApkPackage> {
    let mut out = Vec::new();
    let mut current: [Option<&str>; 4] = [None; 4];
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if let [Some(name), Some(version), arch, origin] = current {
                out.push(ApkPackage {
                    name: name.to_owned(),
                    version: version.to_owned(),
                    architecture: arch.map(str::to_owned),
                    origin: origin.unwrap_or(name).to_owned(),
                });
            }
            current = [None; 4];
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let slot = match key {
            "P" => 0,
            "V" => 1,
            "A" => 2,
            "o" => 3,
            _ => continue,
        };
        current[slot] = Some(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_with_origin() {
        let text = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\no:musl\nF:lib\nR:ld-musl.so\n\n\
P:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\n";
        let got = parse(text);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].name, "libcrypto3");
        assert_eq!(got[1].origin, "openssl");
        assert_eq!(got[1].version, "3.1.4-r5");
    }

    #[test]
    fn malformed_records_are_skipped() {
        for text in [
            "",
            "P:\nV:\n",
            "P:x\n",
            "garbage\n\n\n",
            "V:1\nA:x\n",
            ":::\n",
        ] {
            assert_eq!(parse(text), vec![], "{text:?}");
        }
        let got = parse("P:x\nV:1\n");
        assert_eq!(got[0].origin, "x");
    }
}
