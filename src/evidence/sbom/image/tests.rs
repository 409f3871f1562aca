use super::*;

fn tar_of(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, mode) in entries {
        let mut h = tar::Header::new_gnu();
        if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
        } else {
            h.set_size(data.len() as u64);
        }
        h.set_mode(*mode);
        h.set_cksum();
        b.append_data(&mut h, path, *data).expect("append");
    }
    b.into_inner().expect("tar")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

const STATUS: &[u8] = b"Package: a\nStatus: install ok installed\nVersion: 1\n\n";
const APK: &[u8] = b"P:musl\nV:1.2.4-r2\nA:x86_64\n";

fn apply_layers(layers: &[Vec<u8>]) -> Catalog {
    let mut catalog = Catalog::default();
    for (i, layer) in layers.iter().enumerate() {
        let digest = Digest::of(format!("layer{i}").as_bytes());
        let changes =
            walk_layer(&mut layer.as_slice(), &digest, &catalog.occupied()).expect("layer reads");
        catalog.apply(&digest, changes);
    }
    catalog
}

#[test]
fn whiteout_hides_lower_database() {
    let lower = gzip(&tar_of(&[
        ("var/lib/dpkg/status", STATUS, 0o644),
        ("lib/apk/db/installed", APK, 0o644),
    ]));
    let upper = tar_of(&[("./var/lib/dpkg/.wh.status", b"", 0o644)]);
    let catalog = apply_layers(&[lower, upper]);
    let paths: Vec<&String> = catalog.paths.keys().collect();
    assert_eq!(paths, vec!["lib/apk/db/installed"]);
}

#[test]
fn whiteout_does_not_hide_its_own_layer() {
    let layer = tar_of(&[
        ("var/lib/dpkg/status", STATUS, 0o644),
        ("var/lib/dpkg/.wh.status", b"", 0o644),
    ]);
    let catalog = apply_layers(&[layer]);
    assert!(catalog.paths.contains_key("var/lib/dpkg/status"));
}

#[test]
fn opaque_directory_hides_lower_children_wherever_it_sits() {
    let lower = tar_of(&[
        (
            "var/lib/dpkg/status.d/a",
            b"Package: a\nVersion: 1\n",
            0o644,
        ),
        (
            "var/lib/dpkg/status.d/b",
            b"Package: b\nVersion: 1\n",
            0o644,
        ),
    ]);
    // The marker comes after a new child, and still only hides the lower ones.
    let upper = tar_of(&[
        (
            "var/lib/dpkg/status.d/c",
            b"Package: c\nVersion: 1\n",
            0o644,
        ),
        ("var/lib/dpkg/status.d/.wh..wh..opq", b"", 0o644),
    ]);
    let catalog = apply_layers(&[lower, upper]);
    let paths: Vec<&String> = catalog.paths.keys().collect();
    assert_eq!(paths, vec!["var/lib/dpkg/status.d/c"]);
}

