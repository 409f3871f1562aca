//! The HTTPS front: accepting TLS connections, routing, bounded bodies, and the handlers of
//! `/v1/verify`, the two admission webhooks and the operator endpoints. Verifications run on
//! the blocking pool; a cache hit for a digest is answered without leaving the async thread.
//!
//! Draining: once a stop is asked for, the listener is closed, `/readyz` answers 503 and every
//! answer says `Connection: close`; the requests in flight finish (within the drain timeout),
//! then every connection is shut down gracefully and [`serve`] returns.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::admission::{self, ImageAt, ReviewResponse};
use super::{
    CheckError, Checked, Error, MAX_REVIEW_BODY, MAX_VERIFY_BODY, PullSecrets, State, tls,
};
use crate::foundation::reference::Reference;
use std::sync::atomic::Ordering;

/// Connections served at once: each may hold a review body of up to [`MAX_REVIEW_BODY`].
const MAX_CONNECTIONS: usize = 256;
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The webhook timeout when the API server names none (its default).
const DEFAULT_BUDGET: Duration = Duration::from_secs(10);
/// Kept back from the API server's timeout, to answer before it gives up.
const BUDGET_MARGIN: Duration = Duration::from_millis(500);

type Answer = Response<Full<Bytes>>;

/// The `/v1/verify` answer's header saying how the verdict was reached: `full` or `vsa`.
pub const BASIS_HEADER: &str = "custody-verdict-basis";

/// Accepts connections until `stop` completes (then calls `draining` and drains for at most
/// `drain`) or the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    tls: Arc<tls::CertFiles>,
    stop: impl std::future::Future<Output = ()>,
    (drain, draining): (Duration, impl FnOnce()),
) -> Result<(), Error> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls.server_config()?));
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    // Tells every connection to finish its request and close.
    let (close_tx, close_rx) = tokio::sync::watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        // At the limit, new connections wait in the kernel's backlog until one closes.
        let accepted = match race(stop.as_mut(), accept(&listener, &connections)).await {
            Either::Left(()) => break,
            Either::Right(accepted) => accepted,
        };
        let (tcp, permit) = match accepted {
            Ok(Some(a)) => a,
            Ok(None) => continue,
            Err(e) => return Err(Error::Accept(e)),
        };
        let (acceptor, state, mut close) = (acceptor.clone(), state.clone(), close_rx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            if let Either::Left(_) = race(connection.as_mut(), close.wait_for(|c| *c)).await {
                return;
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    // Draining: no new connections; the open ones may still send requests (answered with
    // `Connection: close`), and the requests in flight finish.
    drop(listener);
    state.draining.store(true, Ordering::SeqCst);
    draining();
    let deadline = tokio::time::Instant::now() + drain;
    while state.busy.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    close_tx.send_replace(true);
    // Every connection has written its last answer once all permits are back.
    let all = u32::try_from(MAX_CONNECTIONS).expect("the connection limit fits in u32");
    let _ = tokio::time::timeout_at(
        deadline.max(tokio::time::Instant::now() + Duration::from_millis(500)),
        connections.acquire_many(all),
    )
    .await;
    Ok(())
}

pub(crate) enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Whichever of `a` and `b` finishes first (`a` when both are ready); the other is dropped.
pub(crate) async fn race<A, B>(
    a: impl std::future::Future<Output = A>,
    b: impl std::future::Future<Output = B>,
) -> Either<A, B> {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
            return std::task::Poll::Ready(Either::Left(v));
        }
        b.as_mut().poll(cx).map(Either::Right)
    })
    .await
}

