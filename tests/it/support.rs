//! Test support: a real CNCF distribution registry on a free loopback port, peer tools, the
//! custody binary, and a small in-process HTTP server for hostile registry behaviour.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::process::{ChildStdin, ChildStdout};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Where scripts/install-tools puts peer tools.
pub fn tools_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("CUSTODY_TOOLS_BIN") {
        return PathBuf::from(dir);
    }
    let home = std::env::var("HOME").expect("HOME is set");
    PathBuf::from(home).join(".cache/custody/tools/bin")
}

/// A peer tool built by scripts/install-tools. Missing is a failure, never a skip.
pub fn tool(name: &str) -> PathBuf {
    let path = tools_bin().join(name);
    assert!(
        path.is_file(),
        "{name} is not installed at {}: run scripts/install-tools (scripts/test does)",
        path.display()
    );
    path
}

pub fn custody() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_custody"));
    c.env("CUSTODY_RETRY_BASE_MS", "20");
    // The tests decide what the environment offers: no ambient credentials or identity tokens
    // from whatever runs them.
    for var in [
        "CUSTODY_REGISTRY",
        "CUSTODY_REGISTRY_USERNAME",
        "CUSTODY_REGISTRY_PASSWORD",
        "CUSTODY_TIMEOUT",
        "CUSTODY_JOBS",
        "CI_REGISTRY",
        "CI_REGISTRY_USER",
        "CI_REGISTRY_PASSWORD",
        "GITHUB_TOKEN",
        "GITHUB_ACTOR",
        "SIGSTORE_ID_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "CUSTODY_AUDIT_LOG",
        "CUSTODY_ATTESTATIONS_REPOSITORY",
        "COSIGN_REPOSITORY",
    ] {
        c.env_remove(var);
    }
    c.env("CUSTODY_CACHE", fresh_cache());
    c
}

/// A cache folder no other command has used: each command starts cold, so one test's fetches
/// never answer another's (a test that lies from a registry must meet its lie). A test of the
/// cache itself passes one folder to several commands.
pub fn fresh_cache() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static CLEARED: OnceLock<()> = OnceLock::new();
    let all = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cache");
    // What earlier runs of the suite left.
    CLEARED.get_or_init(|| {
        let _ = std::fs::remove_dir_all(&all);
    });
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    all.join(format!("{}-{n}", std::process::id()))
}

