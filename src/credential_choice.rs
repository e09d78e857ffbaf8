//! Choosing how to sign in: the credential `--credential` names, or with `auto` the first one the
//! flags and the environment make available, in DefaultAzureCredential's order (graph-facts §13):
//! the environment (a token, certificate, device code or secret), workload identity, managed
//! identity, then the Azure CLI. `AZURE_TOKEN_CREDENTIALS` narrows `auto` as it narrows the SDKs.

use crate::cli::{Connection, CredentialChoice};
use crate::connect_error::ConnectError;
use crate::env;
use anyhow::{Context, anyhow};
use graph_client::{
    AssertionStyle, AzureCli, ClientCertificate, Credential, CredentialKind, FederatedSource,
    IdentityEndpoint, ManagedIdentity, SecretString, UserAssigned,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A credential passed over by `auto`, and why.
#[derive(Debug, Clone)]
pub struct PassedOver {
    pub kind: CredentialKind,
    pub why: String,
}

/// The credential chosen, with what `auto` tried before it.
pub struct Chosen {
    pub credential: Credential,
    pub passed_over: Vec<PassedOver>,
}

/// What one kind finds: ready, not available here (and why), or a fault to stop on.
enum Found {
    Ready(Credential),
    Absent(String),
}

/// The stages of `auto`, each a group `AZURE_TOKEN_CREDENTIALS` can name.
const AUTO_ORDER: [CredentialKind; 7] = [
    CredentialKind::TokenFile,
    CredentialKind::Certificate,
    CredentialKind::DeviceCode,
    CredentialKind::Secret,
    CredentialKind::WorkloadIdentity,
    CredentialKind::ManagedIdentity,
    CredentialKind::AzureCli,
];

/// The inputs a choice reads besides the flags: the tenant and client id after fallbacks, and the
/// permissions a delegated sign-in asks for.
pub struct Inputs<'a> {
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub delegated: &'a [rotation::Permission],
}

pub fn choose(conn: &Connection, inputs: &Inputs<'_>) -> Result<Chosen, ConnectError> {
    let kinds: Vec<CredentialKind> = match conn.credential.unwrap_or(CredentialChoice::Auto) {
        CredentialChoice::Only(kind) => {
            return match find(kind, conn, inputs, true)? {
                Found::Ready(credential) => Ok(Chosen {
                    credential,
                    passed_over: Vec::new(),
                }),
                Found::Absent(why) => Err(absent(kind, why)),
            };
        }
        CredentialChoice::Auto => narrowed()?,
    };
    let mut passed_over = Vec::new();
    for kind in kinds {
        match find(kind, conn, inputs, false)? {
            Found::Ready(credential) => {
                for p in &passed_over {
                    let PassedOver { kind, why } = p;
                    tracing::debug!(%kind, why, "credential passed over");
                }
                return Ok(Chosen {
                    credential,
                    passed_over,
                });
            }
            Found::Absent(why) => passed_over.push(PassedOver { kind, why }),
        }
    }
    let tried: Vec<String> = passed_over
        .iter()
        .map(|p| format!("  {}: {}", p.kind, p.why))
        .collect();
    Err(ConnectError::Usage(anyhow!(
        "no credential: set {} or --client-secret-file (a secret is never taken as a flag value), or use --certificate, --device-code, --token-file / {}, or --credential; tried:\n{}",
        env::CLIENT_SECRET,
        env::ACCESS_TOKEN,
        tried.join("\n")
    )))
}

/// A named credential that is not available: the platform's part is exit 3, a missing input exit 2.
fn absent(kind: CredentialKind, why: String) -> ConnectError {
    let e = anyhow!("--credential {kind}: {why}");
    match kind {
        CredentialKind::AzureCli | CredentialKind::ManagedIdentity => ConnectError::Auth(e),
        _ => ConnectError::Usage(e),
    }
}

/// `auto`'s kinds, narrowed by `AZURE_TOKEN_CREDENTIALS`: `dev` (the Azure CLI), `prod` (the
/// environment, workload and managed identity) or one credential by its SDK name.
fn narrowed() -> Result<Vec<CredentialKind>, ConnectError> {
    let value = std::env::var(env::TOKEN_CREDENTIALS).unwrap_or_default();
    let value = value.trim();
    let environment = &AUTO_ORDER[..4];
    let only = |ks: &[CredentialKind]| Ok(ks.to_vec());
    match value.to_ascii_lowercase().as_str() {
        "" => only(&AUTO_ORDER),
        "dev" => only(&[CredentialKind::AzureCli]),
        "prod" => only(&AUTO_ORDER[..6]),
        "environmentcredential" => only(environment),
        "workloadidentitycredential" => only(&[CredentialKind::WorkloadIdentity]),
        "managedidentitycredential" => only(&[CredentialKind::ManagedIdentity]),
        "azureclicredential" => only(&[CredentialKind::AzureCli]),
        _ => Err(ConnectError::Usage(anyhow!(
            "{}={value:?} is not one of dev, prod, EnvironmentCredential, WorkloadIdentityCredential, ManagedIdentityCredential, AzureCliCredential",
            env::TOKEN_CREDENTIALS
        ))),
    }
}

