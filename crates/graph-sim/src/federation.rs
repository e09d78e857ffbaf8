//! Workload identity federation as Entra checks it: a test issuer the app's federated credential
//! trusts signs assertions (as GitHub Actions or Kubernetes would), and the token endpoint accepts
//! one only from that issuer, for that subject, for `api://AzureADTokenExchange`, and in time.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The audience Entra requires of a federated assertion.
pub const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The issuer's key (ES256, made at start) and the one federated credential the app has.
pub struct Federation {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    pub issuer: String,
    pub subject: String,
    pub lifetime: Duration,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// What a minted assertion says; each field defaults to what the app's credential trusts.
#[derive(Debug, Default, Clone)]
pub struct AssertionClaims {
    pub audience: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    /// Seconds from now until it expires; negative for one already expired.
    pub expires_in: Option<i64>,
}

/// Why Entra refused a federated assertion, with its AADSTS code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Expired,
    Issuer,
    Audience,
    Subject,
    Signature,
}

impl Refusal {
    pub fn code(self) -> u32 {
        match self {
            Refusal::Expired => 700024,
            Refusal::Issuer => 700211,
            Refusal::Audience => 700212,
            Refusal::Subject => 700213,
            Refusal::Signature => 700027,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Refusal::Expired => "Client assertion is not within its valid time range.",
            Refusal::Issuer => {
                "No matching federated identity record found for presented assertion issuer."
            }
            Refusal::Audience => {
                "No matching federated identity record found for presented assertion audience."
            }
            Refusal::Subject => {
                "No matching federated identity record found for presented assertion subject."
            }
            Refusal::Signature => "Client assertion failed signature validation.",
        }
    }
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Federation {
    pub fn new(issuer: String, subject: String, lifetime: Duration) -> Self {
        let key = rcgen::KeyPair::generate().expect("a P-256 key can be made");
        let point = key.public_key_raw();
        let (x, y) = point[1..].split_at(32);
        Federation {
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            decoding: DecodingKey::from_ec_components(&b64url(x), &b64url(y))
                .expect("the key's own coordinates decode"),
            kid: format!("sim-federation-{}", b64url(&point[1..9])),
            issuer,
            subject,
            lifetime,
        }
    }

    /// An assertion signed by the issuer.
    pub fn mint(&self, c: &AssertionClaims) -> String {
        let now = unix_now();
        let exp = now + c.expires_in.unwrap_or(self.lifetime.as_secs() as i64);
        let claims = json!({
            "iss": c.issuer.as_deref().unwrap_or(&self.issuer),
            "sub": c.subject.as_deref().unwrap_or(&self.subject),
            "aud": c.audience.as_deref().unwrap_or(EXCHANGE_AUDIENCE),
            "iat": now.min(exp) - 1,
            "nbf": now.min(exp) - 1,
            "exp": exp,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .expect("ES256 signing with an in-memory key cannot fail")
    }

    /// Whether `assertion` names this issuer's key, so the token endpoint checks it here.
    pub fn signed_by_us(&self, assertion: &str) -> bool {
        jsonwebtoken::decode_header(assertion)
            .is_ok_and(|h| h.kid.as_deref() == Some(self.kid.as_str()))
    }

    /// Entra's checks of a federated assertion, in its order: signature, time, issuer, subject,
    /// audience.
    pub fn check(&self, assertion: &str) -> Result<(), Refusal> {
        let mut v = Validation::new(Algorithm::ES256);
        v.validate_aud = false;
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let claims = jsonwebtoken::decode::<Value>(assertion, &self.decoding, &v)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature
                | jsonwebtoken::errors::ErrorKind::ImmatureSignature => Refusal::Expired,
                _ => Refusal::Signature,
            })?
            .claims;
        let text = |k: &str| claims.get(k).and_then(|v| v.as_str()).unwrap_or("");
        if text("iss") != self.issuer {
            return Err(Refusal::Issuer);
        }
        if text("sub") != self.subject {
            return Err(Refusal::Subject);
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == EXCHANGE_AUDIENCE,
            Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(EXCHANGE_AUDIENCE)),
            _ => false,
        };
        if !aud_ok {
            return Err(Refusal::Audience);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed() -> Federation {
        Federation::new(
            "https://issuer.sim.example".into(),
            "repo:example-org/fleet-rotation:ref:refs/heads/main".into(),
            Duration::from_secs(600),
        )
    }

    #[test]
    fn its_own_assertion_is_accepted() {
        let f = fed();
        assert_eq!(f.check(&f.mint(&AssertionClaims::default())), Ok(()));
    }

    #[test]
    fn each_wrong_claim_is_refused_with_its_own_code() {
        let f = fed();
        let with = |c: AssertionClaims| f.check(&f.mint(&c)).unwrap_err();
        assert_eq!(
            with(AssertionClaims {
                expires_in: Some(-5),
                ..Default::default()
            }),
            Refusal::Expired
        );
        assert_eq!(
            with(AssertionClaims {
                audience: Some("api://other".into()),
                ..Default::default()
            }),
            Refusal::Audience
        );
        assert_eq!(
            with(AssertionClaims {
                subject: Some("repo:example-org/other:ref:refs/heads/main".into()),
                ..Default::default()
            }),
            Refusal::Subject
        );
        assert_eq!(
            with(AssertionClaims {
                issuer: Some("https://elsewhere.example".into()),
                ..Default::default()
            }),
            Refusal::Issuer
        );
        let other = fed();
        assert_eq!(
            f.check(&other.mint(&AssertionClaims::default())),
            Err(Refusal::Signature)
        );
    }
}
