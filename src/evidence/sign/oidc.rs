//! OIDC identity tokens for keyless signing: an explicit token (`--identity-token`, the text or
//! a file holding it), GitHub Actions (a token requested from the runner for audience
//! `sigstore`) or GitLab CI (`SIGSTORE_ID_TOKEN`, set by an `id_tokens:` entry). The environment
//! is handed in ([`Environment`]); this module never reads the process environment.
//!
//! Tokens are secrets: [`IdentityToken`]'s `Debug` shows its claims, never the token. The claims
//! are read without checking the signature; Fulcio checks it, this side only uses them to build
//! the proof of possession and to explain a refusal.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use crate::evidence::ci::Environment;

/// The audience Sigstore's public Fulcio (and custody's default) expects.
pub const SIGSTORE_AUDIENCE: &str = "sigstore";
/// GitHub Actions: URL the runner serves tokens from (needs `permissions: id-token: write`).
pub const GITHUB_REQUEST_URL_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// GitHub Actions: bearer token for [`GITHUB_REQUEST_URL_VAR`].
pub const GITHUB_REQUEST_TOKEN_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
/// GitLab CI (and cosign's convention everywhere): the token itself.
pub const SIGSTORE_ID_TOKEN_VAR: &str = "SIGSTORE_ID_TOKEN";

/// Environment variables keyless signing reads for a token.
pub const TOKEN_ENV_VARS: &[&str] = &[
    SIGSTORE_ID_TOKEN_VAR,
    GITHUB_REQUEST_URL_VAR,
    GITHUB_REQUEST_TOKEN_VAR,
];

/// Largest token accepted (real ones are 1-2 KiB).
pub const MAX_TOKEN_SIZE: usize = 64 * 1024;

/// Why no usable token was obtained.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("identity token is {size} bytes, more than the {max} allowed")]
    TooLarge { size: usize, max: usize },
    #[error("identity token is not a JWT: {reason}")]
    Malformed { reason: &'static str },
    #[error("identity token claims are not valid json: {reason}")]
    Claims { reason: String },
    #[error("identity token has no {claim} claim")]
    MissingClaim { claim: &'static str },
    #[error("cannot read identity token file {path}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{GITHUB_REQUEST_URL_VAR} is set but {GITHUB_REQUEST_TOKEN_VAR} is not")]
    GitHubTokenVarMissing,
    #[error("the GitHub Actions token request to {url} failed: {reason}")]
    GitHubRequest { url: String, reason: String },
}

/// Where a token came from, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenSource {
    /// `--identity-token` (text or file).
    Explicit,
    /// Requested from the GitHub Actions runner.
    #[serde(rename = "github-actions")]
    GitHubActions,
    /// `SIGSTORE_ID_TOKEN` (GitLab CI `id_tokens`, or set by hand).
    SigstoreIdToken,
}

/// The claims custody reads from a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    pub issuer: String,
    pub subject: String,
    /// `aud` as a list (a JWT may carry a string or an array).
    pub audience: Vec<String>,
    /// `email`, when the issuer sets it.
    pub email: Option<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at: Option<i64>,
}

/// A compact JWT with its decoded claims. `Debug` never shows the token.
#[derive(Clone)]
pub struct IdentityToken {
    jwt: zeroize::Zeroizing<String>,
    claims: TokenClaims,
}

impl std::fmt::Debug for IdentityToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityToken")
            .field("jwt", &"<redacted>")
            .field("claims", &self.claims)
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct WireClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    email: Option<String>,
    exp: Option<serde_json::Number>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl IdentityToken {
    /// Parses a compact JWT (`header.claims.signature`), surrounding whitespace ignored.
    pub fn parse(text: &str) -> Result<IdentityToken, OidcError> {
        let text = text.trim();
        if text.len() > MAX_TOKEN_SIZE {
            return Err(OidcError::TooLarge {
                size: text.len(),
                max: MAX_TOKEN_SIZE,
            });
        }
        let mut parts = text.split('.');
        let (Some(_header), Some(claims), Some(_sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OidcError::Malformed {
                reason: "expected three dot-separated parts",
            });
        };
        // base64url per RFC 7519; some issuers pad, so strip '=' first.
        let claims = claims.trim_end_matches('=');
        let raw = URL_SAFE_NO_PAD
            .decode(claims)
            .or_else(|_| STANDARD_NO_PAD.decode(claims))
            .map_err(|_| OidcError::Malformed {
                reason: "claims are not base64url",
            })?;
        let wire: WireClaims = serde_json::from_slice(&raw).map_err(|e| OidcError::Claims {
            reason: e.to_string(),
        })?;
        let issuer = wire.iss.ok_or(OidcError::MissingClaim { claim: "iss" })?;
        let subject = wire.sub.ok_or(OidcError::MissingClaim { claim: "sub" })?;
        let audience = match wire.aud {
            None => return Err(OidcError::MissingClaim { claim: "aud" }),
            Some(Audience::One(a)) => vec![a],
            Some(Audience::Many(a)) => a,
        };
        Ok(IdentityToken {
            jwt: zeroize::Zeroizing::new(text.to_string()),
            claims: TokenClaims {
                issuer,
                subject,
                audience,
                email: wire.email,
                expires_at: wire.exp.and_then(|n| n.as_i64()),
            },
        })
    }

    pub fn claims(&self) -> &TokenClaims {
        &self.claims
    }

    /// The token text, for the request to Fulcio only.
    pub fn expose_secret(&self) -> &str {
        &self.jwt
    }

    /// What Fulcio expects the proof of possession to sign: the `email` claim when present,
    /// otherwise `sub` (Fulcio's challenge for email issuers and for CI/URI issuers alike).
    pub fn challenge(&self) -> &str {
        self.claims.email.as_deref().unwrap_or(&self.claims.subject)
    }

    /// Whether `aud` names `audience`.
    pub fn has_audience(&self, audience: &str) -> bool {
        self.claims.audience.iter().any(|a| a == audience)
    }
}

