//! RFC 7512 `pkcs11:` URIs, the subset cosign reads: path attributes `token`, `slot-id`,
//! `object`, `id`, `type` and query attributes `module-path`, `module-name`, `pin-value`,
//! `pin-source`. Values are percent-decoded; a PIN is held in a redacting type.

use std::fmt;
use std::path::PathBuf;

use crate::evidence::sign::keys::SecretText;

/// Longest attribute value kept (labels and ids are short).
const MAX_VALUE: usize = 1024;

/// A parsed `pkcs11:` URI.
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub slot_id: Option<u64>,
    /// CKA_LABEL of the key.
    pub object: Option<String>,
    /// CKA_ID of the key (raw bytes).
    pub id: Option<Vec<u8>>,
    pub module_path: Option<PathBuf>,
    pub module_name: Option<String>,
    pub pin_value: Option<SecretText>,
    /// `pin-source`: a `file:` URI or path whose first line is the PIN.
    pub pin_source: Option<String>,
}

impl Clone for Pkcs11Uri {
    fn clone(&self) -> Pkcs11Uri {
        Pkcs11Uri {
            token: self.token.clone(),
            slot_id: self.slot_id,
            object: self.object.clone(),
            id: self.id.clone(),
            module_path: self.module_path.clone(),
            module_name: self.module_name.clone(),
            pin_value: self
                .pin_value
                .as_ref()
                .map(|p| SecretText::new(p.expose().to_owned())),
            pin_source: self.pin_source.clone(),
        }
    }
}

impl PartialEq for Pkcs11Uri {
    fn eq(&self, other: &Pkcs11Uri) -> bool {
        self.to_string() == other.to_string()
            && self.pin_value.as_ref().map(SecretText::expose)
                == other.pin_value.as_ref().map(SecretText::expose)
    }
}

impl Eq for Pkcs11Uri {}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pkcs11Uri({self})")
    }
}