#[test]
fn upper_file_replaces_lower_result_and_subtree() {
    let lower = tar_of(&[
        ("var/lib/dpkg/status", STATUS, 0o644),
        ("lib/apk/db/installed", APK, 0o644),
    ]);
    // `lib/apk` becomes a file: the database under it is gone; the status file is rewritten.
    let upper = tar_of(&[
        ("lib/apk", b"not a dir", 0o644),
        (
            "var/lib/dpkg/status",
            b"Package: b\nStatus: install ok installed\nVersion: 2\n",
            0o644,
        ),
    ]);
    let catalog = apply_layers(&[lower, upper]);
    let paths: Vec<&String> = catalog.paths.keys().collect();
    assert_eq!(paths, vec!["var/lib/dpkg/status"]);
    match &catalog.paths["var/lib/dpkg/status"].found {
        Found::Deb(p) => assert_eq!(p[0].name, "b"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn bare_whiteout_is_an_error() {
    let layer = tar_of(&[("etc/.wh.", b"", 0o644)]);
    let digest = Digest::of(b"x");
    let err = walk_layer(&mut layer.as_slice(), &digest, &HashSet::new()).err();
    assert!(
        matches!(&err, Some(ImageError::InvalidWhiteout { path, .. }) if path == "etc/.wh."),
        "{err:?}"
    );
}

#[test]
fn malformed_layers_are_errors_not_panics() {
    let digest = Digest::of(b"x");
    let mut truncated = gzip(&tar_of(&[("var/lib/dpkg/status", STATUS, 0o644)]));
    truncated.truncate(truncated.len() / 2);
    let mut bad_header = tar_of(&[("var/lib/dpkg/status", STATUS, 0o644)]);
    bad_header[148..156].copy_from_slice(b"garbage!");
    for bytes in [
        truncated,
        bad_header,
        vec![0x1f, 0x8b, 0, 0, 1, 2, 3],
        vec![0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff],
    ] {
        let err = walk_layer(&mut bytes.as_slice(), &digest, &HashSet::new()).err();
        assert!(matches!(err, Some(ImageError::LayerTar { .. })), "{err:?}");
    }
    // Random bytes are not a tar either, or an empty one: never a panic.
    for seed in 0..50u64 {
        fastrand::seed(seed);
        let bytes: Vec<u8> = (0..fastrand::usize(0..3000))
            .map(|_| fastrand::u8(..))
            .collect();
        let _ = walk_layer(&mut bytes.as_slice(), &digest, &HashSet::new());
    }
}

#[test]
fn paths_are_cleaned() {
    assert_eq!(
        clean_path("./var//lib/./dpkg/status"),
        "var/lib/dpkg/status"
    );
    assert_eq!(clean_path("/../../etc/os-release"), "etc/os-release");
    assert_eq!(clean_path("usr/lib/"), "usr/lib");
}

#[test]
fn os_release_and_purls() {
    let os = parse_os_release("ID=debian\nVERSION_ID=\"12\"\n# c=1\nbad line\n");
    assert_eq!(os.get("ID").map(String::as_str), Some("debian"));
    assert_eq!(os.get("VERSION_ID").map(String::as_str), Some("12"));
    let purl = os_purl(
        "deb",
        "debian",
        "libattr1",
        "1:2.5.1-4+b1",
        &[("distro", Some("debian-12")), ("arch", Some("amd64"))],
    );
    assert_eq!(
        purl.map(|p| p.to_string()).as_deref(),
        Some("pkg:deb/debian/libattr1@1:2.5.1-4%2Bb1?arch=amd64&distro=debian-12")
    );
}

#[test]
fn platform_choice_parses() {
    assert!(matches!(
        "linux/arm64/v8".parse::<PlatformChoice>(),
        Ok(PlatformChoice::One { variant: Some(v), .. }) if v == "v8"
    ));
    assert!(matches!(
        "linux".parse::<PlatformChoice>(),
        Err(ImageError::BadPlatform { .. })
    ));
}

#[test]
fn zstd_layers_of_several_frames_are_read_whole() {
    let first = tar_of(&[("var/lib/dpkg/status", STATUS, 0o644)]);
    // Split the tar across two frames, inside the first entry's data.
    let (a, b) = first.split_at(700);
    let mut both =
        ruzstd::encoding::compress_to_vec(a, ruzstd::encoding::CompressionLevel::Fastest);
    both.extend(ruzstd::encoding::compress_to_vec(
        b,
        ruzstd::encoding::CompressionLevel::Fastest,
    ));
    let catalog = apply_layers(&[both]);
    assert!(catalog.paths.contains_key("var/lib/dpkg/status"));
}

#[test]
fn merge_keeps_source_components_and_adds_image_locations() {
    let options = ImageSbomOptions {
        spec_version: SpecVersion::V1_6,
        platform: PlatformChoice::All,
        timestamp: crate::evidence::attest::Timestamp::from_unix(0),
        serial_number: None,
    };
    let mut catalog = Catalog::default();
    let layer = Digest::of(b"layer");
    catalog.paths.insert(
        "var/lib/dpkg/status".to_owned(),
        Located {
            layer: layer.clone(),
            found: Found::Deb(dpkg::parse(
                "Package: a\nStatus: install ok installed\nVersion: 1\n",
                true,
            )),
        },
    );
    let image = ImageRead {
        platform: None,
        manifest: Digest::of(b"m"),
        catalog,
    };
    let image_bom = build_bom("img", &Digest::of(b"m"), &[image], &options);
    let deb_ref = image_bom.components[0].bom_ref.clone().expect("bom-ref");
    let mut source = image_bom.clone();
    source.components[0].properties.clear();
    source.metadata.properties.clear();
    let mut extra = Component::new(ComponentType::Library, "serde");
    extra.bom_ref = Some("pkg:cargo/serde@1.0.0".to_owned());
    source.components.push(extra);
    merge_into(&mut source, image_bom);
    let refs: Vec<_> = source
        .components
        .iter()
        .filter_map(|c| c.bom_ref.clone())
        .collect();
    assert_eq!(refs, vec!["pkg:cargo/serde@1.0.0".to_owned(), deb_ref]);
    let deb = &source.components[1];
    assert!(
        deb.properties
            .contains(&prop("custody:layer:digest", layer.to_string()))
    );
    assert!(
        deb.properties
            .contains(&prop("custody:location:path", "/var/lib/dpkg/status"))
    );
    assert!(
        source
            .metadata
            .properties
            .iter()
            .any(|p| p.name == "custody:image:digest")
    );
}