/// Runs custody with `args`; returns the output.
pub fn run(args: &[&str]) -> Output {
    custody().args(args).output().expect("custody runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs custody and insists on success, returning stdout.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "custody {args:?} failed ({:?}):\n{}\n{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Runs custody with --output json and parses stdout.
pub fn ok_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = ok(&all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn registry_binary() -> PathBuf {
    if let Ok(p) = std::env::var("CUSTODY_REGISTRY_BIN") {
        return PathBuf::from(p);
    }
    for candidate in ["/usr/bin/docker-registry", "/usr/local/bin/docker-registry"] {
        if Path::new(candidate).is_file() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "the CNCF distribution registry (Debian package docker-registry) is not installed: run scripts/install-tools"
    );
}

/// A CNCF distribution registry process with its own storage, stopped on drop.
pub struct Registry {
    child: Child,
    pub host: String,
    config: PathBuf,
    _storage: tempfile::TempDir,
}

impl Registry {
    /// A registry that allows deleting manifests (`storage.delete.enabled: true`).
    pub fn start() -> Registry {
        Registry::start_with_delete(true)
    }

    /// A registry with manifest deletion on or off (off: DELETE answers 405 UNSUPPORTED).
    pub fn start_with_delete(delete: bool) -> Registry {
        Registry::isolated(delete)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the registry again (after [`Registry::kill`] or a crash) on the same port with
    /// the same storage, as an operator restarting it would.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let mut child = Command::new(registry_binary())
                .arg("serve")
                .arg(&self.config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry");
            let up = Instant::now() + Duration::from_secs(5);
            while Instant::now() < up {
                if let Ok(Some(_)) = child.try_wait() {
                    // The port is not free yet: try again.
                    break;
                }
                if http_status(&self.host, "/v2/") == Some(200) {
                    self.child = child;
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("docker-registry did not come back on {}", self.host);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// go-containerregistry's in-memory registry with the OCI 1.1 referrers API (tests/ocireg).
pub struct ReferrersRegistry {
    child: Child,
    pub host: String,
}

impl ReferrersRegistry {
    pub fn start() -> ReferrersRegistry {
        ReferrersRegistry::isolated()
    }
}

impl Drop for ReferrersRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of a plain GET, or None when nothing answers.
pub fn http_status(host: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A request as the hostile server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response the hostile server sends.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Announce the full length but close the connection after this many body bytes.
    pub truncate_at: Option<usize>,
    /// How the response goes out: at once (the default), never, or slowly.
    pub pace: Pace,
}

/// How the hostile server sends a response.
#[derive(Clone, Copy, Debug, Default)]
pub enum Pace {
    #[default]
    AtOnce,
    /// Reads the request and never answers.
    Silent,
    /// Sends the headers, then nothing.
    StallAfterHeaders,
    /// Sends the headers, then the body one byte per interval.
    Drip(Duration),
}

/// How long a stalled response holds its connection: far longer than any test waits.
const STALL: Duration = Duration::from_secs(120);

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            ..Default::default()
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Response {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Response {
        self.body = b.into();
        self
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// An in-process HTTP/1.1 server driven by a closure; records every request.
pub struct HostileServer {
    pub host: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl HostileServer {
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let handler = handler.clone();
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &*handler, &log));
            }
        });
        HostileServer { host, requests }
    }

    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .count()
    }
}

fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        if reader.read_exact(&mut body).is_err() {
            return;
        }
    } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).unwrap_or(0) == 0 {
                return;
            }
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            if reader.read_exact(&mut chunk).is_err() {
                return;
            }
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let request = Request {
        method,
        path,
        headers,
        body,
    };
    log.lock().unwrap().push(request.clone());
    let response = handler(&request);
    let mut head = format!("HTTP/1.1 {} X\r\n", response.status);
    for (k, v) in &response.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if request.method != "HEAD"
        || !response
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    if let Pace::Silent = response.pace {
        std::thread::sleep(STALL);
        return;
    }
    let _ = writer.write_all(head.as_bytes());
    let _ = writer.flush();
    match response.pace {
        Pace::StallAfterHeaders => {
            std::thread::sleep(STALL);
            return;
        }
        Pace::Drip(every) => {
            for byte in &response.body {
                std::thread::sleep(every);
                if writer.write_all(std::slice::from_ref(byte)).is_err() || writer.flush().is_err()
                {
                    return;
                }
            }
            return;
        }
        Pace::AtOnce | Pace::Silent => {}
    }
    if request.method != "HEAD" {
        let end = response.truncate_at.unwrap_or(response.body.len());
        let _ = writer.write_all(&response.body[..end.min(response.body.len())]);
    }
    let _ = writer.flush();
}

/// Writes `size` bytes of deterministic pseudo-random data.
pub fn write_data(path: &Path, size: usize, seed: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut written = 0;
    let mut buf = [0u8; 8192];
    while written < size {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let n = buf.len().min(size - written);
        f.write_all(&buf[..n]).expect("write");
        written += n;
    }
}

/// A temporary folder for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// The Python of the validators' venv (scripts/install-python-tools).
pub fn venv_python() -> PathBuf {
    let tools = std::env::var("CUSTODY_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/custody/tools")
        });
    let python = tools.join("venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/install-python-tools",
        python.display()
    );
    python
}

/// Validates a JSON document against `schemas/<schema>` with an independent validator
/// (Python's `jsonschema`, draft 2020-12); panics with the validator's messages when it does not
/// validate.
pub fn validate_against_schema(schema: &str, instance: &serde_json::Value) {
    if let Some(errors) = schema_violations(schema, instance) {
        panic!("{schema}: {errors}\ninstance: {instance:#}");
    }
}

/// The validator's messages when `instance` does not validate against `schemas/<schema>`
/// (`file.schema.json`, or `file.schema.json#/$defs/name` for one definition), `None` when it
/// does. Every file of `schemas/` is loaded, so `$ref`s between them resolve offline by `$id`;
/// formats (date-time, …) are checked. A schema that is not valid draft 2020-12 panics.
pub fn schema_violations(schema: &str, instance: &serde_json::Value) -> Option<String> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    check(serde_json::json!({
        "check": "schema",
        "folder": folder,
        "schema": schema,
        "instance": instance,
    }))
}

/// A TCP proxy in front of a registry that, while armed, holds every connection still once
/// `limit` request bytes have gone through it, until the test [`CutProxy::release`]s it; then
/// it drops every held connection. A test kills the registry in between: the client sees a
/// registry that died in the middle of an upload.
pub struct CutProxy {
    pub host: String,
    state: Arc<(Mutex<CutState>, std::sync::Condvar)>,
}

