//! A registry that lies, truncates, fails and challenges: each misbehaviour is caught with an
//! error that names what was expected and what came.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use custody::foundation::digest::Digest;
use custody::foundation::oci::{
    self, Descriptor, ImageManifest, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST,
};
use custody::foundation::reference::Reference;
use custody::storage::store;

use crate::support::{self, HostileServer, Pace, Request, Response, run, stderr, stdout};

/// A one-file artifact as a registry would serve it.
struct Fixture {
    layer: Vec<u8>,
    layer_digest: Digest,
    manifest: Vec<u8>,
    digest: Digest,
}

fn fixture() -> Fixture {
    let layer = b"hello hostile world".to_vec();
    let mut d = Descriptor::of("text/plain", &layer);
    d.annotations
        .insert(oci::ANNOTATION_TITLE.into(), "hello.txt".into());
    let manifest = oci::to_bytes(&ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
        artifact_type: Some("application/x".into()),
        config: Descriptor::empty_config(),
        layers: vec![d.clone()],
        subject: None,
        annotations: BTreeMap::new(),
    });
    Fixture {
        layer_digest: d.digest,
        digest: Digest::of(&manifest),
        layer,
        manifest,
    }
}

fn manifest_response(bytes: &[u8], digest: &str) -> Response {
    Response::new(200)
        .header("Content-Type", MEDIA_TYPE_IMAGE_MANIFEST)
        .header("Docker-Content-Digest", digest)
        .body(bytes.to_vec())
}