fn find(
    kind: CredentialKind,
    conn: &Connection,
    inputs: &Inputs<'_>,
    named: bool,
) -> Result<Found, ConnectError> {
    // The app's tenant and id: under `auto` a kind without them is passed over, as the SDKs'
    // EnvironmentCredential is; named, their absence is bad usage.
    let app = || -> Result<Result<(String, String), String>, ConnectError> {
        let missing: Vec<String> = [
            (&inputs.tenant, "--tenant", env::TENANT),
            (&inputs.client_id, "--client-id", env::CLIENT_ID),
        ]
        .iter()
        .filter(|(v, _, _)| v.is_none())
        .map(|(_, flag, var)| format!("{flag} (or {var})"))
        .collect();
        match (&inputs.tenant, &inputs.client_id) {
            (Some(t), Some(c)) => Ok(Ok((t.clone(), c.clone()))),
            _ if named => Err(ConnectError::Usage(anyhow!(
                "{kind}: {} is required",
                missing.join(" and ")
            ))),
            _ => Ok(Err(format!("{} is not set", missing.join(" and ")))),
        }
    };
    Ok(match kind {
        CredentialKind::TokenFile => {
            match file_or_env(conn.token_file.as_deref(), env::ACCESS_TOKEN, "token")? {
                Some(t) => Found::Ready(Credential::StaticToken(SecretString::from(t))),
                None => Found::Absent(format!(
                    "neither --token-file nor {} is set",
                    env::ACCESS_TOKEN
                )),
            }
        }
        CredentialKind::Certificate => match &conn.certificate {
            None => Found::Absent(format!(
                "neither --certificate nor {} is set",
                env::CERTIFICATE
            )),
            Some(path) => {
                let text = std::fs::read(path)
                    .with_context(|| format!("{}: cannot read the certificate", path.display()))?;
                let style = if conn.assertion_rs256 {
                    AssertionStyle::Rs256
                } else {
                    AssertionStyle::Ps256
                };
                let certificate =
                    ClientCertificate::from_pem(&text, &path.display().to_string(), style)
                        .map_err(|e| anyhow!(e))?;
                match app()? {
                    Ok((tenant, client_id)) => Found::Ready(Credential::Certificate {
                        tenant,
                        client_id,
                        certificate,
                    }),
                    Err(why) => Found::Absent(why),
                }
            }
        },
        CredentialKind::DeviceCode if conn.device_code || named => match app()? {
            Ok((tenant, client_id)) => Found::Ready(Credential::DeviceCode {
                tenant,
                client_id,
                scopes: inputs.delegated.iter().map(|s| s.to_string()).collect(),
            }),
            Err(why) => Found::Absent(why),
        },
        CredentialKind::DeviceCode => Found::Absent("only when asked for (--device-code)".into()),
        CredentialKind::Secret => {
            match file_or_env(
                conn.client_secret_file.as_deref(),
                env::CLIENT_SECRET,
                "secret",
            )? {
                Some(secret) => match app()? {
                    Ok((tenant, client_id)) => Found::Ready(Credential::ClientSecret {
                        tenant,
                        client_id,
                        secret: SecretString::from(secret),
                    }),
                    Err(why) => Found::Absent(why),
                },
                None => Found::Absent(format!(
                    "neither --client-secret-file nor {} is set",
                    env::CLIENT_SECRET
                )),
            }
        }
        CredentialKind::WorkloadIdentity => match federated_source(conn)? {
            None => Found::Absent(format!(
                "neither {} (--federated-token-file) nor GitHub Actions' {} and {} are set (a workflow needs `permissions: id-token: write`)",
                env::FEDERATED_TOKEN_FILE,
                env::GITHUB_TOKEN_URL,
                env::GITHUB_TOKEN_BEARER
            )),
            Some(source) => match app()? {
                Ok((tenant, client_id)) => Found::Ready(Credential::WorkloadIdentity {
                    tenant,
                    client_id,
                    source,
                }),
                Err(why) => Found::Absent(why),
            },
        },
        CredentialKind::ManagedIdentity => match identity_endpoint(named)? {
            Err(why) => Found::Absent(why),
            Ok(endpoint) => Found::Ready(Credential::ManagedIdentity(ManagedIdentity {
                endpoint,
                identity: user_assigned(conn, inputs),
            })),
        },
        CredentialKind::AzureCli => match azure_cli_on_path() {
            None => Found::Absent("the Azure CLI (`az`) is not on PATH".into()),
            Some(program) => Found::Ready(Credential::AzureCli(AzureCli {
                program,
                tenant: inputs.tenant.clone(),
            })),
        },
    })
}