/// `--identity-token`: the token text, or the path of a file holding it (as cosign accepts).
pub fn explicit_token(value: &str) -> Result<IdentityToken, OidcError> {
    let path = std::path::Path::new(value);
    // An existing file wins: a token is never also the name of a file in the working folder.
    if !value.is_empty() && value.len() < 4096 && path.is_file() {
        let bytes = read_bounded(path)?;
        let text = String::from_utf8(bytes).map_err(|_| OidcError::Malformed {
            reason: "token file is not utf-8",
        })?;
        return IdentityToken::parse(&text);
    }
    IdentityToken::parse(value)
}

fn read_bounded(path: &std::path::Path) -> Result<Vec<u8>, OidcError> {
    use std::io::Read as _;
    let file_err = |source| OidcError::File {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(file_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_SIZE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(file_err)?;
    if bytes.len() > MAX_TOKEN_SIZE {
        return Err(OidcError::TooLarge {
            size: bytes.len(),
            max: MAX_TOKEN_SIZE,
        });
    }
    Ok(bytes)
}

/// Finds a token without user interaction, in order: `explicit` (`--identity-token`),
/// `SIGSTORE_ID_TOKEN`, then the GitHub Actions runner. `Ok(None)` when none is available.
pub fn ambient_token(
    explicit: Option<&str>,
    env: &(impl Environment + ?Sized),
    http: &reqwest::blocking::Client,
) -> Result<Option<(IdentityToken, TokenSource)>, OidcError> {
    if let Some(value) = explicit {
        return Ok(Some((explicit_token(value)?, TokenSource::Explicit)));
    }
    if let Some(token) = env
        .get(SIGSTORE_ID_TOKEN_VAR)
        .filter(|t| !t.trim().is_empty())
    {
        return Ok(Some((
            IdentityToken::parse(token)?,
            TokenSource::SigstoreIdToken,
        )));
    }
    if let Some(url) = env.get(GITHUB_REQUEST_URL_VAR).filter(|u| !u.is_empty()) {
        let bearer = env
            .get(GITHUB_REQUEST_TOKEN_VAR)
            .filter(|t| !t.is_empty())
            .ok_or(OidcError::GitHubTokenVarMissing)?;
        let token = github_actions_token(url, bearer, SIGSTORE_AUDIENCE, http)?;
        return Ok(Some((token, TokenSource::GitHubActions)));
    }
    Ok(None)
}

/// Asks the GitHub Actions runner for a token for `audience`: `GET <url>&audience=<aud>` with
/// `Authorization: bearer <request token>`, answered with `{"value": "<jwt>"}`.
pub fn github_actions_token(
    request_url: &str,
    bearer: &str,
    audience: &str,
    http: &reqwest::blocking::Client,
) -> Result<IdentityToken, OidcError> {
    let separator = if request_url.contains('?') { '&' } else { '?' };
    let url = format!("{request_url}{separator}audience={audience}");
    // The request URL carries no secret, but never print more than its path.
    let shown = request_url
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let fail = |reason: String| OidcError::GitHubRequest {
        url: shown.clone(),
        reason,
    };
    let response = http
        .get(&url)
        .header("Authorization", format!("bearer {bearer}"))
        .header("Accept", "application/json")
        .send()
        .map_err(|e| fail(e.without_url().to_string()))?;
    let status = response.status();
    let body = crate::foundation::http::read_body(response, MAX_TOKEN_SIZE * 2)
        .map_err(|e| fail(e.to_string()))?;
    if !status.is_success() {
        return Err(fail(format!("HTTP {}", status.as_u16())));
    }
    #[derive(serde::Deserialize)]
    struct Wire {
        value: String,
    }
    let wire: Wire = serde_json::from_slice(&body)
        .map_err(|e| fail(format!("response is not {{\"value\": ...}}: {e}")))?;
    IdentityToken::parse(&wire.value)
}

#[cfg(test)]
pub(crate) fn test_jwt(claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","kid":"k1"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{header}.{body}.c2ln")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_claims_with_string_or_array_audience() {
        let t = IdentityToken::parse(&test_jwt(&json!({
            "iss": "https://token.actions.githubusercontent.com",
            "sub": "repo:o/r:ref:refs/heads/main",
            "aud": "sigstore",
            "exp": 1700000000
        })))
        .unwrap();
        assert_eq!(t.claims().audience, vec!["sigstore".to_string()]);
        assert_eq!(t.challenge(), "repo:o/r:ref:refs/heads/main");
        assert_eq!(t.claims().expires_at, Some(1700000000));
        let t = IdentityToken::parse(&test_jwt(&json!({
            "iss": "i", "sub": "s", "aud": ["a", "sigstore"], "email": "me@example.com"
        })))
        .unwrap();
        assert!(t.has_audience("sigstore"));
        assert_eq!(t.challenge(), "me@example.com");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let jwt = test_jwt(&json!({"iss": "i", "sub": "s", "aud": "sigstore"}));
        let t = IdentityToken::parse(&jwt).unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains(&jwt[..20]), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn malformed_tokens_are_refused_by_reason() {
        assert!(matches!(
            IdentityToken::parse("abc"),
            Err(OidcError::Malformed {
                reason: "expected three dot-separated parts"
            })
        ));
        assert!(matches!(
            IdentityToken::parse("a.b.c.d"),
            Err(OidcError::Malformed { .. })
        ));
        assert!(matches!(
            IdentityToken::parse("a.!!!.c"),
            Err(OidcError::Malformed {
                reason: "claims are not base64url"
            })
        ));
        let not_json = format!("a.{}.c", URL_SAFE_NO_PAD.encode(b"[1,2"));
        assert!(matches!(
            IdentityToken::parse(&not_json),
            Err(OidcError::Claims { .. })
        ));
        let no_aud = test_jwt(&json!({"iss": "i", "sub": "s"}));
        assert!(matches!(
            IdentityToken::parse(&no_aud),
            Err(OidcError::MissingClaim { claim: "aud" })
        ));
        let huge = "a".repeat(MAX_TOKEN_SIZE + 1);
        assert!(matches!(
            IdentityToken::parse(&huge),
            Err(OidcError::TooLarge { .. })
        ));
        // Arbitrary bytes never panic.
        for s in ["..", ".", "\u{0}.\u{0}.\u{0}", "a.=.b", "a.eyJ.b"] {
            assert!(IdentityToken::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn explicit_token_reads_a_file_or_the_text() {
        let jwt = test_jwt(&json!({"iss": "i", "sub": "s", "aud": "sigstore"}));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{jwt}\n")).unwrap();
        let from_file = explicit_token(path.to_str().unwrap()).unwrap();
        let from_text = explicit_token(&jwt).unwrap();
        assert_eq!(from_file.expose_secret(), jwt);
        assert_eq!(from_text.expose_secret(), jwt);
    }

    #[test]
    fn ambient_order_is_explicit_then_sigstore_id_token_then_github() {
        let http = crate::foundation::http::client().unwrap();
        let a = test_jwt(&json!({"iss": "a", "sub": "s", "aud": "sigstore"}));
        let b = test_jwt(&json!({"iss": "b", "sub": "s", "aud": "sigstore"}));
        let env: &[(&str, &str)] = &[
            (SIGSTORE_ID_TOKEN_VAR, &b),
            // Would fail if tried: nothing listens there.
            (GITHUB_REQUEST_URL_VAR, "http://127.0.0.1:1/token?x=1"),
            (GITHUB_REQUEST_TOKEN_VAR, "t"),
        ];
        let (t, source) = ambient_token(Some(&a), env, &http).unwrap().unwrap();
        assert_eq!(
            (t.claims().issuer.as_str(), source),
            ("a", TokenSource::Explicit)
        );
        let (t, source) = ambient_token(None, env, &http).unwrap().unwrap();
        assert_eq!(
            (t.claims().issuer.as_str(), source),
            ("b", TokenSource::SigstoreIdToken)
        );
        let none: &[(&str, &str)] = &[];
        assert!(ambient_token(None, none, &http).unwrap().is_none());
        let half: &[(&str, &str)] = &[(GITHUB_REQUEST_URL_VAR, "http://127.0.0.1:1/t")];
        assert!(matches!(
            ambient_token(None, half, &http),
            Err(OidcError::GitHubTokenVarMissing)
        ));
    }
}
