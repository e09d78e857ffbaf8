//! Every environment variable the tool reads, in one place.

pub const TENANT: &str = "AZURE_TENANT_ID";
pub const CLIENT_ID: &str = "AZURE_CLIENT_ID";
pub const CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
pub const CERTIFICATE: &str = "AZURE_CLIENT_CERTIFICATE_PATH";
pub const ACCESS_TOKEN: &str = "GRAPH_ACCESS_TOKEN";