#[derive(Default)]
struct CutState {
    armed: bool,
    limit: u64,
    forwarded: u64,
    tripped: bool,
    released: bool,
}

impl CutProxy {
    pub fn start(backend: &str, limit: u64) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let state = Arc::new((
            Mutex::new(CutState {
                armed: true,
                limit,
                ..CutState::default()
            }),
            std::sync::Condvar::new(),
        ));
        let backend = backend.to_owned();
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&backend) else {
                    // Nothing behind the proxy: the client sees the connection close.
                    drop(client);
                    continue;
                };
                let shared = shared.clone();
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                std::thread::spawn(move || pump_up(client, server, &shared));
                std::thread::spawn(move || pump_down(s2, c2));
            }
        });
        CutProxy { host, state }
    }

    /// Waits until the limit was reached; false after `timeout`.
    pub fn wait_tripped(&self, timeout: Duration) -> bool {
        let (lock, cv) = &*self.state;
        let guard = lock.lock().unwrap();
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |s| !s.tripped)
            .unwrap();
        guard.tripped
    }

    /// Drops the held connections and forwards everything from now on.
    pub fn release(&self) {
        let (lock, cv) = &*self.state;
        let mut s = lock.lock().unwrap();
        s.released = true;
        s.armed = false;
        cv.notify_all();
    }

    pub fn forwarded(&self) -> u64 {
        self.state.0.lock().unwrap().forwarded
    }
}

fn pump_up(
    mut client: TcpStream,
    mut server: TcpStream,
    state: &(Mutex<CutState>, std::sync::Condvar),
) {
    let (lock, cv) = state;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut s = lock.lock().unwrap();
            if s.armed {
                s.forwarded += n as u64;
                if s.forwarded >= s.limit {
                    s.tripped = true;
                    cv.notify_all();
                    while !s.released {
                        s = cv.wait(s).unwrap();
                    }
                    drop(s);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    let _ = server.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        }
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = server.shutdown(std::net::Shutdown::Both);
}

fn pump_down(mut server: TcpStream, mut client: TcpStream) {
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = server.shutdown(std::net::Shutdown::Both);
}

/// How long a service started by a test may take to say where it listens.
const STARTUP: Duration = Duration::from_secs(30);

/// The `docker-registry` configuration: storage under `storage/data`, manifest deletion on or
/// off, loopback on `port` (0: the registry picks a free one and logs it).
fn registry_config(storage: &Path, delete: bool, port: u16) -> PathBuf {
    let config = storage.join("config.yml");
    // Level info, so the registry logs "listening on ADDR"; the access log stays off.
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: {delete}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.join("data").display()
        ),
    )
    .expect("write registry config");
    config
}

/// Reads `output` on a thread until a line contains `marker` followed by a loopback address
/// (`127.0.0.1:PORT`), then keeps draining it so the service never blocks on a full pipe.
/// Returns the address, or None when the output ends first or after [`STARTUP`].
pub fn announced_address(
    output: impl Read + Send + 'static,
    marker: &'static str,
) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if sent {
                continue;
            }
            if let Some(rest) = line.split(marker).nth(1) {
                let addr: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                if addr.starts_with("127.0.0.1:") {
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        }
    });
    rx.recv_timeout(STARTUP).ok()
}

/// Waits until `host` answers `GET /v2/` with 200 while `child` runs.
fn wait_v2(child: &mut Child, host: &str) -> bool {
    let deadline = Instant::now() + STARTUP;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if http_status(host, "/v2/") == Some(200) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    false
}

impl Registry {
    /// A registry of its own on a port the registry picked itself (no free-port race), with
    /// manifest deletion on or off. For tests that need isolation: they stop or restart it,
    /// log in to it, count on its catalog, or turn deletion off. Everything else uses
    /// [`shared_registry`].
    pub fn isolated(delete: bool) -> Registry {
        let storage = tempfile::tempdir().expect("tempdir");
        let config = registry_config(storage.path(), delete, 0);
        let mut child = Command::new(registry_binary())
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start docker-registry");
        let stderr = child.stderr.take().expect("piped");
        let host = announced_address(stderr, "listening on ");
        match host {
            Some(host) if wait_v2(&mut child, &host) => {
                // A restart comes back on the same port.
                let port = host.rsplit(':').next().and_then(|p| p.parse().ok());
                registry_config(storage.path(), delete, port.expect("port"));
                Registry {
                    child,
                    host,
                    config,
                    _storage: storage,
                }
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("docker-registry did not come up on a loopback port");
            }
        }
    }
}

