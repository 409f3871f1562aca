//! DSSE envelopes (`payload`, `payloadType`, `signatures[{sig, keyid?}]`) and the
//! pre-authentication encoding (PAE) their signatures cover. Writes std padded base64, reads std
//! or URL-safe base64, as the DSSE spec asks of verifiers.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

/// `payloadType` of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Errors reading an envelope.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DsseError {
    #[error("envelope is not valid json: {reason}")]
    Json { reason: String },
    #[error("{field} is not valid base64")]
    BadBase64 { field: &'static str },
    #[error("envelope has no signatures")]
    NoSignatures,
}

/// A DSSE envelope with its payload and signatures decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub payload: Vec<u8>,
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

/// One DSSE signature: raw signature bytes and an optional key id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub sig: Vec<u8>,
    pub keyid: Option<String>,
}

/// The envelope as it appears in JSON (base64 text fields).
#[derive(Serialize, Deserialize)]
pub(crate) struct WireEnvelope {
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<WireSignature>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WireSignature {
    pub sig: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
}

/// Decodes base64 in the std or URL-safe alphabet, padded or not.
pub(crate) fn decode_any_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .ok()
}

/// PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// The bytes the signatures cover.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    pub(crate) fn to_wire(&self) -> WireEnvelope {
        WireEnvelope {
            payload: STANDARD.encode(&self.payload),
            payload_type: self.payload_type.clone(),
            signatures: self
                .signatures
                .iter()
                .map(|s| WireSignature {
                    sig: STANDARD.encode(&s.sig),
                    keyid: s.keyid.clone(),
                })
                .collect(),
        }
    }

    pub(crate) fn from_wire(wire: WireEnvelope) -> Result<Envelope, DsseError> {
        let payload =
            decode_any_base64(&wire.payload).ok_or(DsseError::BadBase64 { field: "payload" })?;
        let signatures = wire
            .signatures
            .into_iter()
            .map(|s| {
                Ok(Signature {
                    sig: decode_any_base64(&s.sig).ok_or(DsseError::BadBase64 {
                        field: "signatures[].sig",
                    })?,
                    keyid: s.keyid,
                })
            })
            .collect::<Result<Vec<_>, DsseError>>()?;
        Ok(Envelope {
            payload,
            payload_type: wire.payload_type,
            signatures,
        })
    }

    /// Parses envelope JSON. Requires at least one signature.
    pub fn from_json(bytes: &[u8]) -> Result<Envelope, DsseError> {
        let wire: WireEnvelope = serde_json::from_slice(bytes).map_err(|e| DsseError::Json {
            reason: e.to_string(),
        })?;
        let env = Envelope::from_wire(wire)?;
        if env.signatures.is_empty() {
            return Err(DsseError::NoSignatures);
        }
        Ok(env)
    }

    /// Envelope JSON as cosign writes it: std padded base64, `keyid` omitted when absent.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_wire()).expect("envelope serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_spec_vector() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(
            pae(IN_TOTO_PAYLOAD_TYPE, b""),
            b"DSSEv1 28 application/vnd.in-toto+json 0 "
        );
    }

    #[test]
    fn writes_std_padded_and_reads_url_safe() {
        let env = Envelope {
            payload: vec![0xfb, 0xff, 0xfe, 0x01],
            payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
            signatures: vec![Signature {
                sig: vec![0xff; 5],
                keyid: None,
            }],
        };
        let json = String::from_utf8(env.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"payload":"+//+AQ==","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"//////8="}]}"#
        );
        let url = json
            .replace("+//+AQ==", "-__-AQ")
            .replace("//////8=", "______8");
        assert_eq!(Envelope::from_json(url.as_bytes()).unwrap(), env);
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        assert!(matches!(
            Envelope::from_json(b"{"),
            Err(DsseError::Json { .. })
        ));
        let bad = br#"{"payload":"%%","payloadType":"t","signatures":[{"sig":"AA=="}]}"#;
        assert_eq!(
            Envelope::from_json(bad),
            Err(DsseError::BadBase64 { field: "payload" })
        );
        let none = br#"{"payload":"AA==","payloadType":"t","signatures":[]}"#;
        assert_eq!(Envelope::from_json(none), Err(DsseError::NoSignatures));
        let keyid =
            br#"{"payload":"AA==","payloadType":"t","signatures":[{"sig":"AA==","keyid":""}]}"#;
        assert_eq!(
            Envelope::from_json(keyid).unwrap().signatures[0]
                .keyid
                .as_deref(),
            Some("")
        );
    }
}
