//! What the engine's in-process tests share: the run they ask for, and a client signed in to a
//! simulated tenant.

use graph_client::{Cloud, Credential, Endpoints, GraphClient, SecretString};
use rotation::{Action, Collection, PartialSource, PolicySpec, RunSpec, SourceSpec};

/// A FileVault run over every Mac the tenant lists.
pub fn every_mac() -> RunSpec {
    RunSpec {
        action: Action::FileVault,
        source: SourceSpec::Query {
            collection: Collection::ManagedDevices,
            filter: None,
        },
        policy: PolicySpec::default(),
        via: Collection::ManagedDevices,
        result_names: Vec::new(),
        partial: PartialSource::Refuse,
        viewed: None,
    }
}

/// A client of the simulator at `base_url`, signing in to `tenant` with the app's secret.
pub fn client(base_url: &str, tenant: &str, client_id: &str, secret: &str) -> GraphClient {
    let endpoints = Endpoints::new(Cloud::Global, Some(base_url), Some(base_url)).unwrap();
    let credential = Credential::ClientSecret {
        tenant: tenant.to_string(),
        client_id: client_id.to_string(),
        secret: SecretString::from(secret.to_string()),
    };
    GraphClient::new(endpoints, credential, "beta").unwrap()
}
