//! Kubernetes admission (`admission.k8s.io/v1` AdmissionReview): reading a review, finding
//! every image of a Pod or of the pod template a workload embeds, and writing the answer (a
//! denial that names the image and its first failed checks, or a JSONPatch pinning tags to the
//! verified digests). Only the fields custody reads are typed; the rest is ignored.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decisions::verify::VerifyReport;

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";
/// Images checked per object at most (a pod has a handful; this bounds a hostile one).
pub const MAX_IMAGES: usize = 256;
/// Longest denial message (the API server shows it to the user).
const MAX_MESSAGE: usize = 2048;
/// Failed checks named per image in a denial.
const CHECKS_NAMED: usize = 3;

/// Why a review cannot be answered (HTTP 400: the API server treats it as a call failure, and
/// `failurePolicy: Fail` rejects the request).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the body is not an AdmissionReview: {0}")]
    Json(#[source] serde_json::Error),
    #[error("AdmissionReview apiVersion {found:?} is not {API_VERSION}")]
    Version { found: String },
    #[error("AdmissionReview has no request")]
    NoRequest,
}

/// Why the object's images cannot be listed (a denial: nothing unverified is admitted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error(
        "{group}/{version} {kind} is not a kind custody admits (Pod or a workload with a pod template)"
    )]
    UnknownKind {
        group: String,
        version: String,
        kind: String,
    },
    #[error("{pointer} is not {expected}")]
    Shape {
        pointer: String,
        expected: &'static str,
    },
    #[error("the object has more than {MAX_IMAGES} images")]
    TooManyImages,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    pub api_version: String,
    pub kind: String,
    pub request: Option<AdmissionRequest>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    pub operation: String,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// Reads a review body (its size is bounded by the caller).
pub fn parse(body: &[u8]) -> Result<AdmissionRequest, ReviewError> {
    let review: AdmissionReview = serde_json::from_slice(body).map_err(ReviewError::Json)?;
    if review.api_version != API_VERSION {
        return Err(ReviewError::Version {
            found: review.api_version,
        });
    }
    review.request.ok_or(ReviewError::NoRequest)
}

/// An image named in the object, and where (a JSON pointer into the object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageAt {
    pub pointer: String,
    pub image: String,
}

/// Where the pod spec sits in an object of this kind.
fn pod_spec_pointer(kind: &GroupVersionKind) -> Option<&'static str> {
    match (kind.group.as_str(), kind.kind.as_str()) {
        ("", "Pod") => Some("/spec"),
        ("", "PodTemplate") => Some("/template/spec"),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => Some("/spec/template/spec"),
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// Every container, init container and ephemeral container image, and every image volume.
pub fn images(kind: &GroupVersionKind, object: &Value) -> Result<Vec<ImageAt>, ObjectError> {
    let Some(spec_pointer) = pod_spec_pointer(kind) else {
        return Err(ObjectError::UnknownKind {
            group: kind.group.clone(),
            version: kind.version.clone(),
            kind: kind.kind.clone(),
        });
    };
    let shape = |pointer: String, expected| ObjectError::Shape { pointer, expected };
    let Some(spec) = object.pointer(spec_pointer) else {
        // No template, no containers: nothing will run (the API server's own validation
        // refuses such an object anyway).
        return Ok(Vec::new());
    };
    if !spec.is_object() {
        return Err(shape(spec_pointer.to_owned(), "an object"));
    }
    let mut out = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(items) = spec.get(list).filter(|v| !v.is_null()) else {
            continue;
        };
        let pointer = format!("{spec_pointer}/{list}");
        let items = items
            .as_array()
            .ok_or_else(|| shape(pointer.clone(), "a list"))?;
        for (i, item) in items.iter().enumerate() {
            let pointer = format!("{pointer}/{i}/image");
            match item.get("image") {
                Some(Value::String(image)) => out.push(ImageAt {
                    pointer,
                    image: image.clone(),
                }),
                // A container without an image is refused by the API server; nothing to check.
                None | Some(Value::Null) => {}
                Some(_) => return Err(shape(pointer, "a string")),
            }
            if out.len() > MAX_IMAGES {
                return Err(ObjectError::TooManyImages);
            }
        }
    }
    if let Some(volumes) = spec.get("volumes").filter(|v| !v.is_null()) {
        let pointer = format!("{spec_pointer}/volumes");
        let volumes = volumes
            .as_array()
            .ok_or_else(|| shape(pointer.clone(), "a list"))?;
        for (i, volume) in volumes.iter().enumerate() {
            match volume.pointer("/image/reference") {
                Some(Value::String(image)) => out.push(ImageAt {
                    pointer: format!("{pointer}/{i}/image/reference"),
                    image: image.clone(),
                }),
                None | Some(Value::Null) => {}
                Some(_) => {
                    return Err(shape(format!("{pointer}/{i}/image/reference"), "a string"));
                }
            }
            if out.len() > MAX_IMAGES {
                return Err(ObjectError::TooManyImages);
            }
        }
    }
    Ok(out)
}

