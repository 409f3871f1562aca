//! `pkcs11:` keys on a PKCS#11 token (an HSM, a smart card, SoftHSM2). The module comes from
//! the URI's `module-path` or `COSIGN_PKCS11_MODULE_PATH`; the PIN from `pin-value`,
//! `pin-source` (a `file:` URI or path) or `COSIGN_PKCS11_PIN`. The token is found by label
//! (or slot id), the key pair by label and/or id; `CKM_ECDSA` signs the digest on the token
//! and its raw `r‖s` becomes DER.

use std::path::PathBuf;
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};

use super::pkcs11_uri::Pkcs11Uri;
use super::{KeyEnv, KmsError, check_signature, raw_to_der};
use crate::evidence::sign::keys::{PublicKey, SecretText};
use crate::evidence::sign::{KeyBackend, SignError};

const SERVICE: &str = "pkcs#11";
/// DER of the P-256 curve OID (1.2.840.10045.3.1.7), as CKA_EC_PARAMS holds it.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// A PIN file is one short line.
const MAX_PIN_FILE: u64 = 4096;

/// A key pair on a token, with a logged-in session when a PIN was given.
pub struct Pkcs11Key {
    session: Mutex<Session>,
    private: Option<ObjectHandle>,
    reference: String,
    public: PublicKey,
    // Kept last so the session closes before the module is unloaded.
    _context: Pkcs11,
}

impl std::fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pkcs11Key({})", self.reference)
    }
}

fn p11(operation: &'static str) -> impl Fn(cryptoki::error::Error) -> KmsError {
    move |e| KmsError::Pkcs11 {
        operation,
        source: Box::new(e),
    }
}

fn token_err(reason: impl Into<String>) -> KmsError {
    KmsError::Token {
        reason: reason.into(),
    }
}

impl Pkcs11Key {
    /// Loads the module, finds the token and the key pair, and logs in when a PIN is known
    /// (signing needs it; reading the public key does not).
    pub fn open(uri: &Pkcs11Uri, env: &KeyEnv) -> Result<Pkcs11Key, KmsError> {
        let module = uri
            .module_path
            .clone()
            .or_else(|| env.get("COSIGN_PKCS11_MODULE_PATH").map(PathBuf::from))
            .ok_or_else(|| KmsError::Config {
                service: SERVICE,
                reason: "give module-path in the uri or set COSIGN_PKCS11_MODULE_PATH".into(),
            })?;
        let context = Pkcs11::new(&module).map_err(p11("loading the module"))?;
        match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            // Another key in this process opened the same module first.
            Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::CryptokiAlreadyInitialized,
                _,
            )) => {}
            Err(e) => return Err(p11("initialising the module")(e)),
        }
        let slot = context
            .get_slots_with_token()
            .map_err(p11("listing slots"))?
            .into_iter()
            .find(|slot| {
                let by_id = uri.slot_id.is_none_or(|id| slot.id() == id);
                let by_label = uri.token.as_deref().is_none_or(|label| {
                    context
                        .get_token_info(*slot)
                        .is_ok_and(|info| info.label().trim_end() == label)
                });
                by_id && by_label
            })
            .ok_or_else(|| token_err("no token matches the uri's token or slot-id"))?;
        let session = context
            .open_ro_session(slot)
            .map_err(p11("opening a session"))?;
        let template = |class| {
            let mut t = vec![Attribute::Class(class)];
            if let Some(label) = &uri.object {
                t.push(Attribute::Label(label.as_bytes().to_vec()));
            }
            if let Some(id) = &uri.id {
                t.push(Attribute::Id(id.clone()));
            }
            t
        };
        let one = |handles: Vec<ObjectHandle>, what: &str| match handles.as_slice() {
            [h] => Ok(Some(*h)),
            [] => Ok(None),
            _ => Err(token_err(format!(
                "the uri matches {} {what} keys; add id= or object= to pick one",
                handles.len()
            ))),
        };
        let public_handle = one(
            session
                .find_objects(&template(ObjectClass::PUBLIC_KEY))
                .map_err(p11("finding the public key"))?,
            "public",
        )?
        .ok_or_else(|| token_err("no public key on the token matches the uri"))?;
        let public = read_public_key(&session, public_handle)?;
        let private = match pin(uri, env)? {
            Some(pin) => {
                let pin = cryptoki::types::AuthPin::new(pin.expose().into());
                match session.login(UserType::User, Some(&pin)) {
                    Ok(()) => {}
                    Err(cryptoki::error::Error::Pkcs11(
                        cryptoki::error::RvError::UserAlreadyLoggedIn,
                        _,
                    )) => {}
                    Err(e) => return Err(p11("logging in")(e)),
                }
                one(
                    session
                        .find_objects(&template(ObjectClass::PRIVATE_KEY))
                        .map_err(p11("finding the private key"))?,
                    "private",
                )?
            }
            None => None,
        };
        Ok(Pkcs11Key {
            session: Mutex::new(session),
            private,
            reference: uri.to_string(),
            public,
            _context: context,
        })
    }
}