/// Serves the fixture honestly, except where `twist` answers first.
fn server(
    f: Arc<Fixture>,
    twist: impl Fn(&Request, &Fixture) -> Option<Response> + Send + Sync + 'static,
) -> HostileServer {
    HostileServer::start(move |r| {
        if let Some(resp) = twist(r, &f) {
            return resp;
        }
        let p = r.path.as_str();
        if p == "/v2/" {
            return Response::new(200);
        }
        if p == "/v2/x/y/manifests/v1" || p == format!("/v2/x/y/manifests/{}", f.digest) {
            return manifest_response(&f.manifest, &f.digest.to_string());
        }
        if p == format!("/v2/x/y/blobs/{}", f.layer_digest) {
            return Response::new(200).body(f.layer.clone());
        }
        Response::new(404).body(r#"{"errors":[{"code":"NOT_FOUND","message":"no such thing"}]}"#)
    })
}

fn pull(server: &HostileServer, out: &std::path::Path) -> std::process::Output {
    run(&[
        "pull",
        &format!("{}/x/y:v1", server.host),
        "-o",
        out.to_str().unwrap(),
    ])
}

#[test]
fn wrong_bytes_for_a_digest_are_refused_and_not_written() {
    let f = Arc::new(fixture());
    let s = server(f.clone(), |r, f| {
        (r.path == format!("/v2/x/y/blobs/{}", f.layer_digest))
            .then(|| Response::new(200).body(b"HELLO HOSTILE WORLD".to_vec()))
    });
    let dir = support::tempdir();
    let out = dir.path().join("out");
    let o = pull(&s, &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(&format!("expected {}", f.layer_digest)), "{e}");
    assert!(e.contains("content digest is sha256:"), "{e}");
    assert!(!out.join("hello.txt").exists());
}

#[test]
fn truncated_body_is_resumed_with_range_or_refused() {
    let f = Arc::new(fixture());
    // Always truncated, Range ignored: refused after the first break.
    let s = server(f.clone(), |r, f| {
        (r.path == format!("/v2/x/y/blobs/{}", f.layer_digest)).then(|| Response {
            truncate_at: Some(5),
            ..Response::new(200).body(f.layer.clone())
        })
    });
    let dir = support::tempdir();
    let o = pull(&s, &dir.path().join("a"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot resume"), "{}", stderr(&o));
    assert!(!dir.path().join("a/hello.txt").exists());

    // Truncated once, then the rest served as 206 for the Range asked: the download resumes.
    let s = server(f.clone(), |r, f| {
        if r.path != format!("/v2/x/y/blobs/{}", f.layer_digest) {
            return None;
        }
        match r.header("range") {
            None => Some(Response {
                truncate_at: Some(5),
                ..Response::new(200).body(f.layer.clone())
            }),
            Some(range) => {
                let start: usize = range
                    .trim_start_matches("bytes=")
                    .trim_end_matches('-')
                    .parse()
                    .unwrap();
                Some(Response::new(206).body(f.layer[start..].to_vec()))
            }
        }
    });
    let o = pull(&s, &dir.path().join("b"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(dir.path().join("b/hello.txt")).unwrap(),
        f.layer
    );
    assert_eq!(s.count("GET", "/v2/x/y/blobs/"), 2);
}

#[test]
fn oversized_manifest_is_refused() {
    let f = Arc::new(fixture());
    let s = server(f, |r, _| {
        (r.path == "/v2/x/y/manifests/v1").then(|| {
            let mut big = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":""#.to_vec();
            big.extend(std::iter::repeat_n(b'a', 5 * 1024 * 1024));
            big.extend(br#""}}"#);
            Response::new(200).header("Content-Type", MEDIA_TYPE_IMAGE_MANIFEST).body(big)
        })
    });
    let o = run(&["resolve", &format!("{}/x/y:v1", s.host)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("larger than 4194304 bytes"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn lying_docker_content_digest_is_caught() {
    let f = Arc::new(fixture());
    let lie = Digest::of(b"something else");
    let lie_text = lie.to_string();
    let s = server(f.clone(), move |r, f| {
        (r.path == "/v2/x/y/manifests/v1").then(|| manifest_response(&f.manifest, &lie_text))
    });
    let o = run(&["resolve", &format!("{}/x/y:v1", s.host)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&lie.to_string()) && e.contains(&f.digest.to_string()),
        "{e}"
    );

    // Asked by digest, served other bytes: the digest asked for is the one that counts.
    let other = oci::to_bytes(&oci::ImageIndex::empty());
    let s = server(f.clone(), move |r, f| {
        (r.path == format!("/v2/x/y/manifests/{}", f.digest))
            .then(|| manifest_response(&other, &f.digest.to_string()))
    });
    let o = run(&["resolve", &format!("{}/x/y@{}", s.host, f.digest)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("expected {}", f.digest)),
        "{}",
        stderr(&o)
    );
}

#[test]
fn server_errors_are_retried_then_reported() {
    let f = Arc::new(fixture());
    let failures = Arc::new(AtomicUsize::new(0));
    let counter = failures.clone();
    let s = server(f.clone(), move |r, _| {
        (r.path == "/v2/x/y/manifests/v1" && counter.fetch_add(1, Ordering::SeqCst) < 2)
            .then(|| Response::new(503))
    });
    let o = run(&["resolve", &format!("{}/x/y:v1", s.host)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), f.digest.to_string());
    assert_eq!(s.count("GET", "/v2/x/y/manifests/v1"), 3);

    let s = server(f, |r, _| {
        (r.path == "/v2/x/y/manifests/v1").then(|| {
            Response::new(500).body(r#"{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}"#)
        })
    });
    let o = run(&["resolve", &format!("{}/x/y:v1", s.host)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("gave up after 5 attempts") && e.contains("disk on fire"),
        "{e}"
    );
    assert_eq!(s.count("GET", "/v2/x/y/manifests/v1"), 5);
}

#[test]
fn bearer_challenge_is_answered_and_secrets_stay_hidden() {
    let f = Arc::new(fixture());
    let host = Arc::new(std::sync::OnceLock::<String>::new());
    let h = host.clone();
    let s = server(f.clone(), move |r, _| {
        use base64::Engine as _;
        if r.path.starts_with("/token") {
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("robot:s3cret-pw")
            );
            let scoped = r.path.contains("scope=repository%3Ax%2Fy%3Apull");
            return Some(
                if r.header("authorization") == Some(expected.as_str()) && scoped {
                    Response::new(200).body(r#"{"token":"tok-123"}"#)
                } else {
                    Response::new(401)
                },
            );
        }
        if r.header("authorization") != Some("Bearer tok-123") {
            let realm = format!("http://{}/token", h.get().unwrap());
            return Some(Response::new(401).header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="{realm}",service="hostile",scope="repository:x/y:pull""#),
            ));
        }
        None
    });
    host.set(s.host.clone()).unwrap();
    let o = support::custody()
        .args(["resolve", &format!("{}/x/y:v1", s.host)])
        .env("CUSTODY_REGISTRY", &s.host)
        .env("CUSTODY_REGISTRY_USERNAME", "robot")
        .env("CUSTODY_REGISTRY_PASSWORD", "s3cret-pw")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), f.digest.to_string());

    let o = support::custody()
        .args(["--output", "json", "resolve", &format!("{}/x/y:v1", s.host)])
        .env("CUSTODY_REGISTRY", &s.host)
        .env("CUSTODY_REGISTRY_USERNAME", "robot")
        .env("CUSTODY_REGISTRY_PASSWORD", "wrong-pw")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("authentication to"), "{all}");
    assert!(
        !all.contains("wrong-pw") && !all.contains("s3cret"),
        "a secret leaked: {all}"
    );
}

#[test]
fn fallback_tag_that_is_not_an_index_is_refused() {
    let f = Arc::new(fixture());
    let fallback = format!("/v2/x/y/manifests/{}", f.digest.fallback_tag());
    // The fallback tag holds an image manifest (here: the subject itself, as GitLab serves it).
    let fb = fallback.clone();
    let s = server(f.clone(), move |r, f| {
        (r.path == fb && r.method == "GET")
            .then(|| manifest_response(&f.manifest, &f.digest.to_string()))
    });
    let o = run(&["discover", &format!("{}/x/y:v1", s.host)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("subject"), "{}", stderr(&o));

    // Writing a referrer must not overwrite it either.
    let store = store::open(
        &format!("{}/x/y", s.host).parse::<Reference>().unwrap(),
        &store::Options::default(),
    )
    .unwrap();
    let referrer = oci::to_bytes(&ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
        artifact_type: Some("application/x-sig".into()),
        config: Descriptor::empty_config(),
        layers: vec![],
        subject: Some(Descriptor::of(MEDIA_TYPE_IMAGE_MANIFEST, &f.manifest)),
        annotations: BTreeMap::new(),
    });
    let digest = Digest::of(&referrer);
    let s2 = {
        let fb = fallback.clone();
        let referrer_path = format!("/v2/x/y/manifests/{digest}");
        let other = oci::to_bytes(&ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::empty_config(),
            layers: vec![],
            subject: None,
            annotations: BTreeMap::new(),
        });
        let other_digest = Digest::of(&other).to_string();
        let dig = digest.to_string();
        server(f.clone(), move |r, _| {
            if r.path == referrer_path && r.method == "PUT" {
                return Some(Response::new(201).header("Docker-Content-Digest", &dig));
            }
            (r.path == fb && r.method == "GET").then(|| manifest_response(&other, &other_digest))
        })
    };
    let store2 = store::open(
        &format!("{}/x/y", s2.host).parse::<Reference>().unwrap(),
        &store::Options::default(),
    )
    .unwrap();
    let err = store2
        .put_manifest(&referrer, MEDIA_TYPE_IMAGE_MANIFEST)
        .unwrap_err();
    assert!(
        matches!(err, store::Error::InvalidFallbackIndex { .. }),
        "{err}"
    );
    assert_eq!(
        s2.count("PUT", &fallback),
        0,
        "the non-index tag was not overwritten"
    );
    drop(store);

    // A registry that answers the referrers API is used as such.
    let index = oci::to_bytes(&oci::ImageIndex::empty());
    let s3 = server(f.clone(), move |r, _| {
        r.path.starts_with("/v2/x/y/referrers/").then(|| {
            Response::new(200)
                .header("Content-Type", MEDIA_TYPE_IMAGE_INDEX)
                .body(index.clone())
        })
    });
    let o = run(&[
        "--output",
        "json",
        "discover",
        &format!("{}/x/y:v1", s3.host),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(r#""path": "api""#), "{}", stdout(&o));
}

#[test]
fn interrupted_chunked_upload_resumes_where_the_registry_stopped() {
    use std::sync::Mutex;
    let dir = support::tempdir();
    let path = dir.path().join("big.bin");
    support::write_data(&path, 9 * 1024 * 1024 + 17, 11);
    let (digest, size) = custody::foundation::digest::of_file(&path).unwrap();
    let descriptor = Descriptor::new("application/octet-stream", digest.clone(), size);

    // The registry keeps only the first half of the first PATCH, then fails it.
    let stored = Arc::new(Mutex::new((Vec::<u8>::new(), 0usize, false)));
    let state = stored.clone();
    let blob_path = format!("/v2/x/y/blobs/{digest}");
    let s = HostileServer::start(move |r| {
        let mut st = state.lock().unwrap();
        let (data, patches, done) = &mut *st;
        match (r.method.as_str(), r.path.as_str()) {
            ("HEAD", p) if p == blob_path => {
                if *done {
                    Response::new(200).header("Content-Length", &data.len().to_string())
                } else {
                    Response::new(404)
                }
            }
            ("POST", "/v2/x/y/blobs/uploads/") => {
                Response::new(202).header("Location", "/upload/1")
            }
            ("PATCH", "/upload/1") => {
                *patches += 1;
                let start: usize = r
                    .header("content-range")
                    .unwrap()
                    .split('-')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                if start != data.len() {
                    return Response::new(416);
                }
                if *patches == 1 {
                    data.extend_from_slice(&r.body[..r.body.len() / 2]);
                    return Response::new(500);
                }
                data.extend_from_slice(&r.body);
                Response::new(202).header("Location", "/upload/1")
            }
            ("GET", "/upload/1") => {
                Response::new(204).header("Range", &format!("0-{}", data.len() as i64 - 1))
            }
            ("PUT", p) if p.starts_with("/upload/1?digest=") => {
                if Digest::of(data) == digest {
                    *done = true;
                    Response::new(201)
                } else {
                    Response::new(400)
                }
            }
            _ => Response::new(404),
        }
    });
    let store = store::open(
        &format!("{}/x/y", s.host).parse::<Reference>().unwrap(),
        &store::Options {
            retry: custody::storage::store::registry::RetryPolicy {
                base_delay: std::time::Duration::from_millis(5),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    store
        .put_blob(
            &descriptor,
            custody::storage::store::BlobSource::File(&path),
        )
        .unwrap();
    let st = stored.lock().unwrap();
    assert!(st.2, "the upload completed");
    assert_eq!(st.1, 2, "one failed PATCH, one resumed PATCH");
    assert_eq!(
        s.count("GET", "/upload/1"),
        1,
        "asked where the upload stood"
    );
}

/// Runs custody, killing it if it is still running after a minute: a hang fails the test
/// instead of holding the suite (a watchdog, not a timing assertion).
fn run_bounded(mut command: std::process::Command) -> std::process::Output {
    use std::process::Stdio;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("custody starts");
    for _ in 0..600 {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let o = child.wait_with_output().expect("output");
    panic!("custody hung on a stalled registry:\n{}", stderr(&o));
}

/// The fixture's manifest, sent at `pace`.
fn paced_manifest(pace: Pace) -> HostileServer {
    server(Arc::new(fixture()), move |r, f| {
        (r.path == "/v2/x/y/manifests/v1").then(|| Response {
            pace,
            ..manifest_response(&f.manifest, &f.digest.to_string())
        })
    })
}

#[test]
fn a_registry_that_never_answers_ends_with_exit_2_naming_it() {
    let s = paced_manifest(Pace::Silent);
    let mut c = support::custody();
    c.args(["--timeout", "2s", "resolve", &format!("{}/x/y:v1", s.host)]);
    let o = run_bounded(c);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("registry {} sent no response within 2s", s.host)),
        "{e}"
    );
    assert!(e.contains("/v2/x/y/manifests/v1"), "{e}");
    assert_eq!(
        s.count("GET", "/v2/x/y/manifests/v1"),
        1,
        "a stalled registry is not asked again"
    );
}

#[test]
fn a_registry_that_stalls_after_the_headers_ends_with_exit_2_naming_it() {
    let s = paced_manifest(Pace::StallAfterHeaders);
    // The environment gives the default when no flag does.
    let mut c = support::custody();
    c.args(["resolve", &format!("{}/x/y:v1", s.host)])
        .env("CUSTODY_TIMEOUT", "2s");
    let o = run_bounded(c);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "registry {} stalled after the response headers: no data for 2s",
            s.host
        )),
        "{e}"
    );
}

#[test]
fn a_registry_that_drips_a_manifest_or_a_blob_ends_with_exit_2_naming_it() {
    // One byte a second: every read returns in time, the whole manifest never does.
    let s = paced_manifest(Pace::Drip(std::time::Duration::from_secs(1)));
    let mut c = support::custody();
    c.args(["--timeout", "2s", "resolve", &format!("{}/x/y:v1", s.host)]);
    let o = run_bounded(c);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "registry {} sent its response too slowly to finish within 2s",
            s.host
        )),
        "{e}"
    );

    // A blob at a byte every 300 ms: under the minimum rate over a window of the timeout.
    let f = Arc::new(fixture());
    let s = server(f.clone(), |r, f| {
        (r.path == format!("/v2/x/y/blobs/{}", f.layer_digest)).then(|| Response {
            pace: Pace::Drip(std::time::Duration::from_millis(300)),
            ..Response::new(200).body(f.layer.clone())
        })
    });
    let dir = support::tempdir();
    let out = dir.path().join("out");
    let mut c = support::custody();
    c.args([
        "--timeout",
        "2s",
        "pull",
        &format!("{}/x/y:v1", s.host),
        "-o",
        out.to_str().unwrap(),
    ]);
    let o = run_bounded(c);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "registry {} sent a blob at less than 1 KiB/s over 2s",
            s.host
        )),
        "{e}"
    );
    assert!(!out.join("hello.txt").exists());
}

#[test]
fn a_bad_timeout_is_refused() {
    for bad in ["0s", "soon", "2h"] {
        let o = run(&["--timeout", bad, "resolve", "127.0.0.1:1/x/y:v1"]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("timeout"), "{bad}: {}", stderr(&o));
    }
}

/// A registry that challenges for Basic auth everywhere and records what it was sent.
fn basic_spy() -> HostileServer {
    server(Arc::new(fixture()), |r, _| {
        r.header("authorization")
            .is_none()
            .then(|| Response::new(401).header("WWW-Authenticate", r#"Basic realm="spy""#))
    })
}

fn authorizations(s: &HostileServer) -> Vec<String> {
    s.requests
        .lock()
        .unwrap()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .collect()
}

#[test]
fn environment_credentials_without_their_registry_are_refused_and_never_sent() {
    let s = basic_spy();
    let o = support::custody()
        .args(["resolve", &format!("{}/x/y:v1", s.host)])
        .env("CUSTODY_REGISTRY_USERNAME", "robot")
        .env("CUSTODY_REGISTRY_PASSWORD", "s3cret-pw")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("CUSTODY_REGISTRY is not"), "{e}");
    assert!(!e.contains("s3cret-pw"), "{e}");
    assert_eq!(authorizations(&s), Vec::<String>::new());

    // Named for another registry: this one never sees them either.
    let o = support::custody()
        .args(["resolve", &format!("{}/x/y:v1", s.host)])
        .env("CUSTODY_REGISTRY", "registry.example.com")
        .env("CUSTODY_REGISTRY_USERNAME", "robot")
        .env("CUSTODY_REGISTRY_PASSWORD", "s3cret-pw")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no credentials were found"),
        "{}",
        stderr(&o)
    );
    assert_eq!(authorizations(&s), Vec::<String>::new());
}

#[test]
fn ci_registry_credentials_go_to_that_registry_only() {
    use base64::Engine as _;
    let gitlab = basic_spy();
    let other = basic_spy();
    let f = fixture();
    for s in [&gitlab, &other] {
        let o = support::custody()
            .args(["resolve", &format!("{}/x/y:v1", s.host)])
            .env("CI_REGISTRY", &gitlab.host)
            .env("CI_REGISTRY_USER", "gitlab-ci-token")
            .env("CI_REGISTRY_PASSWORD", "glcbt-secret")
            .env("GITHUB_TOKEN", "ghs-secret")
            .output()
            .unwrap();
        if std::ptr::eq(s, &gitlab) {
            assert!(o.status.success(), "{}", stderr(&o));
            assert_eq!(stdout(&o).trim(), f.digest.to_string());
        } else {
            assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        }
    }
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("gitlab-ci-token:glcbt-secret")
    );
    assert!(
        authorizations(&gitlab).iter().all(|a| *a == expected)
            && !authorizations(&gitlab).is_empty(),
        "{:?}",
        authorizations(&gitlab)
    );
    assert_eq!(authorizations(&other), Vec::<String>::new());
}

#[test]
fn a_bearer_challenge_cannot_widen_the_token_scope() {
    let f = Arc::new(fixture());
    let host = Arc::new(std::sync::OnceLock::<String>::new());
    let h = host.clone();
    let s = server(f.clone(), move |r, _| {
        if r.path.starts_with("/token") {
            return Some(Response::new(200).body(r#"{"token":"tok-123"}"#));
        }
        if r.header("authorization") != Some("Bearer tok-123") {
            let realm = format!("http://{}/token", h.get().unwrap());
            return Some(Response::new(401).header(
                "WWW-Authenticate",
                &format!(
                    r#"Bearer realm="{realm}",service="hostile",scope="repository:victim/secrets:pull,push""#
                ),
            ));
        }
        None
    });
    host.set(s.host.clone()).unwrap();
    let o = support::custody()
        .args(["resolve", &format!("{}/x/y:v1", s.host)])
        .env("CUSTODY_REGISTRY", &s.host)
        .env("CUSTODY_REGISTRY_USERNAME", "robot")
        .env("CUSTODY_REGISTRY_PASSWORD", "s3cret-pw")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let token_requests: Vec<String> = s
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path.starts_with("/token"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        token_requests,
        vec!["/token?service=hostile&scope=repository%3Ax%2Fy%3Apull".to_owned()],
        "only the scope custody needs is asked for"
    );
}

/// A registry with the referrers API that lists `n` bundle referrers of the fixture, in pages
/// of 10,000, each a real manifest (its digest checks) sharing one small bundle layer.
fn many_referrers(n: usize) -> (HostileServer, Arc<Fixture>) {
    const PAGE: usize = 10_000;
    let f = Arc::new(fixture());
    let bundle = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#.to_vec();
    let layer = Descriptor::of(custody::evidence::attach::BUNDLE_MEDIA_TYPE_V03, &bundle);
    let subject = Descriptor::new(
        MEDIA_TYPE_IMAGE_MANIFEST.to_owned(),
        f.digest.clone(),
        f.manifest.len() as u64,
    );
    let mut manifests = std::collections::HashMap::new();
    let mut listed = Vec::with_capacity(n);
    for i in 0..n {
        let bytes = oci::to_bytes(&ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
            artifact_type: Some(custody::evidence::attach::BUNDLE_MEDIA_TYPE_V03.into()),
            config: Descriptor::empty_config(),
            layers: vec![layer.clone()],
            subject: Some(subject.clone()),
            annotations: BTreeMap::from([("n".to_owned(), i.to_string())]),
        });
        let mut d = Descriptor::of(MEDIA_TYPE_IMAGE_MANIFEST, &bytes);
        d.artifact_type = Some(custody::evidence::attach::BUNDLE_MEDIA_TYPE_V03.into());
        manifests.insert(format!("/v2/x/y/manifests/{}", d.digest), bytes);
        listed.push(d);
    }
    let referrers = format!("/v2/x/y/referrers/{}", f.digest);
    let s = server(f.clone(), move |r, _| {
        if let Some(m) = manifests.get(&r.path) {
            return Some(manifest_response(m, r.path.rsplit('/').next().unwrap()));
        }
        if r.path == format!("/v2/x/y/blobs/{}", layer.digest) {
            return Some(Response::new(200).body(bundle.clone()));
        }
        let page = if r.path == referrers {
            0
        } else {
            r.path
                .strip_prefix(&format!("{referrers}?page="))?
                .parse::<usize>()
                .ok()?
        };
        let end = n.min((page + 1) * PAGE);
        let index = oci::to_bytes(&custody::foundation::oci::ImageIndex {
            manifests: listed[(page * PAGE).min(end)..end].to_vec(),
            ..custody::foundation::oci::ImageIndex::empty()
        });
        let mut response = Response::new(200)
            .header("Content-Type", MEDIA_TYPE_IMAGE_INDEX)
            .body(index);
        if end < n {
            response = response.header(
                "Link",
                &format!("<{referrers}?page={}>; rel=\"next\"", page + 1),
            );
        }
        Some(response)
    });
    (s, f)
}

fn verify_with_a_key(s: &HostileServer) -> (std::process::Output, std::time::Duration) {
    let dir = support::tempdir();
    let (_, public) = crate::release::keypair(dir.path());
    let started = std::time::Instant::now();
    let o = run(&[
        "--output",
        "json",
        "verify",
        &format!("{}/x/y:v1", s.host),
        "--key",
        &public,
    ]);
    (o, started.elapsed())
}

fn discover_check(o: &std::process::Output) -> String {
    let report: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)));
    report["artifact"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "discover")
        .map(|c| c["found"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|| panic!("no discover check: {report:#}"))
}

