//! Signing in to each tenant of a run over many: the run's credentials pointed at the tenant (and
//! its own cloud, where the tenants file gives one), the pre-flight, and what an admin does when a
//! tenant is blocked.

use crate::cli::Connection;
use crate::connect::{self, ConnectError};
use rotation::TenantEntry;
use rotation::fleet::{BlockCause, Blocked, Connector, Need, Session, said_once};

pub struct CliConnector {
    pub base: Connection,
}

impl CliConnector {
    /// The run's connection options, pointed at one tenant.
    pub fn connection(&self, t: &TenantEntry) -> Connection {
        let mut conn = self.base.clone();
        conn.tenant = Some(t.tenant_id.to_string());
        // The tenants file's clouds are checked as it is read.
        if let Some(cloud) = t.cloud.as_deref().and_then(|c| c.parse().ok()) {
            conn.cloud = cloud;
        }
        conn
    }

    /// The URL an admin of the tenant opens to consent to the app.
    fn consent_url(&self, t: &TenantEntry) -> String {
        let c = self.connection(t);
        let login = c
            .login_url
            .clone()
            .unwrap_or_else(|| c.cloud.login_host().to_string());
        format!(
            "{}/{}/adminconsent?client_id={}",
            login.trim_end_matches('/'),
            t.tenant_id,
            c.client_id.as_deref().unwrap_or("<client id>")
        )
    }
}

fn refused(e: ConnectError) -> Blocked {
    match e {
        ConnectError::Auth(e) => Blocked {
            cause: BlockCause::of_auth_error(e.as_ref()),
            why: said_once(e.as_ref()),
        },
        ConnectError::Usage(e) => Blocked {
            cause: BlockCause::Failed,
            why: said_once(e.as_ref()),
        },
    }
}

impl Connector for CliConnector {
    async fn connect(&self, tenant: &TenantEntry, need: Need<'_>) -> Result<Session, Blocked> {
        let conn = self.connection(tenant);
        let scopes = connect::delegated_scopes(need.action, need.source_scopes);
        let c = connect::client(&conn, None, None, &scopes).map_err(|e| match e {
            ConnectError::Usage(e) | ConnectError::Auth(e) => Blocked {
                cause: BlockCause::Credentials,
                why: said_once(e.as_ref()),
            },
        })?;
        connect::preflight(&c, need.action, need.lists_devices)
            .await
            .map_err(refused)?;
        let signed_in = rotation::SignedIn {
            tenant: c.tenant.clone(),
            client_id: c.client_id.clone(),
            // The tenant's own cloud (the tenants file's, else the run's), as it was signed in to.
            cloud: conn.cloud,
            as_whom: connect::signed_in_as(&c).await,
        };
        Ok(Session {
            client: c.client,
            signed_in,
        })
    }

    async fn connect_to_read(
        &self,
        tenant: &TenantEntry,
        scopes: &[rotation::Permission],
    ) -> Result<graph_client::GraphClient, Blocked> {
        let conn = self.connection(tenant);
        let mut read = vec![rotation::Permission::ManagedDevicesRead];
        read.extend_from_slice(scopes);
        let c = connect::client(&conn, None, None, &read).map_err(refused)?;
        connect::preflight_read(&c).await.map_err(refused)?;
        Ok(c.client)
    }

    fn advice(&self, t: &TenantEntry, cause: BlockCause) -> String {
        match cause {
            BlockCause::Credentials => "fix the credentials".into(),
            BlockCause::Source => "fix the source".into(),
            BlockCause::NotConsented => format!(
                "the app is not consented in this tenant: an admin of the tenant opens {}",
                self.consent_url(t)
            ),
            BlockCause::Permission => format!(
                "check the app's permissions and admin consent in this tenant (`intune-rotate whoami --tenant {}` lists them)",
                t.tenant_id
            ),
            BlockCause::Failed => {
                "see the reason; `resume --run-dir` tries this tenant again".into()
            }
        }
    }
}
