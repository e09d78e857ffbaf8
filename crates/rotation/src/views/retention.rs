//! How long the audit logs keep events (graph-facts §12): Entra's directory log 7 days on the Free
//! tier and 30 with P1 or P2, read from the tenant's subscribed service plans; Intune's one year.

use graph_client::GraphClient;
use serde_json::Value;
use std::time::Duration;

/// A log's retention, and whether it was read from the tenant or assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub days: u32,
    pub known: bool,
}

impl Retention {
    pub const INTUNE: Retention = Retention {
        days: 365,
        known: true,
    };
    const FREE: u32 = 7;
    const PREMIUM: u32 = 30;

    pub fn kept(self) -> Duration {
        Duration::from_secs(u64::from(self.days) * 86_400)
    }
}

/// The service plans that make Entra keep its logs 30 days.
const PREMIUM_PLANS: [&str; 2] = ["AAD_PREMIUM", "AAD_PREMIUM_P2"];

/// The directory log's retention on this tenant; where the licences cannot be read, the Free
/// tier's, which is the shorter and so never claims more than the log holds.
pub async fn directory(client: &GraphClient) -> Retention {
    match client.get_json_retrying("/subscribedSkus").await {
        Ok(v) => Retention {
            days: if premium(&v) {
                Retention::PREMIUM
            } else {
                Retention::FREE
            },
            known: true,
        },
        Err(e) => {
            tracing::warn!(
                "the tenant's licences could not be read ({e}); the directory audit log is taken to keep 7 days"
            );
            Retention {
                days: Retention::FREE,
                known: false,
            }
        }
    }
}

/// Whether an enabled subscription holds a premium Entra plan that is provisioned.
fn premium(skus: &Value) -> bool {
    skus.get("value")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|s| s.get("capabilityStatus").and_then(Value::as_str) == Some("Enabled"))
        .flat_map(|s| {
            s.get("servicePlans")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .any(|p| {
            let name = p
                .get("servicePlanName")
                .and_then(Value::as_str)
                .unwrap_or("");
            let status = p
                .get("provisioningStatus")
                .and_then(Value::as_str)
                .unwrap_or("Success");
            PREMIUM_PLANS.contains(&name) && status == "Success"
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn skus(status: &str, plan: &str) -> Value {
        json!({"value": [{"capabilityStatus": status, "servicePlans": [{"servicePlanName": plan, "provisioningStatus": "Success"}]}]})
    }

    #[test]
    fn an_enabled_p1_plan_keeps_thirty_days() {
        assert!(premium(&skus("Enabled", "AAD_PREMIUM")));
        assert!(premium(&skus("Enabled", "AAD_PREMIUM_P2")));
    }

    #[test]
    fn a_suspended_subscription_or_no_premium_plan_is_the_free_tier() {
        assert!(!premium(&skus("Suspended", "AAD_PREMIUM")));
        assert!(!premium(&skus("Enabled", "EXCHANGE_S_FOUNDATION")));
    }
}