#[test]
fn listed_referrers_are_capped_before_they_are_fetched() {
    let (s, f) = many_referrers(1500);
    let (o, _) = verify_with_a_key(&s);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let found = discover_check(&o);
    assert!(
        found.contains("1 bundle(s)")
            && found.contains("500 listed referrer(s) and 0 layer(s) skipped over the limits"),
        "{found}"
    );
    let fetched = s
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.path.starts_with("/v2/x/y/manifests/sha256:"))
        .filter(|r| !r.path.ends_with(&f.digest.to_string()))
        .count();
    assert_eq!(
        fetched, 1000,
        "only the first 1000 listed referrers are fetched"
    );
}

/// 90,000 listed referrers: how long verify takes when only the first 1000 are fetched (it
/// took 104 s on loopback when every one was). Run by `scripts/bench-hostile-referrers`.
#[test]
#[ignore = "a benchmark"]
fn bench_verify_time_with_90000_listed_referrers() {
    let (s, _) = many_referrers(90_000);
    let (o, elapsed) = verify_with_a_key(&s);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    println!(
        "bench-hostile-referrers: verify with 90000 listed referrers: {:.1} s, {} requests; {}",
        elapsed.as_secs_f64(),
        s.requests.lock().unwrap().len(),
        discover_check(&o)
    );
}