/// Pull secrets named per pod spec at most (the rest are not read).
pub const MAX_PULL_SECRETS: usize = 16;

/// The names in the pod spec's `imagePullSecrets`, in order (entries that are not
/// `{"name": "..."}` are skipped: the API server validates them, and nothing is pulled here
/// with a secret that is not named).
pub fn pull_secret_names(kind: &GroupVersionKind, object: &Value) -> Vec<String> {
    let Some(list) = pod_spec_pointer(kind)
        .and_then(|p| object.pointer(p))
        .and_then(|spec| spec.get("imagePullSecrets"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|entry| entry.get("name").and_then(Value::as_str))
        .take(MAX_PULL_SECRETS)
        .map(str::to_owned)
        .collect()
}

/// Whether a request carries an object whose images must be checked: CREATE and UPDATE do;
/// DELETE and CONNECT run nothing new.
pub fn needs_check(request: &AdmissionRequest) -> bool {
    matches!(request.operation.as_str(), "CREATE" | "UPDATE")
        && request.object.as_ref().is_some_and(|o| !o.is_null())
}

/// The answer to one review.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewResponse {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub response: Response,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// The RFC 6902 patch, base64 as the API requires for a byte field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// `verdicts`: each image and how its verdict was reached (`full` or `vsa`); the API
    /// server records it in the audit log under the webhook's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_annotations: Option<std::collections::BTreeMap<&'static str, String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ReviewResponse {
    pub fn allow(uid: &str) -> ReviewResponse {
        ReviewResponse {
            api_version: API_VERSION,
            kind: KIND,
            response: Response {
                uid: uid.to_owned(),
                allowed: true,
                status: None,
                patch_type: None,
                patch: None,
                warnings: Vec::new(),
                audit_annotations: None,
            },
        }
    }

    /// A denial (403 Forbidden) with `message`, cut to a readable length.
    pub fn deny(uid: &str, message: &str) -> ReviewResponse {
        let mut r = ReviewResponse::allow(uid);
        r.response.allowed = false;
        r.response.status = Some(Status {
            code: 403,
            reason: "Forbidden",
            message: cut(message, MAX_MESSAGE),
        });
        r
    }

    /// An admission with a JSONPatch (none when `patch` is empty).
    pub fn allow_with_patch(uid: &str, patch: &[Value]) -> ReviewResponse {
        let mut r = ReviewResponse::allow(uid);
        if !patch.is_empty() {
            let bytes = serde_json::to_vec(patch).expect("json values serialise");
            r.response.patch_type = Some("JSONPatch");
            r.response.patch = Some(STANDARD.encode(bytes));
        }
        r
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// One image's refusal in a denial: the image and its first failed checks, with what was
/// expected and found.
pub fn refusal_line(image: &str, report: &VerifyReport) -> String {
    let failures = report.failures();
    let named: Vec<String> = failures
        .iter()
        .take(CHECKS_NAMED)
        .map(|c| {
            let mut s = c.name.clone();
            match (&c.expected, &c.found) {
                (Some(e), Some(f)) => s.push_str(&format!(" (expected {e}, found {f})")),
                (Some(e), None) => s.push_str(&format!(" (expected {e})")),
                (None, Some(f)) => s.push_str(&format!(" (found {f})")),
                (None, None) => {}
            }
            s
        })
        .collect();
    let more = failures.len().saturating_sub(CHECKS_NAMED);
    let more = if more > 0 {
        format!("; {more} more")
    } else {
        String::new()
    };
    format!(
        "image {image} was refused by policy {}: {}{more}",
        report.policy.source,
        if named.is_empty() {
            "not verified".to_owned()
        } else {
            named.join("; ")
        }
    )
}

/// The patch pinning `image` at `pointer` to `digest`: a `test` of the value it was computed
/// from (so a stale patch fails rather than overwrites), then the replacement `image@digest`
/// (the tag kept for readers). An image that already names a digest gets no patch.
pub fn pin(at: &ImageAt, digest: &str) -> Vec<Value> {
    if at.image.contains('@') {
        return Vec::new();
    }
    vec![
        serde_json::json!({"op": "test", "path": at.pointer, "value": at.image}),
        serde_json::json!({"op": "replace", "path": at.pointer, "value": format!("{}@{digest}", at.image)}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gvk(group: &str, kind: &str) -> GroupVersionKind {
        GroupVersionKind {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
        }
    }

    fn pod_spec() -> Value {
        serde_json::json!({
            "initContainers": [{"name": "init", "image": "reg.example/init:1"}],
            "containers": [
                {"name": "app", "image": "reg.example/app:1"},
                {"name": "side", "image": "reg.example/side@sha256:0000000000000000000000000000000000000000000000000000000000000000"}
            ],
            "ephemeralContainers": [{"name": "debug", "image": "reg.example/debug:1"}],
            "volumes": [{"name": "data", "image": {"reference": "reg.example/data:1"}}, {"name": "tmp", "emptyDir": {}}]
        })
    }

    #[test]
    fn every_image_of_every_workload_kind_is_found_with_its_pointer() {
        let cases: [(&str, &str, Value, &str); 8] = [
            ("", "Pod", serde_json::json!({"spec": pod_spec()}), "/spec"),
            (
                "apps",
                "Deployment",
                serde_json::json!({"spec": {"template": {"spec": pod_spec()}}}),
                "/spec/template/spec",
            ),
            (
                "apps",
                "StatefulSet",
                serde_json::json!({"spec": {"template": {"spec": pod_spec()}}}),
                "/spec/template/spec",
            ),
            (
                "apps",
                "DaemonSet",
                serde_json::json!({"spec": {"template": {"spec": pod_spec()}}}),
                "/spec/template/spec",
            ),
            (
                "apps",
                "ReplicaSet",
                serde_json::json!({"spec": {"template": {"spec": pod_spec()}}}),
                "/spec/template/spec",
            ),
            (
                "batch",
                "Job",
                serde_json::json!({"spec": {"template": {"spec": pod_spec()}}}),
                "/spec/template/spec",
            ),
            (
                "batch",
                "CronJob",
                serde_json::json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec()}}}}}),
                "/spec/jobTemplate/spec/template/spec",
            ),
            (
                "",
                "PodTemplate",
                serde_json::json!({"template": {"spec": pod_spec()}}),
                "/template/spec",
            ),
        ];
        for (group, kind, object, base) in cases {
            let found = images(&gvk(group, kind), &object).unwrap();
            let pointers: Vec<String> = found.iter().map(|i| i.pointer.clone()).collect();
            assert_eq!(
                pointers,
                [
                    format!("{base}/initContainers/0/image"),
                    format!("{base}/containers/0/image"),
                    format!("{base}/containers/1/image"),
                    format!("{base}/ephemeralContainers/0/image"),
                    format!("{base}/volumes/0/image/reference"),
                ],
                "{kind}"
            );
            for i in &found {
                assert_eq!(
                    object.pointer(&i.pointer),
                    Some(&Value::String(i.image.clone()))
                );
            }
        }
    }

    #[test]
    fn malformed_objects_are_errors_not_panics() {
        let pod = gvk("", "Pod");
        let cases = [
            (serde_json::json!({"spec": []}), "/spec"),
            (
                serde_json::json!({"spec": {"containers": {}}}),
                "/spec/containers",
            ),
            (
                serde_json::json!({"spec": {"containers": [{"image": 7}]}}),
                "/spec/containers/0/image",
            ),
            (
                serde_json::json!({"spec": {"volumes": [{"image": {"reference": []}}]}}),
                "/spec/volumes/0/image/reference",
            ),
        ];
        for (object, at) in cases {
            let err = images(&pod, &object).unwrap_err();
            assert!(
                matches!(&err, ObjectError::Shape { pointer, .. } if pointer == at),
                "{err:?}"
            );
        }
        assert!(matches!(
            images(&gvk("", "Secret"), &serde_json::json!({})),
            Err(ObjectError::UnknownKind { .. })
        ));
        let many: Vec<Value> = (0..=MAX_IMAGES)
            .map(|i| serde_json::json!({"image": format!("r.example/a:{i}")}))
            .collect();
        assert_eq!(
            images(&pod, &serde_json::json!({"spec": {"containers": many}})),
            Err(ObjectError::TooManyImages)
        );
        assert!(
            images(&pod, &serde_json::json!({"metadata": {}}))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn reviews_are_parsed_strictly_where_it_matters() {
        assert!(matches!(parse(b"{"), Err(ReviewError::Json(_))));
        assert!(matches!(parse(b"[]"), Err(ReviewError::Json(_))));
        assert!(matches!(
            parse(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u","kind":{},"operation":"CREATE"}}"#),
            Err(ReviewError::Version { found }) if found == "admission.k8s.io/v1beta1"
        ));
        assert!(matches!(
            parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
            Err(ReviewError::NoRequest)
        ));
        let deep = format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","kind":{{}},"operation":"CREATE","object":{}1{}}}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(matches!(parse(deep.as_bytes()), Err(ReviewError::Json(_))));
        let r = parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"DELETE","object":null,"userInfo":{"username":"x"}}}"#).unwrap();
        assert_eq!(r.uid, "u-1");
        assert!(!needs_check(&r));
    }

    #[test]
    fn responses_echo_the_uid_and_encode_the_patch_in_base64() {
        let at = ImageAt {
            pointer: "/spec/containers/0/image".into(),
            image: "reg.example/app:1".into(),
        };
        let patch = pin(&at, "sha256:abc");
        let r = serde_json::to_value(ReviewResponse::allow_with_patch("u-2", &patch)).unwrap();
        assert_eq!(r["apiVersion"], API_VERSION);
        assert_eq!(r["kind"], KIND);
        assert_eq!(r["response"]["uid"], "u-2");
        assert_eq!(r["response"]["patchType"], "JSONPatch");
        let bytes = STANDARD
            .decode(r["response"]["patch"].as_str().unwrap())
            .unwrap();
        let ops: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(ops[0]["op"], "test");
        assert_eq!(ops[1]["value"], "reg.example/app:1@sha256:abc");
        let pinned = ImageAt {
            image: "reg.example/app:1@sha256:abc".into(),
            ..at
        };
        assert!(pin(&pinned, "sha256:abc").is_empty(), "idempotent");
        let plain = serde_json::to_value(ReviewResponse::allow_with_patch("u", &[])).unwrap();
        assert!(plain["response"].get("patch").is_none());
        assert!(plain["response"].get("patchType").is_none());

        let denied =
            serde_json::to_value(ReviewResponse::deny("u-3", &"x".repeat(10_000))).unwrap();
        assert_eq!(denied["response"]["allowed"], false);
        assert_eq!(denied["response"]["status"]["code"], 403);
        assert!(
            denied["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .len()
                <= MAX_MESSAGE
        );
    }
}
