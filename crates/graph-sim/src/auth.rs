//! The token endpoint and bearer-token checks, answering the way Entra and Graph do.

use crate::SimConfig;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Claims of an issued access token (app-only), shaped like Entra's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub tid: String,
    pub appid: String,
    pub idtyp: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Delegated permissions (device code sign-in), space separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    /// The signed-in person, in delegated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
}

/// An Entra-style token failure.
#[derive(Debug)]
pub struct TokenError {
    pub status: u16,
    pub body: Value,
}

fn entra_error(status: u16, error: &str, code: u32, text: &str) -> TokenError {
    let trace = uuid::Uuid::new_v4();
    let correlation = uuid::Uuid::new_v4();
    TokenError {
        status,
        body: json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {}", crate::time::iso(SystemTime::now())),
            "error_codes": [code],
            "timestamp": crate::time::iso(SystemTime::now()),
            "trace_id": trace.to_string(),
            "correlation_id": correlation.to_string(),
            "error_uri": "https://login.microsoftonline.com/error?code=".to_string() + &code.to_string(),
        }),
    }
}

/// A client certificate registered for assertions: its public key and both thumbprints.
pub struct RegisteredCert {
    key: DecodingKey,
    /// base64url SHA-256 of the DER certificate (`x5t#S256`).
    x5t_s256: String,
    /// base64url SHA-1 of the DER certificate (`x5t`, older clients).
    x5t: String,
}

