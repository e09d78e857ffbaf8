//! Client certificates: a PEM holding the certificate and its RSA key (either order, PKCS#1 or
//! PKCS#8), and the signed client assertion Entra takes instead of a secret.

use crate::GraphClientError;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use sha1::Digest as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How the assertion is signed and which thumbprint names the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssertionStyle {
    /// PS256 with `x5t#S256` (SHA-256 thumbprint), as current Entra documentation asks.
    #[default]
    Ps256,
    /// RS256 with `x5t` (SHA-1 thumbprint), for tenants and tools that expect the older form.
    Rs256,
}

/// A certificate credential's material. The key is kept as a secret; only thumbprints show in Debug.
#[derive(Clone)]
pub struct ClientCertificate {
    key_pem: SecretString,
    x5t: String,
    x5t_s256: String,
    style: AssertionStyle,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t_s256", &self.x5t_s256)
            .field("style", &self.style)
            .finish_non_exhaustive()
    }
}

const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

fn bad(what: impl Into<String>) -> GraphClientError {
    GraphClientError::Credential(what.into())
}

impl ClientCertificate {
    /// Reads `text` (the contents of `--certificate`); `origin` names the file in errors.
    pub fn from_pem(
        text: &[u8],
        origin: &str,
        style: AssertionStyle,
    ) -> Result<Self, GraphClientError> {
        let blocks =
            pem::parse_many(text).map_err(|e| bad(format!("{origin}: not a PEM file ({e})")))?;
        if blocks.is_empty() {
            let hint = if text.first() == Some(&0x30) {
                " (it looks like a binary PFX/PKCS#12 file, which is not supported: convert it with `openssl pkcs12 -in cert.pfx -out cert.pem -nodes`)"
            } else {
                ""
            };
            return Err(bad(format!("{origin}: no PEM blocks found{hint}")));
        }
        let cert = blocks.iter().find(|b| b.tag() == "CERTIFICATE").ok_or_else(|| bad(format!("{origin}: no CERTIFICATE block; the file must hold the certificate and its private key")))?;
        if blocks.iter().any(|b| b.tag() == "ENCRYPTED PRIVATE KEY") {
            return Err(bad(format!(
                "{origin}: the private key is encrypted; a password-protected key is not supported, export it without a password"
            )));
        }
        let key = blocks
            .iter()
            .find(|b| b.tag() == "PRIVATE KEY" || b.tag() == "RSA PRIVATE KEY")
            .ok_or_else(|| bad(format!("{origin}: no PRIVATE KEY or RSA PRIVATE KEY block; the file must hold the certificate and its private key")))?;
        let key_pem = pem::encode(key);
        EncodingKey::from_rsa_pem(key_pem.as_bytes())
            .map_err(|e| bad(format!("{origin}: the private key is not an RSA key ({e})")))?;
        let der = cert.contents();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        Ok(ClientCertificate {
            key_pem: SecretString::from(key_pem),
            x5t: b64.encode(sha1::Sha1::digest(der)),
            x5t_s256: b64.encode(sha2::Sha256::digest(der)),
            style,
        })
    }

    /// The SHA-256 thumbprint, as the app registration's portal shows it (base64url here).
    pub fn thumbprint(&self) -> &str {
        &self.x5t_s256
    }

    /// A fresh assertion for `token_url`: aud, iss = sub = client id, a new jti, a few minutes' life.
    pub fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
    ) -> Result<SecretString, GraphClientError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut header = match self.style {
            AssertionStyle::Ps256 => Header::new(Algorithm::PS256),
            AssertionStyle::Rs256 => Header::new(Algorithm::RS256),
        };
        match self.style {
            AssertionStyle::Ps256 => header.x5t_s256 = Some(self.x5t_s256.clone()),
            AssertionStyle::Rs256 => header.x5t = Some(self.x5t.clone()),
        }
        let claims = serde_json::json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
        });
        let key = EncodingKey::from_rsa_pem(self.key_pem.expose_secret().as_bytes())
            .map_err(|e| bad(format!("signing key: {e}")))?;
        let jwt = jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| bad(format!("signing the client assertion: {e}")))?;
        Ok(SecretString::from(jwt))
    }
}
