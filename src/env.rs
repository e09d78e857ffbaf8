//! Every environment variable the tool reads, in one place.

pub const TENANT: &str = "AZURE_TENANT_ID";
pub const CLIENT_ID: &str = "AZURE_CLIENT_ID";
pub const CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
pub const CERTIFICATE: &str = "AZURE_CLIENT_CERTIFICATE_PATH";
pub const ACCESS_TOKEN: &str = "GRAPH_ACCESS_TOKEN";
/// Workload identity: the file a platform keeps a federated token in.
pub const FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
/// GitHub Actions' OIDC token endpoint and the job's bearer for it (with `id-token: write`).
pub const GITHUB_TOKEN_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
pub const GITHUB_TOKEN_BEARER: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
/// Managed identity endpoints: App Service and Automation (`IDENTITY_HEADER`), Arc (`IMDS_ENDPOINT`),
/// and the retired 2017 App Service endpoint.
pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
pub const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
pub const IMDS_ENDPOINT: &str = "IMDS_ENDPOINT";
pub const MSI_ENDPOINT: &str = "MSI_ENDPOINT";
/// Narrows `--credential auto` as the Azure SDKs' DefaultAzureCredential is narrowed.
pub const TOKEN_CREDENTIALS: &str = "AZURE_TOKEN_CREDENTIALS";
/// For tests only: IMDS at a loopback address instead of 169.254.169.254.
pub const TEST_IMDS_URL: &str = "INTUNE_ROTATE_TEST_IMDS_URL";
/// For tests only: the folder Arc's key files must be in, instead of the agent's own.
pub const TEST_ARC_KEY_DIR: &str = "INTUNE_ROTATE_TEST_ARC_KEY_DIR";