impl std::fmt::Debug for RegisteredCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredCert")
            .field("x5t_s256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}

impl RegisteredCert {
    /// Reads the first CERTIFICATE block of a PEM (other blocks, such as a key, are ignored).
    pub fn from_pem(text: &str) -> Result<Self, String> {
        use base64::Engine;
        use sha1::Digest as _;
        use x509_cert::der::Decode;
        let blocks = pem::parse_many(text).map_err(|e| format!("not a PEM file: {e}"))?;
        let der = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or("no CERTIFICATE block in the PEM")?
            .contents();
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let public = spki.subject_public_key.raw_bytes();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        Ok(RegisteredCert {
            key: DecodingKey::from_rsa_der(public),
            x5t_s256: b64.encode(sha2::Sha256::digest(der)),
            x5t: b64.encode(sha1::Sha1::digest(der)),
        })
    }
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The person a delegated sign-in signs in as (object id, user name, display name); made up.
pub const SIGNED_IN_USER: (&str, &str, &str) = (
    "3f6c2b1a-8d4e-4f70-9a25-6b1c0d2e3f40",
    "rotation.admin@contoso-sim.example",
    "Rotation Admin (simulated)",
);

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The key that signs id tokens (ES256, made at start) and its public JWK.
struct IdTokenKey {
    encoding: EncodingKey,
    kid: String,
    jwk: Value,
}

impl std::fmt::Debug for IdTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl IdTokenKey {
    fn generate() -> Self {
        let key = rcgen::KeyPair::generate().expect("a P-256 key can be made");
        // The uncompressed point: 0x04, x, y.
        let point = key.public_key_raw();
        let (x, y) = point[1..].split_at(32);
        let kid = b64url(&point[1..9]);
        IdTokenKey {
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            jwk: json!({"kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y), "kid": kid, "use": "sig", "alg": "ES256"}),
            kid,
        }
    }
}

#[derive(Debug)]
struct DeviceCodeState {
    client_id: String,
    scp: String,
    approved_at: Instant,
    expires_at: Instant,
    last_poll: Option<Instant>,
}

/// Delegated sign-ins in progress and refresh tokens handed out.
#[derive(Debug, Default)]
struct Flows {
    device_codes: HashMap<String, DeviceCodeState>,
    refresh_tokens: HashMap<String, (String, String)>,
}

#[derive(Debug)]
pub struct Auth {
    flows: std::sync::Mutex<Flows>,
    device_code_approve_after: Duration,
    device_code_interval: Duration,
    revoke_after: Option<Duration>,
    key: Vec<u8>,
    id_key: IdTokenKey,
    cert: Option<RegisteredCert>,
    token_url_base: String,
    tenant: String,
    consented: bool,
    clients: HashMap<String, String>,
    roles: Vec<String>,
    lifetime: std::time::Duration,
    federation: crate::federation::Federation,
    /// Tokens whose signature and audience were checked, with their claims: a run presents one
    /// token thousands of times, and each `$batch` item is checked as a call of its own. Expiry
    /// and revocation are checked on every call.
    verified: std::sync::Mutex<HashMap<String, Claims>>,
}

/// Tokens remembered as verified before the memory is cleared: far more than a run holds.
const VERIFIED_KEPT: usize = 10_000;

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Auth {
    pub fn new(config: &SimConfig, key: Vec<u8>, base_url: &str) -> Self {
        let mut clients: HashMap<String, String> = config.extra_clients.iter().cloned().collect();
        clients.insert(config.client_id.clone(), config.client_secret.clone());
        let cert = config.certificate.as_deref().map(|pem| {
            RegisteredCert::from_pem(pem)
                .expect("checked by start_on before the simulator is built")
        });
        Auth {
            flows: std::sync::Mutex::new(Flows::default()),
            device_code_approve_after: config.device_code_approve_after,
            device_code_interval: config.device_code_interval,
            revoke_after: config.revoke_tokens_after,
            key,
            id_key: IdTokenKey::generate(),
            cert,
            token_url_base: base_url.to_string(),
            tenant: config.tenant.clone(),
            consented: config.consented,
            clients,
            roles: config.roles.clone(),
            lifetime: config.token_lifetime,
            federation: crate::federation::Federation::new(
                format!("{base_url}/_oidc"),
                config.identity.federated_subject.clone(),
                config.identity.federated_lifetime,
            ),
            verified: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The tenant in the path and the `client_id` in the form must both be known; returns the
    /// client id and its secret.
    fn known_client<'f>(
        &self,
        tenant: &str,
        form: &'f HashMap<String, String>,
    ) -> Result<(&'f str, &str), TokenError> {
        if !tenant.eq_ignore_ascii_case(&self.tenant) {
            return Err(entra_error(
                400,
                "invalid_request",
                90002,
                &format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            ));
        }
        let client_id = form.get("client_id").map(String::as_str).unwrap_or("");
        if !self.consented && self.clients.contains_key(client_id) {
            // A multi-tenant app no admin of this tenant consented to (graph-facts §9).
            return Err(entra_error(
                400,
                "invalid_client",
                7000229,
                &format!(
                    "The client application {client_id} is missing service principal in the tenant {tenant}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119"
                ),
            ));
        }
        match self.clients.get(client_id) {
            Some(secret) => Ok((client_id, secret.as_str())),
            None => Err(entra_error(
                400,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
                ),
            )),
        }
    }

    /// `POST /{tenant}/oauth2/v2.0/token` with a form body.
    pub fn token(&self, tenant: &str, form: &HashMap<String, String>) -> Result<Value, TokenError> {
        let (client_id, secret) = self.known_client(tenant, form)?;
        match form.get("grant_type").map(String::as_str).unwrap_or("") {
            "client_credentials" => {}
            DEVICE_CODE_GRANT => return self.redeem_device_code(client_id, form),
            "refresh_token" => return self.redeem_refresh_token(client_id, form),
            _ => {
                return Err(entra_error(
                    400,
                    "unsupported_grant_type",
                    70003,
                    "The app requested an unsupported grant type.",
                ));
            }
        }
        let scope = form.get("scope").map(String::as_str).unwrap_or("");
        if !scope.ends_with("/.default") || scope.split_whitespace().count() != 1 {
            return Err(entra_error(
                400,
                "invalid_scope",
                70011,
                &format!(
                    "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
                ),
            ));
        }
        match (form.get("client_secret"), form.get("client_assertion")) {
            (Some(given), _) if given == secret => {}
            (Some(_), _) => {
                return Err(entra_error(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                ));
            }
            (None, Some(assertion)) if self.federation.signed_by_us(assertion) => {
                if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
                    return Err(entra_error(
                        400,
                        "invalid_request",
                        50027,
                        "Invalid client_assertion_type: expected urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
                    ));
                }
                self.federation
                    .check(assertion)
                    .map_err(|r| entra_error(401, "invalid_client", r.code(), r.text()))?;
            }
            (None, Some(assertion)) => {
                let kind = form.get("client_assertion_type").map(String::as_str);
                self.check_assertion(tenant, client_id, kind, assertion)?;
            }
            (None, None) => {
                return Err(entra_error(
                    400,
                    "invalid_request",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                ));
            }
        }
        Ok(self.issue(client_id, None))
    }

    /// A client assertion as Entra checks it: signed (PS256 or RS256) by the registered certificate,
    /// named by its thumbprint, for this token URL, from this client, and within its time range.
    fn check_assertion(
        &self,
        tenant: &str,
        client_id: &str,
        kind: Option<&str>,
        assertion: &str,
    ) -> Result<(), TokenError> {
        if kind != Some(JWT_BEARER) {
            return Err(entra_error(
                400,
                "invalid_request",
                50027,
                "Invalid client_assertion_type: expected urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            ));
        }
        let invalid = |code: u32, text: &str| entra_error(401, "invalid_client", code, text);
        let Some(cert) = &self.cert else {
            return Err(invalid(
                700027,
                "Client assertion failed signature validation: no certificate is registered for this application.",
            ));
        };
        let header = jsonwebtoken::decode_header(assertion)
            .map_err(|_| invalid(50012, "The client assertion is not a well-formed JWT."))?;
        // Entra takes a thumbprint padded or not, in base64url or plain base64 (MSAL pads it).
        let same = |given: Option<&str>, ours: &str| {
            given.is_some_and(|g| {
                g.trim_end_matches('=').replace('+', "-").replace('/', "_") == ours
            })
        };
        let named = match header.alg {
            Algorithm::PS256 | Algorithm::RS256 => {
                same(header.x5t_s256.as_deref(), &cert.x5t_s256)
                    || same(header.x5t.as_deref(), &cert.x5t)
            }
            _ => {
                return Err(invalid(
                    5002738,
                    "The client assertion must be signed with PS256 or RS256.",
                ));
            }
        };
        if !named {
            return Err(invalid(
                700027,
                "Client assertion failed signature validation: the certificate thumbprint (x5t#S256 or x5t) does not match a registered certificate.",
            ));
        }
        let mut v = Validation::new(header.alg);
        v.set_audience(&[format!(
            "{}/{tenant}/oauth2/v2.0/token",
            self.token_url_base
        )]);
        v.set_issuer(&[client_id]);
        v.sub = Some(client_id.to_string());
        // `nbf` is checked when present: MSAL sends none, and Entra accepts that.
        v.validate_nbf = true;
        v.leeway = 60;
        v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        jsonwebtoken::decode::<Value>(assertion, &cert.key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature | K::ImmatureSignature => invalid(
                    700024,
                    "Client assertion is not within its valid time range.",
                ),
                K::InvalidAudience => invalid(
                    700212,
                    "No matching federated identity record found for presented assertion audience.",
                ),
                K::InvalidIssuer | K::InvalidSubject => invalid(
                    700023,
                    "The client assertion's iss and sub must be the client id.",
                ),
                _ => invalid(700027, "Client assertion failed signature validation."),
            }
        })?;
        Ok(())
    }

    /// The issuer the app's federated credential trusts.
    pub fn federation(&self) -> &crate::federation::Federation {
        &self.federation
    }

    /// An app-only access token for `client_id` (a managed identity's), with its lifetime.
    pub fn app_token(&self, client_id: &str) -> (String, Duration) {
        let answer = self.issue(client_id, None);
        let token = answer["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (token, self.lifetime)
    }

    /// A delegated access token for the signed-in person with scopes `scp`, as the Azure CLI
    /// would hold one.
    pub fn user_token(&self, client_id: &str, scp: &str) -> (String, Duration) {
        let answer = self.issue(client_id, Some(scp));
        let token = answer["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (token, self.lifetime)
    }

    /// An access token: app-only with the configured roles, or delegated with `scp` and a refresh token.
    fn issue(&self, client_id: &str, delegated: Option<&str>) -> Value {
        let now = SystemTime::now();
        let claims = Claims {
            aud: "https://graph.microsoft.com".into(),
            iss: format!("https://sts.windows.net/{}/", self.tenant),
            tid: self.tenant.clone(),
            appid: client_id.into(),
            idtyp: if delegated.is_some() { "user" } else { "app" }.into(),
            roles: if delegated.is_some() {
                Vec::new()
            } else {
                self.roles.clone()
            },
            scp: delegated.map(str::to_string),
            upn: delegated.map(|_| SIGNED_IN_USER.1.to_string()),
            exp: unix(now) + self.lifetime.as_secs(),
            nbf: unix(now),
            iat: unix(now),
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.key),
        )
        .expect("HS256 signing with an in-memory key cannot fail");
        let mut answer = json!({"token_type": "Bearer", "expires_in": self.lifetime.as_secs(), "ext_expires_in": self.lifetime.as_secs(), "access_token": token});
        if let Some(scp) = delegated {
            let refresh = uuid::Uuid::new_v4().to_string();
            self.lock_flows()
                .refresh_tokens
                .insert(refresh.clone(), (client_id.to_string(), scp.to_string()));
            answer["refresh_token"] = json!(refresh);
            answer["scope"] = json!(scp);
            // What a client builds its account from: the user's id token and client_info.
            answer["id_token"] = json!(self.id_token(client_id, now));
            let info = json!({"uid": SIGNED_IN_USER.0, "utid": self.tenant});
            answer["client_info"] = json!(b64url(info.to_string().as_bytes()));
        }
        answer
    }

    /// The signed-in user's id token, signed with the key the JWKS publishes.
    fn id_token(&self, client_id: &str, now: SystemTime) -> String {
        let (oid, upn, name) = SIGNED_IN_USER;
        let claims = json!({
            "ver": "2.0",
            "iss": self.issuer(),
            "aud": client_id,
            "sub": oid,
            "oid": oid,
            "tid": self.tenant,
            "preferred_username": upn,
            "name": name,
            "iat": unix(now),
            "nbf": unix(now),
            "exp": unix(now) + self.lifetime.as_secs(),
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.id_key.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.id_key.encoding)
            .expect("ES256 signing with an in-memory key cannot fail")
    }

    /// The v2.0 issuer of this tenant.
    fn issuer(&self) -> String {
        format!("{}/{}/v2.0", self.token_url_base, self.tenant)
    }

    /// `GET /{tenant}/v2.0/.well-known/openid-configuration`, as Entra describes a tenant (the
    /// tenant's id, `common` or `organizations`).
    pub fn openid_configuration(&self, tenant: &str) -> Result<Value, TokenError> {
        let known = ["common", "organizations"]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(tenant))
            || tenant.eq_ignore_ascii_case(&self.tenant);
        if !known {
            return Err(entra_error(
                400,
                "invalid_tenant",
                90002,
                &format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            ));
        }
        let base = &self.token_url_base;
        let issuer_tenant = if tenant.eq_ignore_ascii_case(&self.tenant) {
            self.tenant.as_str()
        } else {
            "{tenantid}"
        };
        Ok(json!({
            "issuer": format!("{base}/{issuer_tenant}/v2.0"),
            "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
            "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
            "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
            "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
            "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
            "userinfo_endpoint": format!("{base}/oidc/userinfo"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "name", "oid", "tid", "preferred_username", "ver"],
            "request_uri_parameter_supported": false,
            "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }))
    }

    /// `GET /common/discovery/instance`: this host is its own cloud, under one alias.
    pub fn instance_discovery(&self, authorization_endpoint: Option<&str>) -> Value {
        let host = self
            .token_url_base
            .split("://")
            .nth(1)
            .unwrap_or(&self.token_url_base);
        let tenant = authorization_endpoint
            .and_then(|a| a.split("://").nth(1))
            .and_then(|rest| rest.split('/').nth(1))
            .filter(|t| !t.is_empty())
            .unwrap_or("common");
        json!({
            "tenant_discovery_endpoint": format!("{}/{tenant}/v2.0/.well-known/openid-configuration", self.token_url_base),
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        })
    }

    /// `GET /{tenant}/discovery/v2.0/keys`: the key that signs id tokens.
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.id_key.jwk.clone()]})
    }

    fn lock_flows(&self) -> std::sync::MutexGuard<'_, Flows> {
        self.flows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `POST /{tenant}/oauth2/v2.0/devicecode`: a code the admin approves (here: after a delay).
    pub fn device_code(
        &self,
        tenant: &str,
        form: &HashMap<String, String>,
    ) -> Result<Value, TokenError> {
        let (client_id, _) = self.known_client(tenant, form)?;
        let scope = form.get("scope").map(String::as_str).unwrap_or("");
        // Delegated permissions without their resource prefix, as `scp` carries them.
        let scp: Vec<&str> = scope
            .split_whitespace()
            .filter(|s| !matches!(*s, "offline_access" | "openid" | "profile"))
            .map(|s| s.rsplit('/').next().unwrap_or(s))
            .collect();
        // `.default` asks for every delegated permission consented to the app (azure-identity
        // always sends it): here, the configured ones.
        let consented = self.roles.join(" ");
        let scp: Vec<&str> = if scp.contains(&".default") {
            consented.split_whitespace().collect()
        } else {
            scp
        };
        if scp.is_empty() {
            return Err(entra_error(
                400,
                "invalid_scope",
                70011,
                &format!(
                    "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
                ),
            ));
        }
        let device_code = uuid::Uuid::new_v4().to_string();
        let user_code: String = device_code
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(9)
            .collect::<String>()
            .to_ascii_uppercase();
        let now = Instant::now();
        self.lock_flows().device_codes.insert(
            device_code.clone(),
            DeviceCodeState {
                client_id: client_id.into(),
                scp: scp.join(" "),
                approved_at: now + self.device_code_approve_after,
                expires_at: now + Duration::from_secs(900),
                last_poll: None,
            },
        );
        let uri = "https://microsoft.com/devicelogin";
        Ok(json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            "expires_in": 900,
            "interval": self.device_code_interval.as_secs(),
            "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
        }))
    }

    fn redeem_device_code(
        &self,
        client_id: &str,
        form: &HashMap<String, String>,
    ) -> Result<Value, TokenError> {
        let code = form.get("device_code").map(String::as_str).unwrap_or("");
        let now = Instant::now();
        let mut flows = self.lock_flows();
        let Some(state) = flows
            .device_codes
            .get_mut(code)
            .filter(|s| s.client_id == client_id)
        else {
            return Err(entra_error(
                400,
                "bad_verification_code",
                70019,
                "Verification code not recognized.",
            ));
        };
        if now >= state.expires_at {
            flows.device_codes.remove(code);
            return Err(entra_error(
                400,
                "expired_token",
                70020,
                "The provided device code has expired.",
            ));
        }
        let too_soon = state
            .last_poll
            .is_some_and(|t| now.duration_since(t) < self.device_code_interval.mul_f64(0.8));
        state.last_poll = Some(now);
        if too_soon {
            return Err(entra_error(
                400,
                "slow_down",
                70016,
                "The client is polling too fast; slow down.",
            ));
        }
        if now < state.approved_at {
            return Err(entra_error(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            ));
        }
        let scp = state.scp.clone();
        flows.device_codes.remove(code);
        drop(flows);
        Ok(self.issue(client_id, Some(&scp)))
    }

    /// A refresh token is good once: the answer carries its replacement.
    fn redeem_refresh_token(
        &self,
        client_id: &str,
        form: &HashMap<String, String>,
    ) -> Result<Value, TokenError> {
        let token = form.get("refresh_token").map(String::as_str).unwrap_or("");
        let found = self.lock_flows().refresh_tokens.remove(token);
        match found {
            Some((owner, scp)) if owner == client_id => Ok(self.issue(client_id, Some(&scp))),
            _ => Err(entra_error(
                400,
                "invalid_grant",
                9002313,
                "Invalid request. The refresh token is malformed, was already used or has been revoked.",
            )),
        }
    }

    /// Checks `Authorization: Bearer ...`; the error is Graph's (code, message) for a 401.
    pub fn check(&self, authorization: Option<&str>) -> Result<Claims, (&'static str, String)> {
        let Some(token) = authorization.and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        }) else {
            return Err((
                "InvalidAuthenticationToken",
                "Access token is empty.".into(),
            ));
        };
        let token = token.trim();
        let known = self
            .verified
            .lock()
            .expect("not poisoned")
            .get(token)
            .cloned();
        let claims = match known {
            Some(claims) => claims,
            None => self.verify(token)?,
        };
        let now = unix(SystemTime::now());
        // As the signature check judges a token's time, with no leeway.
        if claims.exp < now {
            return Err(expired());
        }
        if self
            .revoke_after
            .is_some_and(|r| now >= claims.iat + r.as_secs())
        {
            return Err((
                "InvalidAuthenticationToken",
                "Access token has been revoked.".into(),
            ));
        }
        Ok(claims)
    }

    /// The token's signature, audience and lifetime, checked once; remembered when good.
    fn verify(&self, token: &str) -> Result<Claims, (&'static str, String)> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["https://graph.microsoft.com"]);
        validation.leeway = 0;
        match jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(&self.key),
            &validation,
        ) {
            Ok(data) => {
                let mut verified = self.verified.lock().expect("not poisoned");
                if verified.len() >= VERIFIED_KEPT {
                    verified.clear();
                }
                verified.insert(token.to_string(), data.claims.clone());
                Ok(data.claims)
            }
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                Err(expired())
            }
            Err(_) => Err((
                "InvalidAuthenticationToken",
                "IDX14100: JWT is not well formed.".into(),
            )),
        }
    }
}

/// Graph's answer to an expired token.
fn expired() -> (&'static str, String) {
    (
        "InvalidAuthenticationToken",
        "Lifetime validation failed, the token is expired.".into(),
    )
}