impl ReferrersRegistry {
    /// An OCI 1.1 registry of its own on a port it picked itself (no free-port race); ocireg
    /// prints where it listens. For tests that count its requests or need an empty registry;
    /// everything else uses [`shared_referrers_registry`].
    pub fn isolated() -> ReferrersRegistry {
        let mut child = Command::new(tool("ocireg"))
            .args(["-addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ocireg");
        let stdout = child.stdout.take().expect("piped");
        match announced_address(stdout, "listening on ") {
            Some(host) if wait_v2(&mut child, &host) => ReferrersRegistry { child, host },
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ocireg did not say where it listens: run scripts/install-tools to rebuild it"
                );
            }
        }
    }
}

/// A registry process shared by the tests of this binary. It runs under a small `sh` that
/// holds the read end of a pipe whose write end only this process has: when the test binary
/// exits, however it exits, the pipe closes and the shell stops the registry by its pid and
/// removes its storage.
struct SharedProcess {
    host: String,
    _keeper: Mutex<ChildStdin>,
}

impl SharedProcess {
    fn start(program: &Path, args: &[&str], storage: Option<&Path>) -> SharedProcess {
        // $0 program, $1 storage to remove ("" for none), then the program's arguments.
        const KEEPER: &str = r#"p="$0"; s="$1"; shift; "$p" "$@" </dev/null & pid=$!; cat >/dev/null; kill "$pid"; wait "$pid"; [ -n "$s" ] && rm -rf "$s"; exit 0"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(KEEPER)
            .arg(program)
            .arg(storage.map(Path::as_os_str).unwrap_or_default())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let keeper = child.stdin.take().expect("piped");
        // docker-registry logs its address on stderr, ocireg on stdout.
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        for output in [
            Box::new(stdout) as Box<dyn Read + Send>,
            Box::new(stderr) as Box<dyn Read + Send>,
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                if let Some(addr) = announced_address(output, "listening on ") {
                    let _ = tx.send(addr);
                }
            });
        }
        let host = rx.recv_timeout(STARTUP).unwrap_or_else(|_| {
            panic!(
                "{} did not say where it listens (ocireg: run scripts/install-tools to rebuild it)",
                program.display()
            )
        });
        assert!(
            wait_v2(&mut child, &host),
            "{} did not answer on {host}",
            program.display()
        );
        // The shell is not waited for: it ends after this process, with the registry.
        std::mem::forget(child);
        SharedProcess {
            host,
            _keeper: Mutex::new(keeper),
        }
    }
}

/// A repository namespace on a registry shared by the tests of this binary, for tests that do
/// not need a registry of their own (no fault injection, no credentials, no outage, no request
/// counting, no catalog). `base` is `HOST:PORT/NAMESPACE`, where the namespace is made from the
/// test's name, so `format!("{}/app:v1", r.base)` is a repository no other test uses; `host` is
/// the bare `HOST:PORT` for what needs the registry itself (a `repos:` scope, `--registry`).
pub struct SharedRegistry {
    pub host: String,
    pub base: String,
}

/// The distribution registry shared by this test binary (started by the first test that asks),
/// with a namespace of the calling test's own.
pub fn shared_registry() -> SharedRegistry {
    static REGISTRY: OnceLock<SharedProcess> = OnceLock::new();
    let process = REGISTRY.get_or_init(|| {
        // Kept (not deleted on drop): the keeper shell removes it when the registry stops.
        let storage = tempfile::Builder::new()
            .prefix("custody-shared-registry")
            .tempdir()
            .expect("tempdir")
            .keep();
        let config = registry_config(&storage, true, 0);
        SharedProcess::start(
            &registry_binary(),
            &["serve", config.to_str().expect("utf-8 temp path")],
            Some(&storage),
        )
    });
    scoped(&process.host)
}

/// The OCI 1.1 referrers-API registry (ocireg) shared by this test binary, with a namespace of
/// the calling test's own; see [`shared_registry`].
pub fn shared_referrers_registry() -> SharedRegistry {
    static REGISTRY: OnceLock<SharedProcess> = OnceLock::new();
    let process = REGISTRY
        .get_or_init(|| SharedProcess::start(&tool("ocireg"), &["-addr", "127.0.0.1:0"], None));
    scoped(&process.host)
}

