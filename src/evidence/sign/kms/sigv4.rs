//! AWS Signature Version 4 for the requests custody sends (a POST with a JSON body): canonical
//! request, string to sign, derived key, `Authorization` header. Checked against AWS's
//! published test-suite vectors.

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};

use crate::evidence::sign::keys::SecretText;

type HmacSha256 = Hmac<Sha256>;

/// AWS credentials. `Debug` shows only the access key id.
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: SecretText,
    pub session_token: Option<SecretText>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.access_key_id)
    }
}

/// Where a signature is valid: a day, a region and a service.
#[derive(Clone, Debug)]
pub struct Scope<'a> {
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// A request to sign. Header names may have any case; values are trimmed.
pub struct Request<'a> {
    pub method: &'a str,
    /// The URI path, already URI-encoded (`/` for KMS).
    pub path: &'a str,
    /// The query string as sent (`a=1&b=2`), or empty.
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The canonical query string: parameters sorted by name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Signs `request`; returns the `Authorization` header value and the signed header list.
pub fn authorization(
    credentials: &Credentials,
    scope: &Scope<'_>,
    request: &Request<'_>,
) -> String {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(n, v)| {
            // Sequential spaces inside a value collapse to one.
            let value = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (n.to_ascii_lowercase(), value)
        })
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        request.path,
        canonical_query(request.query),
        canonical_headers,
        signed_headers,
        sha256_hex(request.body)
    );
    let date = &scope.amz_date[..scope.amz_date.len().min(8)];
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{credential_scope}\n{}",
        scope.amz_date,
        sha256_hex(canonical_request.as_bytes())
    );
    let secret = zeroize::Zeroizing::new(format!("AWS4{}", credentials.secret_access_key.expose()));
    let k_date = hmac(secret.as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, scope.region.as_bytes());
    let k_service = hmac(&k_region, scope.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::sign::keys::SecretText;

    fn example() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: SecretText::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            session_token: None,
        }
    }

    const SCOPE: Scope<'static> = Scope {
        amz_date: "20150830T123600Z",
        region: "us-east-1",
        service: "service",
    };
    const HEADERS: &[(&str, &str)] = &[
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "20150830T123600Z"),
    ];

    fn sign(method: &str, query: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
        let request = Request {
            method,
            path: "/",
            query,
            headers,
            body,
        };
        authorization(&example(), &SCOPE, &request)
    }

    /// AWS SigV4 test suite, `get-vanilla`.
    #[test]
    fn get_vanilla() {
        assert_eq!(
            sign("GET", "", HEADERS, b""),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    /// AWS SigV4 test suite, `get-vanilla-query-order-key-case`: the query is sorted.
    #[test]
    fn get_vanilla_query_order() {
        assert!(
            sign("GET", "Param2=value2&Param1=value1", HEADERS, b"").ends_with(
                "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            )
        );
    }

    #[test]
    fn header_case_and_order_do_not_matter() {
        let reordered = [
            ("x-amz-date", "20150830T123600Z"),
            ("HOST", "example.amazonaws.com"),
        ];
        assert_eq!(
            sign("GET", "", HEADERS, b""),
            sign("GET", "", &reordered, b"")
        );
        assert_ne!(
            sign("POST", "", HEADERS, b""),
            sign("POST", "", HEADERS, b"{}")
        );
    }

    #[test]
    fn secret_never_appears_in_the_header() {
        assert!(!sign("GET", "", HEADERS, b"").contains("wJalrXUtnFEMI"));
    }
}
