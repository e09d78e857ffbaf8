//! National clouds and the endpoints a run talks to.

use crate::GraphClientError;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use url::Url;

/// The Microsoft clouds Graph is offered in (graph-facts §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cloud {
    #[default]
    Global,
    UsGov,
    UsGovDod,
    China,
}

impl Cloud {
    pub const ALL: [Cloud; 4] = [Cloud::Global, Cloud::UsGov, Cloud::UsGovDod, Cloud::China];

    /// The cloud's name on the command line, in profiles and tenants files.
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGov => "usgov",
            Cloud::UsGovDod => "usgov-dod",
            Cloud::China => "china",
        }
    }

    pub fn graph_root(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGov => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    pub fn login_host(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }
}

impl FromStr for Cloud {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "global" | "public" | "azurepubliccloud" => Ok(Cloud::Global),
            "usgov" | "gcchigh" | "azureusgovernment" => Ok(Cloud::UsGov),
            "usgov-dod" | "dod" => Ok(Cloud::UsGovDod),
            "china" | "azurechinacloud" => Ok(Cloud::China),
            _ => Err(format!(
                "unknown cloud {s:?}: expected global, usgov, usgov-dod or china"
            )),
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where Graph and the token endpoint are, after overrides; always https unless loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub graph: Url,
    pub login: Url,
    /// The `.default` scope's resource: the cloud's Graph root, even when `graph` is overridden for tests.
    pub scope_resource: String,
}

impl Endpoints {
    pub fn new(
        cloud: Cloud,
        graph_url: Option<&str>,
        login_url: Option<&str>,
    ) -> Result<Self, GraphClientError> {
        let graph = checked_url(graph_url.unwrap_or(cloud.graph_root()))?;
        let login = checked_url(login_url.unwrap_or(cloud.login_host()))?;
        Ok(Endpoints {
            graph,
            login,
            scope_resource: cloud.graph_root().to_string(),
        })
    }

    /// `{graph}/{version}/{path}`, with `path` relative like `/deviceManagement/...`.
    pub fn graph_url(&self, version: &str, path: &str) -> String {
        format!(
            "{}/{}/{}",
            self.graph.as_str().trim_end_matches('/'),
            version,
            path.trim_start_matches('/')
        )
    }

    pub fn token_url(&self, tenant: &str) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.login.as_str().trim_end_matches('/'),
            tenant
        )
    }
}

/// Parses an endpoint URL and refuses plain http to anything but a loopback address.
pub fn checked_url(raw: &str) -> Result<Url, GraphClientError> {
    let url = Url::parse(raw).map_err(|e| GraphClientError::InvalidUrl {
        url: raw.to_string(),
        reason: e.to_string(),
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(GraphClientError::InvalidUrl {
            url: raw.to_string(),
            reason: "plain http is accepted only for loopback addresses (127.0.0.0/8, ::1, localhost); use https".into(),
        }),
        other => Err(GraphClientError::InvalidUrl { url: raw.to_string(), reason: format!("unsupported scheme {other:?}") }),
    }
}

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cloud_has_its_graph_and_login_hosts() {
        let e = Endpoints::new(Cloud::UsGovDod, None, None).unwrap();
        assert_eq!(e.graph.as_str(), "https://dod-graph.microsoft.us/");
        assert_eq!(e.login.as_str(), "https://login.microsoftonline.us/");
        assert_eq!(
            "china".parse::<Cloud>().unwrap().graph_root(),
            "https://microsoftgraph.chinacloudapi.cn"
        );
        assert!("mars".parse::<Cloud>().is_err());
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:1",
            "http://localhost:3000",
            "https://graph.example",
        ] {
            assert!(checked_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1",
            "http://graph.microsoft.com",
            "http://192.168.1.1:80",
            "ftp://127.0.0.1",
            "not a url",
        ] {
            assert!(checked_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn graph_urls_join_version_and_path() {
        let e = Endpoints::new(Cloud::Global, Some("http://127.0.0.1:9/"), None).unwrap();
        assert_eq!(
            e.graph_url("beta", "/$batch"),
            "http://127.0.0.1:9/beta/$batch"
        );
        assert_eq!(e.scope_resource, "https://graph.microsoft.com");
    }
}