/// One accepted connection and its permit; `None` after a transient failure.
async fn accept(
    listener: &tokio::net::TcpListener,
    connections: &Arc<tokio::sync::Semaphore>,
) -> std::io::Result<Option<(tokio::net::TcpStream, tokio::sync::OwnedSemaphorePermit)>> {
    let permit = connections
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    match listener.accept().await {
        Ok((tcp, _)) => {
            let _ = tcp.set_nodelay(true);
            Ok(Some((tcp, permit)))
        }
        // Out of file descriptors and the like: wait a moment rather than spin.
        Err(e) if is_transient(&e) => {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || e.raw_os_error().is_some_and(|c| c == 23 || c == 24)
}

async fn handle(state: &Arc<State>, req: Request<Incoming>) -> Answer {
    let started = Instant::now();
    state.busy.fetch_add(1, Ordering::SeqCst);
    let (endpoint, mut answer) = route(state, req).await;
    if state.draining.load(Ordering::SeqCst) {
        // Clients go to another replica for their next request.
        answer.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    state.busy.fetch_sub(1, Ordering::SeqCst);
    state
        .metrics
        .request(endpoint, answer.status().as_u16(), started.elapsed());
    answer
}

async fn route(state: &Arc<State>, req: Request<Incoming>) -> (&'static str, Answer) {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let endpoint = match path.as_str() {
        "/v1/verify" => "verify",
        "/admission/validate" => "validate",
        "/admission/mutate" => "mutate",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        _ => return ("other", error(StatusCode::NOT_FOUND, "no such endpoint")),
    };
    let wanted = match endpoint {
        "verify" | "validate" | "mutate" => Method::POST,
        _ => Method::GET,
    };
    if method != wanted {
        return (
            endpoint,
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{path} takes {wanted}"),
            ),
        );
    }
    let answer = match endpoint {
        "healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        "readyz" if state.draining.load(Ordering::SeqCst) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "draining\n".into(),
        ),
        "readyz" => text(StatusCode::OK, "text/plain", "ready\n".into()),
        "metrics" => text(
            StatusCode::OK,
            super::metrics::CONTENT_TYPE,
            state.metrics.render(state.cache.len()),
        ),
        "verify" => verify(state, req).await,
        "validate" => review(state, req, Webhook::Validate).await,
        _ => review(state, req, Webhook::Mutate).await,
    };
    (endpoint, answer)
}

fn text(status: StatusCode, content_type: &str, body: String) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Answer {
    let body = serde_json::to_string(value).expect("answers serialise");
    text(status, "application/json", body)
}

fn error(status: StatusCode, message: &str) -> Answer {
    json(status, &serde_json::json!({"error": message}))
}

/// The body, or the answer that refuses it (too large, or cut off).
async fn body(req: Request<Incoming>, max: usize) -> Result<Bytes, Answer> {
    match Limited::new(req.into_body(), max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {max} bytes"),
        )),
        Err(_) => Err(error(StatusCode::BAD_REQUEST, "the body could not be read")),
    }
}

/// Runs a verification on the blocking pool, unless a digest's verdict is cached.
async fn check(
    state: &Arc<State>,
    reference: Reference,
    scope: Option<String>,
    secrets: PullSecrets,
    (deadline, budget): (Instant, Duration),
) -> Result<Checked, CheckError> {
    if let Some(hit) = state.cached(&reference, scope.as_deref()) {
        return Ok(hit);
    }
    let name = reference.to_string();
    let worker = state.clone();
    let task =
        tokio::task::spawn_blocking(move || worker.check(&reference, scope.as_deref(), &secrets));
    match tokio::time::timeout_at(deadline.into(), task).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(CheckError::Crashed { reference: name }),
        // The verification goes on and fills the cache for the API server's retry.
        Err(_) => Err(CheckError::Deadline {
            reference: name,
            budget_ms: budget.as_millis(),
        }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    reference: String,
    #[serde(default)]
    scope: Option<String>,
}

/// `POST /v1/verify`: 200 with the report (verified or refused), 400 for a bad request, 502
/// when the registry could not be read (nothing was verified).
async fn verify(state: &Arc<State>, req: Request<Incoming>) -> Answer {
    let budget = budget(req.uri().query());
    let deadline = (Instant::now() + budget, budget);
    let bytes = match body(req, MAX_VERIFY_BODY).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    let request: VerifyRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"reference\": ..., \"scope\": ...}}: {e}"),
            );
        }
    };
    let reference: Reference = match request.reference.parse() {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("bad reference {:?}: {e}", request.reference),
            );
        }
    };
    if reference.layout_path().is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "the service verifies registry references, not OCI layouts on its own disk",
        );
    }
    let scope = match request.scope.as_deref().map(scope_repository).transpose() {
        Ok(s) => s,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    match check(state, reference, scope, PullSecrets::default(), deadline).await {
        Ok(checked) => {
            let mut report = (*checked.report).clone();
            report.reference = request.reference;
            let mut answer = json(StatusCode::OK, &report);
            answer.headers_mut().insert(
                BASIS_HEADER,
                hyper::header::HeaderValue::from_static(checked.basis.as_str()),
            );
            answer
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}

/// A `scope` given as a repository, in its canonical spelling.
fn scope_repository(text: &str) -> Result<String, String> {
    let r: Reference = text
        .parse()
        .map_err(|e| format!("bad scope repository {text:?}: {e}"))?;
    if r.tag.is_some() || r.digest.is_some() {
        return Err(format!(
            "scope takes a repository; {text:?} names a tag or digest"
        ));
    }
    Ok(r.repository())
}

/// The time the API server gives the webhook (`?timeout=10s`), less a margin.
fn budget(query: Option<&str>) -> Duration {
    let given = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("timeout="))
        .and_then(|v| v.strip_suffix('s'))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.clamp(1, 30)))
        .unwrap_or(DEFAULT_BUDGET);
    given
        .saturating_sub(BUDGET_MARGIN)
        .max(Duration::from_millis(500))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Webhook {
    Validate,
    Mutate,
}

