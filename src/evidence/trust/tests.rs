use super::*;

fn now() -> jiff::Timestamp {
    "2026-12-01T00:00:00Z".parse().unwrap()
}

fn options(cache: &Path, network: Network) -> Options {
    Options {
        cache: cache.to_path_buf(),
        network,
        refresh: Refresh::WhenStale,
        now: now(),
        max_cache_age: None,
    }
}

#[test]
fn the_embedded_bootstrap_is_public_good_root_v16() {
    let set = sigstore_tuf::TrustedMetadataSet::from_root(PUBLIC_GOOD_TUF_ROOT).unwrap();
    assert_eq!(set.root().version, 16);
    assert_eq!(set.root().roles["root"].threshold, 3);
}

#[test]
fn offline_without_a_cache_uses_the_embedded_public_good_root() {
    let dir = tempfile::tempdir().unwrap();
    let got = obtain(
        &Mirror::public_good(),
        &options(dir.path(), Network::Offline),
    )
    .unwrap();
    assert_eq!(got.origin.source, RootSource::Embedded);
    assert_eq!(got.json, PUBLIC_GOOD_TRUSTED_ROOT.as_bytes());
}

#[test]
fn the_embedded_root_is_refused_once_its_tuf_root_expired() {
    let err = embedded("2027-05-01T00:00:00Z".parse().unwrap()).unwrap_err();
    assert!(matches!(err, TrustError::EmbeddedExpired { .. }), "{err:?}");
}

#[test]
fn a_private_mirror_never_falls_back_to_public_good() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = Mirror::new("http://127.0.0.1:9/", PUBLIC_GOOD_TUF_ROOT.to_vec());
    let err = obtain(&mirror, &options(dir.path(), Network::Offline)).unwrap_err();
    assert!(matches!(err, TrustError::NoCache { .. }), "{err:?}");
}

#[test]
fn a_private_mirror_needs_its_initial_root() {
    let dir = tempfile::tempdir().unwrap();
    let err = Mirror::from_cache(dir.path(), "http://127.0.0.1:9").unwrap_err();
    assert!(matches!(err, TrustError::NoInitialRoot { .. }), "{err:?}");
    let mirror = Mirror::new("http://127.0.0.1:9", b"{}".to_vec());
    mirror.remember(dir.path()).unwrap();
    let back = Mirror::from_cache(dir.path(), "http://127.0.0.1:9/").unwrap();
    assert_eq!(back.initial_root, b"{}");
}

#[test]
fn mirrors_have_their_own_cache_folders() {
    let cache = Path::new("/c");
    assert_eq!(
        mirror_dir(cache, "https://a.example/"),
        mirror_dir(cache, "https://a.example")
    );
    assert_ne!(
        mirror_dir(cache, "https://a.example"),
        mirror_dir(cache, "https://b.example")
    );
}

#[test]
fn the_cache_folder_follows_xdg() {
    let env = |k: &str| match k {
        "XDG_CACHE_HOME" => Some("/x".to_string()),
        "HOME" => Some("/h".to_string()),
        _ => None,
    };
    assert_eq!(default_cache(env), Some(PathBuf::from("/x/custody/tuf")));
    let relative = |k: &str| match k {
        "XDG_CACHE_HOME" => Some("rel".to_string()),
        "HOME" => Some("/h".to_string()),
        _ => None,
    };
    assert_eq!(
        default_cache(relative),
        Some(PathBuf::from("/h/.cache/custody/tuf"))
    );
    assert_eq!(default_cache(|_| None), None);
}

#[test]
fn a_mangled_state_file_counts_as_no_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mirror_cache = mirror_dir(dir.path(), PUBLIC_GOOD_MIRROR);
    std::fs::create_dir_all(&mirror_cache).unwrap();
    std::fs::write(mirror_cache.join(STATE_FILE), b"{\"mirror\":").unwrap();
    let got = obtain(
        &Mirror::public_good(),
        &options(dir.path(), Network::Offline),
    )
    .unwrap();
    assert_eq!(got.origin.source, RootSource::Embedded);
}

#[test]
fn a_pending_future_is_an_error_not_a_hang() {
    let err = block_on(async {
        std::future::pending::<()>().await;
        Ok(())
    })
    .unwrap_err();
    assert!(
        matches!(err, sigstore_tuf::Error::Transport { .. }),
        "{err:?}"
    );
}

#[test]
fn authorities_list_every_ca_log_and_tsa_with_its_window() {
    let list = authorities(PUBLIC_GOOD_TRUSTED_ROOT.as_bytes());
    let kinds = |k: &str| list.iter().filter(|a| a.kind == k).count();
    assert_eq!(kinds("certificate-authority"), 2);
    assert_eq!(kinds("transparency-log"), 2);
    assert_eq!(kinds("ct-log"), 2);
    assert_eq!(kinds("timestamp-authority"), 1);
    let rekor = list
        .iter()
        .find(|a| a.name == "https://rekor.sigstore.dev")
        .unwrap();
    assert_eq!(rekor.valid_from.as_deref(), Some("2021-01-12T11:53:27Z"));
    assert!(authorities(b"not json").is_empty());
}

#[test]
fn the_default_mirror_file_is_bounded_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(default_mirror_url(dir.path()), PUBLIC_GOOD_MIRROR);
    set_default_mirror(dir.path(), "http://127.0.0.1:9").unwrap();
    assert_eq!(default_mirror_url(dir.path()), "http://127.0.0.1:9");
    std::fs::write(dir.path().join("default-mirror"), "file:///etc").unwrap();
    assert_eq!(default_mirror_url(dir.path()), PUBLIC_GOOD_MIRROR);
    std::fs::write(dir.path().join("default-mirror"), "https://a".repeat(2000)).unwrap();
    assert_eq!(default_mirror_url(dir.path()), PUBLIC_GOOD_MIRROR);
    set_default_mirror(dir.path(), PUBLIC_GOOD_MIRROR).unwrap();
    assert!(!dir.path().join("default-mirror").exists());
}
