//! Python distributions installed in an image, wherever they sit (`site-packages`,
//! `dist-packages`, a `pip install --target` folder): a wheel's `*.dist-info/METADATA`, an
//! egg's `*.egg-info/PKG-INFO` or the single-file `*.egg-info` older installers wrote. Only
//! the core metadata headers `Name` and `Version` are read (the description after them is not).

use std::io::{self, Read};

/// The most of a metadata file read: the headers come first, and no real header block comes
/// near this size; a description after them may be long and is never needed.
pub(crate) const MAX_HEADER_BYTES: u64 = 256 << 10;

/// One installed distribution, named as its metadata names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PythonPackage {
    pub name: String,
    pub version: String,
}

/// Whether `path` (cleaned, no leading `/`) is a metadata file: syft's globs
/// `**/*dist-info/METADATA`, `**/*egg-info/PKG-INFO` (either case) and `**/*.egg-info`.
pub(crate) fn is_metadata(path: &str) -> bool {
    let (dir, name) = match path.rsplit_once('/') {
        Some((dir, name)) => (dir.rsplit('/').next().unwrap_or(dir), name),
        None => ("", path),
    };
    match name {
        "METADATA" => dir.ends_with("dist-info") || dir.ends_with("DIST-INFO"),
        "PKG-INFO" => dir.ends_with("egg-info") || dir.ends_with("EGG-INFO"),
        _ => name.ends_with(".egg-info") && name.len() > ".egg-info".len(),
    }
}

/// Reads the headers of a metadata file from `entry`, at most [`MAX_HEADER_BYTES`].
pub(crate) fn read(entry: &mut impl Read) -> io::Result<Option<PythonPackage>> {
    let mut bytes = Vec::new();
    entry.take(MAX_HEADER_BYTES).read_to_end(&mut bytes)?;
    Ok(parse(&String::from_utf8_lossy(&bytes)))
}

