//! The HTTPS front: accepting TLS connections, routing, bounded bodies, and the handlers of
//! `/v1/verify`, the two admission webhooks and the operator endpoints. Verifications run on
//! the blocking pool; a cache hit for a digest is answered without leaving the async thread.

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
use super::{CheckError, Checked, Error, MAX_REVIEW_BODY, MAX_VERIFY_BODY, State, tls};
use crate::foundation::reference::Reference;

/// Connections served at once: each may hold a review body of up to [`MAX_REVIEW_BODY`].
const MAX_CONNECTIONS: usize = 256;
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The webhook timeout when the API server names none (its default).
const DEFAULT_BUDGET: Duration = Duration::from_secs(10);
/// Kept back from the API server's timeout, to answer before it gives up.
const BUDGET_MARGIN: Duration = Duration::from_millis(500);

type Answer = Response<Full<Bytes>>;

/// Accepts connections until the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    tls: Arc<tls::CertFiles>,
) -> Result<(), Error> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls.server_config()?));
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        // At the limit, new connections wait in the kernel's backlog until one closes.
        let permit = connections
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            // Out of file descriptors and the like: wait a moment rather than spin.
            Err(e) if is_transient(&e) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(Error::Accept(e)),
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, state) = (acceptor.clone(), state.clone());
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
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
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
    let (endpoint, answer) = route(state, req).await;
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
    (deadline, budget): (Instant, Duration),
) -> Result<Checked, CheckError> {
    if let Some(hit) = state.cached(&reference, scope.as_deref()) {
        return Ok(hit);
    }
    let name = reference.to_string();
    let worker = state.clone();
    let task = tokio::task::spawn_blocking(move || worker.check(&reference, scope.as_deref()));
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
    match check(state, reference, scope, deadline).await {
        Ok(checked) => {
            let mut report = (*checked.report).clone();
            report.reference = request.reference;
            json(StatusCode::OK, &report)
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
    let mut tasks = tokio::task::JoinSet::new();
    for (image, reference) in distinct {
        let Some(reference) = reference else { continue };
        let state = state.clone();
        tasks.spawn(async move {
            let result = check(&state, reference, None, deadline).await;
            (image, result)
        });
    }
    let mut results = BTreeMap::new();
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
    if !refusals.is_empty() {
        return ReviewResponse::deny(uid, &refusals.join("; "));
    }
    match webhook {
        Webhook::Validate => ReviewResponse::allow(uid),
        Webhook::Mutate => {
            let patch: Vec<Value> = images
                .iter()
                .filter_map(|at: &ImageAt| digests.get(&at.image).map(|d| admission::pin(at, d)))
                .flatten()
                .collect();
            ReviewResponse::allow_with_patch(uid, &patch)
        }
    }
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
