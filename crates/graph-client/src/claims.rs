//! Best-effort reading of an access token's claims for the pre-flight check. Never trusted beyond it.

use base64::Engine;
use serde::Deserialize;

/// The claims the pre-flight check looks at.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct TokenClaims {
    #[serde(default)]
    pub tid: Option<String>,
    #[serde(default)]
    pub appid: Option<String>,
    /// App-only permissions.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Delegated permissions, space separated.
    #[serde(default)]
    pub scp: Option<String>,
    #[serde(default)]
    pub exp: Option<u64>,
    /// The signed-in person's user name, in delegated tokens.
    #[serde(default)]
    pub upn: Option<String>,
}

impl TokenClaims {
    /// Decodes the payload of a JWT without verifying it; `None` if it is not JWT-shaped.
    pub fn decode(token: &str) -> Option<Self> {
        let payload = token.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// All permissions the token carries, app roles and delegated scopes alike.
    pub fn permissions(&self) -> Vec<String> {
        let mut p = self.roles.clone();
        if let Some(scp) = &self.scp {
            p.extend(scp.split_whitespace().map(str::to_string));
        }
        p
    }

    pub fn has(&self, permission: &str) -> bool {
        self.permissions()
            .iter()
            .any(|p| p.eq_ignore_ascii_case(permission))
    }
}