/// The `Name` and `Version` headers of core metadata (RFC 822 style: `Key: value` lines up to
/// the first blank line, continuation lines indented). `None` when either is missing or empty,
/// and for `Python` itself (the interpreter's own egg-info, which syft skips too).
pub(crate) fn parse(text: &str) -> Option<PythonPackage> {
    let mut name = None;
    let mut version = None;
    let mut started = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if started {
                break;
            }
            continue;
        }
        started = true;
        // A continuation of the previous header (a long Description, a License text).
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "name" if name.is_none() => name = Some(value.to_owned()),
            "version" if version.is_none() => version = Some(value.to_owned()),
            _ => {}
        }
    }
    let name = name.filter(|n| !n.is_empty() && n != "Python")?;
    let version = version.filter(|v| !v.is_empty())?;
    Some(PythonPackage { name, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_paths_are_recognised() {
        let yes = [
            "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
            "app/site/requests-2.31.0.dist-info/METADATA",
            "x.dist-info/METADATA",
            "opt/lib/FOO-1.0.DIST-INFO/METADATA",
            "usr/lib/python2.7/site-packages/foo-1.0-py2.7.egg-info/PKG-INFO",
            "usr/lib/python2.7/dist-packages/Python-2.7.egg-info",
            "usr/lib/python3/dist-packages/chardet-5.1.0.egg-info",
        ];
        let no = [
            "usr/lib/python3/dist-packages/six-1.16.0.dist-info/RECORD",
            "usr/lib/python3/METADATA",
            "METADATA",
            "a/foo.egg-info/top_level.txt",
            ".egg-info",
            "a/.egg-info",
            "a/PKG-INFO",
        ];
        for p in yes {
            assert!(is_metadata(p), "{p}");
        }
        for p in no {
            assert!(!is_metadata(p), "{p}");
        }
    }

    #[test]
    fn wheel_metadata_headers() {
        let text = "Metadata-Version: 2.1\r\nName: typing_extensions\r\nVersion: 4.10.0\r\n\
Summary: x\r\nLicense: line one\r\n        Version: 9.9.9\r\n\r\nName: not-a-header\n";
        assert_eq!(
            parse(text),
            Some(PythonPackage {
                name: "typing_extensions".to_owned(),
                version: "4.10.0".to_owned()
            })
        );
    }

    #[test]
    fn egg_pkg_info_with_indented_description() {
        // Metadata 1.x puts the description in a header, its lines indented by eight spaces.
        let text = "\nMetadata-Version: 1.1\nName: six\nVersion: 1.16.0\nDescription: six\n        \n        Version: 0.0.1\n";
        assert_eq!(
            parse(text).map(|p| (p.name, p.version)),
            Some(("six".to_owned(), "1.16.0".to_owned()))
        );
    }

    #[test]
    fn malformed_metadata_gives_nothing_never_a_panic() {
        for text in [
            "",
            "\n\n\n",
            "Name: only-a-name\n",
            "Version: 1.0\n",
            "Name:\nVersion: 1\n",
            "Name: x\nVersion:   \n",
            "Name: Python\nVersion: 2.7.18\n",
            // The headers end at the blank line: a Version after it is description text.
            "Name: x\n\nVersion: 1\n",
            "no colon at all\nstill none\n",
            ":::\n:\n",
            "\u{feff}\u{0}Name\u{0}: x",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
        for seed in 0..200u64 {
            fastrand::seed(seed);
            let bytes: Vec<u8> = (0..fastrand::usize(0..400))
                .map(|_| fastrand::choice(b"Name:Version \n\r\t\x00\xff1.x".iter()).copied())
                .map(|b| b.unwrap_or(b'x'))
                .collect();
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn reads_are_bounded() {
        // Headers past the bound are never seen; the read stops there.
        let mut text = "Name: big\n".to_owned();
        text.push_str(&"X-Padding: y\n".repeat((MAX_HEADER_BYTES as usize) / 12 + 10));
        text.push_str("Version: 1\n");
        assert_eq!(read(&mut text.as_bytes()).expect("reads"), None);
        let small = "Name: small\nVersion: 2\n";
        assert_eq!(
            read(&mut small.as_bytes())
                .expect("reads")
                .map(|p| p.version),
            Some("2".to_owned())
        );
    }

    /// Through the layer walk and the BOM: each package says where it was found, and a
    /// whiteout or an opaque directory in an upper layer removes it like any other kind.
    #[test]
    fn layers_locate_and_whiteouts_remove_language_packages() {
        use super::super::*;
        fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
            let mut b = tar::Builder::new(Vec::new());
            for (path, data) in entries {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, path, *data).expect("append");
            }
            b.into_inner().expect("tar")
        }
        let site = "usr/lib/python3/site-packages";
        let six = format!("{site}/six-1.16.0.dist-info/METADATA");
        let req = format!("{site}/requests-2.31.0.dist-info/METADATA");
        let lower = tar_of(&[
            (six.as_str(), b"Name: six\nVersion: 1.16.0\n"),
            (req.as_str(), b"Name: requests\nVersion: 2.31.0\n"),
            (
                "app/node_modules/@types/node/package.json",
                br#"{"name":"@types/node","version":"20.1.0"}"#,
            ),
            (
                "app/node_modules/is-number/package.json",
                br#"{"name":"is-number","version":"7.0.0"}"#,
            ),
            (
                "app/node_modules/is-number/lib/package.json",
                br#"{"type":"module"}"#,
            ),
        ]);
        let six_wh = format!("{site}/.wh.six-1.16.0.dist-info");
        let upper = tar_of(&[
            (six_wh.as_str(), b""),
            ("app/node_modules/@types/.wh..wh..opq", b""),
        ]);
        let mut catalog = Catalog::default();
        let mut digests = Vec::new();
        for (i, layer) in [lower, upper].iter().enumerate() {
            let digest = Digest::of(format!("layer{i}").as_bytes());
            let changes = walk_layer(&mut layer.as_slice(), &digest, &catalog.occupied())
                .expect("layer reads");
            catalog.apply(&digest, changes);
            digests.push(digest);
        }
        let image = ImageRead {
            platform: None,
            manifest: Digest::of(b"m"),
            catalog,
        };
        let options = ImageSbomOptions {
            spec_version: SpecVersion::V1_6,
            platform: PlatformChoice::All,
            timestamp: crate::evidence::attest::Timestamp::from_unix(0),
            serial_number: None,
        };
        let bom = build_bom("img", &Digest::of(b"m"), &[image], &options);
        let got: Vec<(String, Vec<String>)> = bom
            .components
            .iter()
            .map(|c| {
                (
                    c.purl.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                    c.properties.iter().map(|p| p.value.clone()).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "pkg:npm/is-number@7.0.0".to_owned(),
                    vec![
                        digests[0].to_string(),
                        "/app/node_modules/is-number/package.json".to_owned()
                    ]
                ),
                (
                    "pkg:pypi/requests@2.31.0".to_owned(),
                    vec![digests[0].to_string(), format!("/{req}")]
                ),
            ]
        );
    }
}