/// `host` with a namespace made from the current test's name (libtest names each test's
/// thread after it): `verify::a_tag_moved` becomes `verify/a-tag-moved`. A second call from
/// the same test gets `-2`, and so on, so each call is a fresh namespace.
fn scoped(host: &str) -> SharedRegistry {
    static SEEN: Mutex<Vec<(String, usize)>> = Mutex::new(Vec::new());
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("test");
    let mut namespace = name
        .split("::")
        .map(|part| {
            let part: String = part
                .to_ascii_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let part = part
                .split('-')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>();
            if part.is_empty() {
                "x".to_owned()
            } else {
                part.join("-")
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    match seen.iter_mut().find(|(n, _)| *n == namespace) {
        Some((_, count)) => {
            *count += 1;
            namespace = format!("{namespace}-{count}");
        }
        None => seen.push((namespace.clone(), 1)),
    }
    SharedRegistry {
        host: host.to_owned(),
        base: format!("{host}/{namespace}"),
    }
}

/// The validators of `tests/it/validate.py`, as one long-running process per test binary
/// (`validate.py serve`, one JSON line in, one out), started by the first test that asks and
/// used by one test at a time. It ends when this process does (its stdin closes).
struct Validator {
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    _child: Child,
}

impl Validator {
    fn start() -> Validator {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/validate.py");
        let mut child = Command::new(venv_python())
            .arg(script)
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python runs");
        Validator {
            input: child.stdin.take().expect("piped"),
            output: BufReader::new(child.stdout.take().expect("piped")),
            _child: child,
        }
    }

    fn ask(&mut self, request: &serde_json::Value) -> std::io::Result<serde_json::Value> {
        writeln!(self.input, "{request}")?;
        self.input.flush()?;
        let mut line = String::new();
        if self.output.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        serde_json::from_str(&line).map_err(std::io::Error::other)
    }
}

/// Sends one request to the validator process and returns its answer; panics when the
/// validator could not run (its `error`).
fn validator(request: serde_json::Value) -> serde_json::Value {
    static VALIDATOR: Mutex<Option<Validator>> = Mutex::new(None);
    let mut slot = VALIDATOR.lock().unwrap_or_else(PoisonError::into_inner);
    let validator = slot.get_or_insert_with(Validator::start);
    let answer = match validator.ask(&request) {
        Ok(answer) => answer,
        Err(e) => {
            // A dead validator is started again by the next request.
            *slot = None;
            panic!("the validator did not answer {request}: {e}");
        }
    };
    drop(slot);
    if let Some(error) = answer.get("error") {
        panic!(
            "the validator could not run {request}: {}",
            error.as_str().unwrap_or_default()
        );
    }
    answer
}

/// The validator's message when `request` (a `check`) does not validate, None when it does.
fn check(request: serde_json::Value) -> Option<String> {
    let answer = validator(request);
    if answer["valid"] == true {
        None
    } else {
        Some(answer["message"].as_str().unwrap_or_default().to_owned())
    }
}

/// Why the CycloneDX file at `path` is not valid CycloneDX `version` (1.5 or 1.6) by
/// cyclonedx-python-lib's strict schema, or None when it is.
pub fn sbom_violations(path: &Path, version: &str) -> Option<String> {
    check(serde_json::json!({"check": "sbom", "path": path, "version": version}))
}

/// Why the file at `path` is not a valid in-toto Statement v1 (with its SLSA provenance or VSA
/// predicate) by the in-toto-attestation library, or None when it is.
pub fn statement_violations(path: &Path) -> Option<String> {
    check(serde_json::json!({"check": "statement", "path": path}))
}

/// YAML text as JSON, read by PyYAML (an independent reader).
pub fn yaml_to_json(text: &str) -> serde_json::Value {
    validator(serde_json::json!({"read": "yaml", "text": text}))["value"].take()
}

/// Every YAML document of a file as JSON, read by PyYAML.
pub fn yaml_documents(path: &Path) -> Vec<serde_json::Value> {
    match validator(serde_json::json!({"read": "yaml_all", "path": path}))["value"].take() {
        serde_json::Value::Array(documents) => documents,
        other => panic!("{}: not a list of YAML documents: {other}", path.display()),
    }
}

/// How many `<failure>` elements a JUnit XML file has, read by Python's XML parser; panics
/// when it is not well-formed XML.
pub fn junit_failures(path: &Path) -> u64 {
    validator(serde_json::json!({"read": "junit_failures", "path": path}))["value"]
        .as_u64()
        .expect("a count")
}