impl fmt::Display for Pkcs11Uri {
    /// The URI with `pin-value` shown as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path = Vec::new();
        if let Some(t) = &self.token {
            path.push(format!("token={}", encode(t.as_bytes())));
        }
        if let Some(s) = self.slot_id {
            path.push(format!("slot-id={s}"));
        }
        if let Some(o) = &self.object {
            path.push(format!("object={}", encode(o.as_bytes())));
        }
        if let Some(id) = &self.id {
            let hex: String = id.iter().map(|b| format!("%{b:02x}")).collect();
            path.push(format!("id={hex}"));
        }
        let mut query = Vec::new();
        if let Some(p) = &self.module_path {
            query.push(format!(
                "module-path={}",
                encode(p.to_string_lossy().as_bytes())
            ));
        }
        if let Some(n) = &self.module_name {
            query.push(format!("module-name={}", encode(n.as_bytes())));
        }
        if self.pin_value.is_some() {
            query.push("pin-value=***".to_owned());
        }
        if let Some(s) = &self.pin_source {
            query.push(format!("pin-source={}", encode(s.as_bytes())));
        }
        write!(f, "pkcs11:{}", path.join(";"))?;
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            let c = b as char;
            if c.is_ascii_alphanumeric() || "-._~:[]@!$'()*+,=/&".contains(c) {
                c.to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Why a `pkcs11:` URI does not parse. Never carries a PIN.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("pkcs11 uri is malformed: {reason}")]
pub struct Pkcs11UriError {
    pub reason: String,
}

fn bad(reason: impl Into<String>) -> Pkcs11UriError {
    Pkcs11UriError {
        reason: reason.into(),
    }
}

/// Percent-decodes `value` (RFC 3986 §2.1); a stray `%` is an error.
fn decode(name: &str, value: &str) -> Result<Vec<u8>, Pkcs11UriError> {
    if value.len() > MAX_VALUE {
        return Err(bad(format!("{name} is longer than {MAX_VALUE} bytes")));
    }
    let raw = value.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(format!("{name} has a malformed percent escape")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn decode_text(name: &str, value: &str) -> Result<String, Pkcs11UriError> {
    String::from_utf8(decode(name, value)?).map_err(|_| bad(format!("{name} is not utf-8")))
}

impl Pkcs11Uri {
    /// Parses `pkcs11:PATH[?QUERY]`. Needs a token (`token` or `slot-id`) and a key (`object`
    /// or `id`), as cosign does; refuses both `pin-value` and `pin-source` (RFC 7512 §2.4), a
    /// relative `module-path`, and repeated attributes.
    pub fn parse(uri: &str) -> Result<Pkcs11Uri, Pkcs11UriError> {
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| bad("does not start with pkcs11:"))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, q),
            None => (rest, ""),
        };
        let mut out = Pkcs11Uri {
            token: None,
            slot_id: None,
            object: None,
            id: None,
            module_path: None,
            module_name: None,
            pin_value: None,
            pin_source: None,
        };
        let mut seen = std::collections::BTreeSet::new();
        let pairs = path
            .split(';')
            .map(|a| (true, a))
            // cosign tolerates `;` between query attributes.
            .chain(query.split(['&', ';']).map(|a| (false, a)))
            .filter(|(_, a)| !a.is_empty());
        for (in_path, attr) in pairs {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| bad(format!("attribute {attr:?} has no '='")))?;
            if !seen.insert(name.to_owned()) {
                return Err(bad(format!("attribute {name} is repeated")));
            }
            match (in_path, name) {
                (true, "token") => out.token = Some(decode_text(name, value)?),
                (true, "object") => out.object = Some(decode_text(name, value)?),
                (true, "id") => out.id = Some(decode(name, value)?),
                (true, "slot-id") => {
                    out.slot_id = Some(
                        decode_text(name, value)?
                            .parse()
                            .map_err(|_| bad("slot-id is not a number"))?,
                    )
                }
                (true, "type") => {
                    let t = decode_text(name, value)?;
                    if !matches!(t.as_str(), "private" | "public") {
                        return Err(bad(format!("type={t} does not name a key pair half")));
                    }
                }
                (false, "module-path") => {
                    let p = PathBuf::from(decode_text(name, value)?);
                    if !p.is_absolute() {
                        return Err(bad("module-path must be absolute"));
                    }
                    out.module_path = Some(p);
                }
                (false, "module-name") => out.module_name = Some(decode_text(name, value)?),
                (false, "pin-value") => {
                    out.pin_value = Some(SecretText::new(decode_text(name, value)?))
                }
                (false, "pin-source") => out.pin_source = Some(decode_text(name, value)?),
                // Other standard and vendor (x-) attributes narrow the search in ways this
                // signer does not need; they are accepted and ignored.
                _ => {}
            }
        }
        if out.pin_value.is_some() && out.pin_source.is_some() {
            return Err(bad("give pin-value or pin-source, not both"));
        }
        if out.token.is_none() && out.slot_id.is_none() {
            return Err(bad("name the token with token= or slot-id="));
        }
        if out.object.is_none() && out.id.is_none() {
            return Err(bad("name the key with object= or id="));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cosign_style_uri() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=custody%20ci;object=signer;type=private;id=%01%a0?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("custody ci"));
        assert_eq!(u.object.as_deref(), Some("signer"));
        assert_eq!(u.id.as_deref(), Some(&[1u8, 0xa0][..]));
        assert_eq!(
            u.module_path.as_deref(),
            Some(std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        assert_eq!(u.pin_value.as_ref().map(SecretText::expose), Some("1234"));
        let shown = u.to_string();
        assert!(!shown.contains("1234"), "{shown}");
        assert!(shown.contains("pin-value=***"));
        assert!(!format!("{u:?}").contains("1234"));
    }

    #[test]
    fn semicolons_in_query_and_slot_ids() {
        let u = Pkcs11Uri::parse("pkcs11:slot-id=7;id=%02?module-name=softhsm2;pin-source=file:/p")
            .unwrap();
        assert_eq!(u.slot_id, Some(7));
        assert_eq!(u.module_name.as_deref(), Some("softhsm2"));
        assert_eq!(u.pin_source.as_deref(), Some("file:/p"));
    }

    #[test]
    fn malformed_uris_are_refused() {
        let table = [
            ("pkcs11:object=k", "name the token"),
            ("pkcs11:token=t", "name the key"),
            ("pkcs11:token=t;object=k;token=u", "repeated"),
            (
                "pkcs11:token=t;object=k?pin-value=1&pin-source=file:/x",
                "not both",
            ),
            ("pkcs11:token=t;object=k?module-path=lib.so", "absolute"),
            ("pkcs11:token=t;id=%zz", "percent"),
            ("pkcs11:token=t;id=%0", "percent"),
            ("pkcs11:token=t;object", "no '='"),
            ("pkcs11:slot-id=x;object=k", "slot-id"),
            ("pkcs11:token=t;object=k;type=cert", "key pair"),
            ("pkcs11:token=%ff;object=k", "utf-8"),
        ];
        for (uri, why) in table {
            match Pkcs11Uri::parse(uri) {
                Err(Pkcs11UriError { reason }) => {
                    assert!(reason.contains(why), "{uri}: {reason}")
                }
                other => panic!("{uri}: {other:?}"),
            }
        }
    }

    #[test]
    fn pin_never_appears_in_errors() {
        let err = Pkcs11Uri::parse("pkcs11:token=t?pin-value=s3cret").unwrap_err();
        assert!(!err.to_string().contains("s3cret"));
    }
}
