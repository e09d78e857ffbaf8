//! Listing devices over many tenants (`devices --tenants`): each tenant's devices from one
//! source, with a read-only sign-in of its own; a tenant that cannot be read is reported, and the
//! others go on.

use super::{Blocked, Connector};
use crate::{Action, Materialized, OpenSource, RotationError, SourceSpec, TenantEntry};

/// What one tenant's listing gave.
#[derive(Debug)]
pub enum TenantListing {
    Listed(Materialized),
    /// It could not be signed in to for reading.
    Blocked(Blocked),
    /// Signed in, but the listing failed.
    Failed(RotationError),
}

/// Lists `spec`'s devices in each tenant, in order, handing each result to `each` as it comes;
/// an error `each` returns (writing the output) ends the listing.
pub async fn list_devices(
    tenants: &[TenantEntry],
    connector: &impl Connector,
    spec: &SourceSpec,
    action: Action,
    allow_partial: bool,
    mut each: impl FnMut(&TenantEntry, TenantListing) -> Result<(), RotationError>,
) -> Result<(), RotationError> {
    for t in tenants {
        let source = OpenSource::open(spec)?;
        let got = match connector.connect_to_read(t, source.scopes()).await {
            Err(b) => TenantListing::Blocked(b),
            Ok(client) => match source
                .materialize(Some(&client), action, allow_partial)
                .await
            {
                Ok(m) => TenantListing::Listed(m),
                Err(e) => TenantListing::Failed(e),
            },
        };
        each(t, got)?;
    }
    Ok(())
}
