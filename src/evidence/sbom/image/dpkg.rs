//! dpkg databases: `var/lib/dpkg/status` (deb822 stanzas, installed ones kept) and distroless
//! `var/lib/dpkg/status.d/<pkg>` (one package each, written by `dpkg-deb --field`, with no
//! `Status:` line).

/// An installed Debian binary package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub architecture: Option<String>,
    /// The source package and its version (the binary version when `Source:` names none).
    pub source: String,
    pub source_version: String,
}

/// Reads deb822 stanzas. With `require_installed`, only stanzas whose `Status:` ends in
/// `installed` count (the status file also lists removed packages whose config files remain);
/// distroless files have no `Status:` and are read with it off. Lines that are not fields and
/// stanzas without a name or version are skipped, never fatal.
pub fn parse(text: &str, require_installed: bool) -> Vec<DebPackage> {
    let mut out = Vec::new();
    let mut fields: Vec<(&str, &str)> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if let Some(p) = stanza(&fields, require_installed) {
                out.push(p);
            }
            fields.clear();
            continue;
        }
        if line.starts_with([' ', '\t']) {
            continue; // a continuation line (descriptions, conffiles)
        }
        if let Some((key, value)) = line.split_once(':') {
            fields.push((key.trim(), value.trim()));
        }
    }
    out
}

fn stanza(fields: &[(&str, &str)], require_installed: bool) -> Option<DebPackage> {
    let get = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| *v)
            .filter(|v| !v.is_empty())
    };
    let name = get("Package")?;
    let version = get("Version")?;
    if require_installed && get("Status")?.split_whitespace().last() != Some("installed") {
        return None;
    }
    // `Source: bash (5.2.15-2)` names a source version that differs from the binary's (binNMU).
    let (source, source_version) = match get("Source") {
        Some(s) => match s.split_once('(') {
            Some((n, v)) => (n.trim(), v.trim_end_matches(')').trim()),
            None => (s, version),
        },
        None => (name, version),
    };
    let source = if source.is_empty() { name } else { source };
    let source_version = if source_version.is_empty() {
        version
    } else {
        source_version
    };
    Some(DebPackage {
        name: name.to_owned(),
        version: version.to_owned(),
        architecture: get("Architecture").map(str::to_owned),
        source: source.to_owned(),
        source_version: source_version.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: bash\nStatus: install ok installed\nArchitecture: amd64\n\
Source: bash (5.2.15-2)\nVersion: 5.2.15-2+b8\nDescription: GNU shell\n more text\n .\n\n\
Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n\n\
Package: libattr1\nStatus: install ok installed\nArchitecture: amd64\nSource: attr\n\
Version: 1:2.5.1-4\n";

    #[test]
    fn installed_packages_with_source_versions() {
        let got = parse(STATUS, true);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name, "bash");
        assert_eq!(got[0].version, "5.2.15-2+b8");
        assert_eq!(got[0].source, "bash");
        assert_eq!(got[0].source_version, "5.2.15-2");
        assert_eq!(got[1].name, "libattr1");
        assert_eq!(got[1].version, "1:2.5.1-4");
        assert_eq!(got[1].source, "attr");
        assert_eq!(got[1].source_version, "1:2.5.1-4");
    }

    #[test]
    fn distroless_stanza_without_status_counts() {
        let text = "Package: libssl3\nVersion: 3.0.15-1~deb12u1\nArchitecture: amd64\n";
        assert_eq!(parse(text, true), vec![]);
        let got = parse(text, false);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].architecture.as_deref(), Some("amd64"));
    }

    #[test]
    fn malformed_input_is_skipped_not_fatal() {
        for text in [
            "",
            "\n\n\n",
            "no colon here\n",
            "Package:\nVersion:\n",
            "Package: x\n",
            "Version: 1\n",
            ": :\n::::\n",
            "Package: x\nVersion: 1\nSource: (\n",
            "Package: x\nVersion: 1\nSource: )(\n",
            "\u{0}\u{ffff}Package: \u{1F600}\n",
        ] {
            let got = parse(text, false);
            assert!(
                got.iter()
                    .all(|p| !p.name.is_empty() && !p.version.is_empty())
            );
        }
        let got = parse("Package: x\nVersion: 1\nSource: (\n", false);
        assert_eq!(got[0].source, "x");
        assert_eq!(got[0].source_version, "1");
    }
}