/// The PIN from the URI, a pin-source file, or `COSIGN_PKCS11_PIN`.
fn pin(uri: &Pkcs11Uri, env: &KeyEnv) -> Result<Option<SecretText>, KmsError> {
    if let Some(p) = &uri.pin_value {
        return Ok(Some(SecretText::new(p.expose().to_owned())));
    }
    if let Some(source) = &uri.pin_source {
        use std::io::Read as _;
        let path = PathBuf::from(source.strip_prefix("file:").unwrap_or(source));
        let mut text = String::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_PIN_FILE).read_to_string(&mut text))
            .map_err(|_| token_err(format!("cannot read pin-source {}", path.display())))?;
        let text = zeroize::Zeroizing::new(text);
        let line = text.lines().next().unwrap_or_default();
        return Ok(Some(SecretText::new(line.to_owned())));
    }
    Ok(env
        .get("COSIGN_PKCS11_PIN")
        .map(|p| SecretText::new(p.to_owned())))
}

fn read_public_key(session: &Session, handle: ObjectHandle) -> Result<PublicKey, KmsError> {
    let attributes = session
        .get_attributes(handle, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(p11("reading the public key"))?;
    let (mut params, mut point) = (None, None);
    for a in attributes {
        match a {
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    let (Some(params), Some(point)) = (params, point) else {
        return Err(token_err("the public key is not an EC key"));
    };
    if params != P256_PARAMS {
        return Err(KmsError::UnsupportedKey {
            service: SERVICE,
            found: format!("EC curve parameters {}", hex::encode(&params)),
        });
    }
    let sec1 = unwrap_ec_point(&point)?;
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1)
        .map_err(|_| token_err("CKA_EC_POINT is not a P-256 point"))?;
    Ok(PublicKey::EcdsaP256(key))
}

/// CKA_EC_POINT is a DER OCTET STRING around the point; some tokens give the bare point.
fn unwrap_ec_point(point: &[u8]) -> Result<&[u8], KmsError> {
    match point {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() && rest.len() == 65 => Ok(rest),
        [0x04, ..] if point.len() == 65 => Ok(point),
        _ => Err(token_err("CKA_EC_POINT is not an uncompressed P-256 point")),
    }
}

impl KeyBackend for Pkcs11Key {
    fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SignError> {
        let err = |source| SignError::Key {
            key: self.reference.clone(),
            source,
        };
        let Some(private) = self.private else {
            return Err(err(token_err(
                "no PIN, or no private key matches the uri: give pin-value, pin-source or COSIGN_PKCS11_PIN",
            )));
        };
        let raw = {
            let session = self
                .session
                .lock()
                .map_err(|_| err(token_err("the session lock is poisoned")))?;
            session
                .sign(&Mechanism::Ecdsa, private, digest)
                .map_err(|e| err(p11("signing")(e)))?
        };
        let der = raw_to_der(SERVICE, &raw).map_err(err)?;
        check_signature(SERVICE, &self.public, digest, &der).map_err(err)?;
        Ok(der)
    }

    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn key_id(&self) -> String {
        self.reference.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_points_are_unwrapped() {
        let mut bare = vec![4u8];
        bare.extend([9u8; 64]);
        assert_eq!(unwrap_ec_point(&bare).unwrap(), &bare[..]);
        let mut wrapped = vec![4u8, 65];
        wrapped.extend(&bare);
        assert_eq!(unwrap_ec_point(&wrapped).unwrap(), &bare[..]);
        for bad in [&[][..], &[4, 2, 1][..], &wrapped[..66], &[3u8; 65][..]] {
            assert!(matches!(unwrap_ec_point(bad), Err(KmsError::Token { .. })));
        }
    }

    #[test]
    fn missing_module_is_named() {
        let uri = Pkcs11Uri::parse("pkcs11:token=t;object=k").unwrap();
        let err = Pkcs11Key::open(&uri, &KeyEnv::default()).unwrap_err();
        assert!(matches!(err, KmsError::Config { .. }), "{err:?}");
        let uri =
            Pkcs11Uri::parse("pkcs11:token=t;object=k?module-path=/nonexistent/lib.so").unwrap();
        let err = Pkcs11Key::open(&uri, &KeyEnv::default()).unwrap_err();
        assert!(
            matches!(
                err,
                KmsError::Pkcs11 {
                    operation: "loading the module",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