fn federated_source(conn: &Connection) -> Result<Option<FederatedSource>, ConnectError> {
    if let Some(path) = &conn.federated_token_file {
        return Ok(Some(FederatedSource::File(path.clone())));
    }
    let url = nonempty(env::GITHUB_TOKEN_URL);
    let bearer = nonempty(env::GITHUB_TOKEN_BEARER);
    let (Some(url), Some(bearer)) = (url, bearer) else {
        return Ok(None);
    };
    let request_url =
        graph_client::checked_url(&url).map_err(|e| anyhow!("{}: {e}", env::GITHUB_TOKEN_URL))?;
    Ok(Some(FederatedSource::GitHubActions {
        request_url,
        request_token: SecretString::from(bearer),
    }))
}

/// The managed identity endpoint the environment names, or IMDS. Under `auto` IMDS is taken only
/// if something answers at its address within a second, as the SDKs probe it.
fn identity_endpoint(named: bool) -> Result<Result<IdentityEndpoint, String>, ConnectError> {
    let url = |var: &str, raw: &str| {
        graph_client::identity_url(raw).map_err(|e| ConnectError::Usage(anyhow!("{var}: {e}")))
    };
    if let Some(endpoint) = nonempty(env::IDENTITY_ENDPOINT) {
        if let Some(header) = nonempty(env::IDENTITY_HEADER) {
            return Ok(Ok(IdentityEndpoint::AppService {
                url: url(env::IDENTITY_ENDPOINT, &endpoint)?,
                header: SecretString::from(header),
            }));
        }
        if nonempty(env::IMDS_ENDPOINT).is_some() {
            let key_dir = nonempty(env::TEST_ARC_KEY_DIR)
                .map(PathBuf::from)
                .unwrap_or_else(arc_key_dir);
            return Ok(Ok(IdentityEndpoint::Arc {
                url: url(env::IDENTITY_ENDPOINT, &endpoint)?,
                key_dir,
            }));
        }
    }
    if nonempty(env::MSI_ENDPOINT).is_some() && !named {
        return Ok(Err(format!(
            "{} is the retired 2017 App Service endpoint; this platform should also set {} and {}",
            env::MSI_ENDPOINT,
            env::IDENTITY_ENDPOINT,
            env::IDENTITY_HEADER
        )));
    }
    let imds = match nonempty(env::TEST_IMDS_URL) {
        Some(raw) => {
            let u = url(env::TEST_IMDS_URL, &raw)?;
            let loopback = u
                .host_str()
                .is_some_and(|h| h == "localhost" || h.starts_with("127.") || h == "[::1]");
            if !loopback {
                return Err(ConnectError::Usage(anyhow!(
                    "{} is for tests and must be a loopback address",
                    env::TEST_IMDS_URL
                )));
            }
            u
        }
        None => url("IMDS", graph_client::IMDS_TOKEN_URL)?,
    };
    if !named && !answers(&imds) {
        return Ok(Err(format!(
            "no {} or {} is set, and nothing answers at IMDS ({})",
            env::IDENTITY_ENDPOINT,
            env::MSI_ENDPOINT,
            imds.host_str().unwrap_or_default()
        )));
    }
    Ok(Ok(IdentityEndpoint::Imds { url: imds }))
}

/// Whether anything accepts a connection at the URL's address within a second.
fn answers(url: &url::Url) -> bool {
    let Ok(addrs) = url.socket_addrs(|| Some(80)) else {
        return false;
    };
    addrs
        .into_iter()
        .any(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

/// The folder the Arc agent keeps its key files in.
fn arc_key_dir() -> PathBuf {
    if cfg!(windows) {
        let data = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
        Path::new(&data)
            .join("AzureConnectedMachineAgent")
            .join("Tokens")
    } else {
        PathBuf::from("/var/opt/azcmagent/tokens")
    }
}

/// A user-assigned identity by the client id (`--client-id`, as the SDKs read `AZURE_CLIENT_ID`),
/// object id or resource id; else the resource's own.
fn user_assigned(conn: &Connection, inputs: &Inputs<'_>) -> UserAssigned {
    if let Some(id) = &conn.identity_object_id {
        UserAssigned::ObjectId(id.clone())
    } else if let Some(id) = &conn.identity_resource_id {
        UserAssigned::ResourceId(id.clone())
    } else if let Some(id) = &inputs.client_id {
        UserAssigned::ClientId(id.clone())
    } else {
        UserAssigned::System
    }
}

/// `az` on PATH (`az.cmd` on Windows, as the CLI installs itself there).
fn azure_cli_on_path() -> Option<PathBuf> {
    let names: &[&str] = if cfg!(windows) {
        &["az.cmd", "az.exe"]
    } else {
        &["az"]
    };
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn nonempty(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// A secret from its file when one is given, else from the environment; trimmed, empty as none.
fn file_or_env(file: Option<&Path>, var: &str, what: &str) -> anyhow::Result<Option<String>> {
    let text = match file {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("{}: cannot read the {what} file", p.display()))?,
        None => std::env::var(var).unwrap_or_default(),
    };
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_string()))
}