/// The tag list is parsed as it streams in, and keeps its bounds: one past 16 MiB is refused
/// naming the limit, after handing over only tags within it; one that drips or stalls is timed
/// out naming the registry and what it did.
#[test]
fn a_tag_list_too_large_dripped_or_stalled_is_refused_naming_why() {
    let limit = 16 * 1024 * 1024;
    let mut large = String::from(r#"{"name":"x/y","tags":["#);
    let mut listed = 0usize;
    while large.len() <= limit {
        large.push_str(&format!("\"t{listed:08}\","));
        listed += 1;
    }
    large.push_str("\"last\"]}");
    let small = r#"{"name":"x/y","tags":["v1","v2","v3","v4","v5","v6","v7"]}"#;
    let cases = [
        // Time enough for a debug build to parse 16 MiB on a busy machine.
        (
            Response::new(200).body(large),
            "larger than 16777216 bytes".to_owned(),
            60,
        ),
        (
            Response {
                pace: Pace::Drip(std::time::Duration::from_millis(100)),
                ..Response::new(200).body(small)
            },
            "sent its response too slowly to finish within 1s".to_owned(),
            1,
        ),
        (
            Response {
                pace: Pace::StallAfterHeaders,
                ..Response::new(200).body(small)
            },
            "stalled after the response headers: no data for 1s".to_owned(),
            1,
        ),
    ];
    for (i, (response, expected, timeout)) in cases.into_iter().enumerate() {
        let s = HostileServer::start(move |r| match r.path.as_str() {
            "/v2/" => Response::new(200),
            p if p.starts_with("/v2/x/y/tags/list") => response.clone(),
            _ => Response::new(404),
        });
        let store = store::open(
            &format!("{}/x/y", s.host).parse::<Reference>().unwrap(),
            &store::Options {
                timeout: store::Timeout(std::time::Duration::from_secs(timeout)),
                ..Default::default()
            },
        )
        .unwrap();
        let mut seen = 0usize;
        let e = store.each_tag(&mut |_| seen += 1).unwrap_err().to_string();
        assert!(e.contains(&expected), "case {i}: {e}");
        if i == 0 {
            assert!(
                seen > 0 && seen < listed,
                "{seen} of {listed} tags handed over"
            );
        } else {
            assert!(e.contains(&s.host), "case {i} names the registry: {e}");
        }
    }
}

/// A store asked about many `sha256-` tags (fallback indexes, cosign's legacy tags) asks one by
/// one at first, then lists the repository's tags once and answers absent ones from the list;
/// a listed tag is still fetched, and one the store writes itself is not hidden. Too long a
/// list, a failed list, or the option off: one by one throughout, and no error.
#[test]
fn many_digest_tags_are_answered_from_one_tag_list_and_nothing_listed_is_hidden() {
    use custody::foundation::oci::ImageIndex;
    use custody::storage::store::FetchedManifest;

    let index = oci::to_bytes(&ImageIndex::empty());
    let subject = |i: usize| Digest::of(format!("subject {i}").as_bytes());
    let present = subject(12);
    let written = subject(14);
    // `listed` tags beside `v1`: the present one, and `extra` more that nothing asks about.
    let server = |extra: usize, list_status: u16| {
        let index = index.clone();
        let present = present.fallback_tag();
        let mut tags = vec!["v1".to_owned(), present.clone()];
        tags.extend((0..extra).map(|i| Digest::of(&i.to_le_bytes()).fallback_tag()));
        let list = serde_json::json!({"name": "x/y", "tags": tags}).to_string();
        let stored = std::sync::Mutex::new(vec![present]);
        HostileServer::start(move |r| {
            let tag = r.path.strip_prefix("/v2/x/y/manifests/").unwrap_or("");
            match (r.method.as_str(), r.path.as_str()) {
                (_, "/v2/") => Response::new(200),
                (_, p) if p.starts_with("/v2/x/y/tags/list") => {
                    Response::new(list_status).body(list.clone())
                }
                ("PUT", _) if !tag.is_empty() => {
                    stored.lock().unwrap().push(tag.to_owned());
                    Response::new(201)
                        .header("Docker-Content-Digest", &Digest::of(&r.body).to_string())
                }
                ("GET", _) if stored.lock().unwrap().iter().any(|t| t == tag) => Response::new(200)
                    .header("Content-Type", MEDIA_TYPE_IMAGE_INDEX)
                    .body(index.clone()),
                _ => Response::new(404),
            }
        })
    };
    // Asks about subjects 0..20 (fallback indexes and `.sig` tags by turns), writes subject
    // 14's index after the 10th question; returns (manifest GETs, tag lists, found).
    let ask = |s: &HostileServer, once: bool| {
        let store = store::open(
            &format!("{}/x/y:v1", s.host).parse::<Reference>().unwrap(),
            &store::Options {
                short_lived: once,
                ..Default::default()
            },
        )
        .unwrap();
        let mut found = Vec::new();
        for i in 0..20 {
            if i == 10 {
                let empty = FetchedManifest::check(
                    "index",
                    index.clone(),
                    Some(MEDIA_TYPE_IMAGE_INDEX),
                    None,
                )
                .unwrap();
                store
                    .tag(&written.fallback_tag().parse().unwrap(), &empty)
                    .unwrap();
            }
            let tag = match i % 2 {
                0 => subject(i).fallback_tag(),
                _ => format!("{}.sig", subject(i).fallback_tag()),
            };
            let tag = if i == 12 || i == 14 {
                subject(i).fallback_tag()
            } else {
                tag
            };
            if store.get_tagged(&tag.parse().unwrap()).unwrap().is_some() {
                found.push(i);
            }
        }
        (
            s.count("GET", "/v2/x/y/manifests/"),
            s.count("GET", "/v2/x/y/tags/list"),
            found,
        )
    };

    let s = server(100, 200);
    assert_eq!(
        ask(&s, true),
        (7 + 2, 1, vec![12, 14]),
        "7 asked one by one, then one list; the listed tag and the one written are fetched"
    );
    let s = server(100, 200);
    assert_eq!(ask(&s, false), (20, 0, vec![12, 14]), "off: one by one");
    let s = server(10_000, 200);
    assert_eq!(
        ask(&s, true),
        (20, 1, vec![12, 14]),
        "over 10,000 sha256- tags: not kept, asked one by one"
    );
    for refused in [403, 404] {
        let s = server(100, refused);
        assert_eq!(
            ask(&s, true),
            (20, 1, vec![12, 14]),
            "a list refused with {refused}: one by one, no error"
        );
    }
}

/// A tag list that stalls while a store lists its `sha256-` tags is not taken as "no tags": the
/// question that started the list fails naming the stall, as a stalled fetch of the tag would.
#[test]
fn a_stalled_tag_list_fails_the_digest_tag_question_and_hides_nothing() {
    let s = HostileServer::start(|r| match r.path.as_str() {
        "/v2/" => Response::new(200),
        p if p.starts_with("/v2/x/y/tags/list") => Response {
            pace: Pace::StallAfterHeaders,
            ..Response::new(200).body(r#"{"name":"x/y","tags":["v1"]}"#)
        },
        _ => Response::new(404),
    });
    let store = store::open(
        &format!("{}/x/y", s.host).parse::<Reference>().unwrap(),
        &store::Options {
            timeout: store::Timeout(std::time::Duration::from_secs(1)),
            short_lived: true,
            ..Default::default()
        },
    )
    .unwrap();
    let ask = |i: u8| {
        let tag = Digest::of(&[i]).fallback_tag();
        store.get_tagged(&tag.parse().unwrap())
    };
    for i in 0..7 {
        assert!(ask(i).unwrap().is_none(), "asked one by one");
    }
    let e = ask(7).unwrap_err().to_string();
    assert!(e.contains("stalled after the response headers"), "{e}");
    assert!(e.contains(&s.host), "names the registry: {e}");
}

/// A short-lived store (one command) fetches a manifest by digest once, however many of its
/// steps read it; one it deleted is asked for again. A long-running one always asks.
#[test]
fn one_command_fetches_a_manifest_by_digest_once_and_a_server_every_time() {
    let f = fixture();
    let path = format!("/v2/x/y/manifests/{}", f.digest);
    let manifest = f.manifest.clone();
    let s = HostileServer::start(move |r| match (r.method.as_str(), r.path.as_str()) {
        (_, "/v2/") => Response::new(200),
        ("GET", p) if p == path => Response::new(200)
            .header("Content-Type", MEDIA_TYPE_IMAGE_MANIFEST)
            .body(manifest.clone()),
        ("DELETE", p) if p == path => Response::new(202),
        _ => Response::new(404),
    });
    let fetched = || s.count("GET", "/v2/x/y/manifests/");
    for short_lived in [true, false] {
        let store = store::open(
            &format!("{}/x/y", s.host).parse::<Reference>().unwrap(),
            &store::Options {
                short_lived,
                ..Default::default()
            },
        )
        .unwrap();
        let before = fetched();
        for _ in 0..3 {
            let m = store.get_manifest(&f.digest).unwrap();
            assert_eq!(m.bytes, f.manifest);
        }
        let asked = if short_lived { 1 } else { 3 };
        assert_eq!(fetched() - before, asked, "short-lived: {short_lived}");
        store.delete_manifest(&f.digest).unwrap();
        store.get_manifest(&f.digest).unwrap();
        assert_eq!(
            fetched() - before,
            asked + 1,
            "asked again after the delete"
        );
    }
}
