//! The kinds of credential a run can sign in with, named as the command line and profiles name them.

use std::fmt;

/// One way to prove who the run is. `auto` is not a kind: it is the order these are tried in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// An app registration's client secret.
    Secret,
    /// An app registration's certificate, as a signed assertion.
    Certificate,
    /// A token another issuer signed (GitHub Actions, Kubernetes), exchanged for the app's.
    WorkloadIdentity,
    /// The Azure resource's own identity, from its local endpoint.
    ManagedIdentity,
    /// The Azure CLI's signed-in account (delegated).
    AzureCli,
    /// A person signs in on another device (delegated).
    DeviceCode,
    /// A ready access token; it cannot be refreshed.
    TokenFile,
}

impl CredentialKind {
    pub const ALL: [CredentialKind; 7] = [
        CredentialKind::Secret,
        CredentialKind::Certificate,
        CredentialKind::WorkloadIdentity,
        CredentialKind::ManagedIdentity,
        CredentialKind::AzureCli,
        CredentialKind::DeviceCode,
        CredentialKind::TokenFile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CredentialKind::Secret => "secret",
            CredentialKind::Certificate => "certificate",
            CredentialKind::WorkloadIdentity => "workload-identity",
            CredentialKind::ManagedIdentity => "managed-identity",
            CredentialKind::AzureCli => "azure-cli",
            CredentialKind::DeviceCode => "device-code",
            CredentialKind::TokenFile => "token-file",
        }
    }

    /// Signed in as a person, whose token carries delegated scopes rather than app roles.
    pub fn is_delegated(self) -> bool {
        matches!(self, CredentialKind::AzureCli | CredentialKind::DeviceCode)
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for CredentialKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CredentialKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = CredentialKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown credential {s:?}; one of {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for k in CredentialKind::ALL {
            assert_eq!(k.name().parse::<CredentialKind>(), Ok(k));
        }
        assert!("password".parse::<CredentialKind>().is_err());
    }
}