/// The admission webhooks: every image verified; the validating one allows or denies, the
/// mutating one also pins tags to the digests it verified.
async fn review(state: &Arc<State>, req: Request<Incoming>, webhook: Webhook) -> Answer {
    let budget = budget(req.uri().query());
    let deadline = (Instant::now() + budget, budget);
    let bytes = match body(req, MAX_REVIEW_BODY).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    let request = match admission::parse(&bytes) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let answer = decide(state, &request, webhook, deadline).await;
    state.metrics.admission(answer.response.allowed);
    json(StatusCode::OK, &answer)
}

async fn decide(
    state: &Arc<State>,
    request: &admission::AdmissionRequest,
    webhook: Webhook,
    deadline: (Instant, Duration),
) -> ReviewResponse {
    let uid = &request.uid;
    if !admission::needs_check(request) {
        return ReviewResponse::allow(uid);
    }
    let object = request.object.as_ref().unwrap_or(&Value::Null);
    let images = match admission::images(&request.kind, object) {
        Ok(i) => i,
        Err(e) => return ReviewResponse::deny(uid, &e.to_string()),
    };
    // One verification per distinct image, all at once.
    let mut distinct: BTreeMap<String, Option<Reference>> = BTreeMap::new();
    let mut bad = Vec::new();
    for at in &images {
        if distinct.contains_key(&at.image) {
            continue;
        }
        match at.image.parse::<Reference>() {
            Ok(r) if r.layout_path().is_none() => {
                distinct.insert(at.image.clone(), Some(r));
            }
            Ok(_) => bad.push(format!("image {} is not a registry reference", at.image)),
            Err(e) => bad.push(format!("image {} is not a valid reference: {e}", at.image)),
        }
    }
    if !bad.is_empty() {
        return ReviewResponse::deny(uid, &bad.join("; "));
    }
    let secrets = PullSecrets::new(
        request.namespace.as_deref().unwrap_or_default(),
        &admission::pull_secret_names(&request.kind, object),
    );
    let mut results = BTreeMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (image, reference) in distinct {
        let Some(reference) = reference else { continue };
        // A cached digest is answered here, without a task.
        if let Some(hit) = state.cached(&reference, None) {
            results.insert(image, Ok(hit));
            continue;
        }
        let (state, secrets) = (state.clone(), secrets.clone());
        tasks.spawn(async move {
            let result = check(&state, reference, None, secrets, deadline).await;
            (image, result)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((image, result)) = joined {
            results.insert(image, result);
        }
    }
    let mut refusals = Vec::new();
    let mut digests = BTreeMap::new();
    for at in &images {
        match results.get(&at.image) {
            Some(Ok(c)) if c.report.verified => {
                if let Some(d) = &c.report.digest {
                    digests.insert(at.image.clone(), d.to_string());
                }
            }
            Some(Ok(c)) => refusals.push(admission::refusal_line(&at.image, &c.report)),
            // Fail closed: what could not be verified is not admitted.
            Some(Err(e)) => refusals.push(format!("image {} could not be verified: {e}", at.image)),
            None => refusals.push(format!("image {} could not be verified", at.image)),
        }
    }
    refusals.dedup();
    let bases = results
        .iter()
        .filter_map(|(image, r)| r.as_ref().ok().map(|c| (image, c.basis)))
        .map(|(image, basis)| format!("{image}={}", basis.as_str()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut answer = if !refusals.is_empty() {
        ReviewResponse::deny(uid, &refusals.join("; "))
    } else {
        match webhook {
            Webhook::Validate => ReviewResponse::allow(uid),
            Webhook::Mutate => {
                let patch: Vec<Value> = images
                    .iter()
                    .filter_map(|at: &ImageAt| {
                        digests.get(&at.image).map(|d| admission::pin(at, d))
                    })
                    .flatten()
                    .collect();
                ReviewResponse::allow_with_patch(uid, &patch)
            }
        }
    };
    if !bases.is_empty() {
        answer.response.audit_annotations = Some(BTreeMap::from([("verdicts", bases)]));
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_follows_the_api_servers_timeout_within_bounds() {
        assert_eq!(budget(Some("timeout=10s")), Duration::from_millis(9500));
        assert_eq!(budget(Some("a=b&timeout=3s")), Duration::from_millis(2500));
        assert_eq!(budget(Some("timeout=999s")), Duration::from_millis(29_500));
        assert_eq!(budget(Some("timeout=0s")), Duration::from_millis(500));
        assert_eq!(budget(Some("timeout=banana")), Duration::from_millis(9500));
        assert_eq!(budget(None), Duration::from_millis(9500));
    }
}
