//! The simulator against a plain HTTP client that knows nothing of the rest of the project: each
//! behaviour of docs/graph-facts.md it claims to reproduce, checked from the outside.

use graph_sim::{Quota, RetryAfterStyle, SimConfig, SimHandle};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A tenant in the simple forms the tests of other behaviours were written against; the real
/// forms are tried one by one in the tests of graph-facts §11 below.
fn simple(devices: usize) -> SimConfig {
    SimConfig {
        shapes: graph_sim::Shapes::simple(),
        ..config(devices)
    }
}

fn config(devices: usize) -> SimConfig {
    SimConfig {
        devices,
        ..SimConfig::default()
    }
}

struct T {
    sim: SimHandle,
    http: reqwest::Client,
}

impl T {
    async fn new(config: SimConfig) -> T {
        T {
            sim: graph_sim::start(config).await.unwrap(),
            http: http(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url)
    }

    async fn token_with(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let c = self.sim.config();
        let r = self
            .http
            .post(self.url(&format!("/{}/oauth2/v2.0/token", c.tenant)))
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn token(&self) -> String {
        let c = self.sim.config().clone();
        let (status, body) = self
            .token_with(&[
                ("grant_type", "client_credentials"),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    async fn get(&self, token: &str, url: &str) -> (u16, Value) {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            self.url(url)
        };
        let r = self.http.get(url).bearer_auth(token).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .header("Content-Length", "0")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn batch(&self, token: &str, version: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(&format!("/{version}/$batch")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Every page of a listing, following nextLink, bounded.
    async fn all(&self, token: &str, first: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next = Some(first.to_string());
        for _ in 0..1000 {
            let Some(url) = next.take() else { break };
            let (status, page) = self.get(token, &url).await;
            assert_eq!(status, 200, "{page}");
            out.extend(page["value"].as_array().unwrap().iter().cloned());
            next = page["@odata.nextLink"].as_str().map(str::to_string);
            if let Some(n) = &next {
                assert!(
                    n.starts_with(&self.sim.base_url),
                    "nextLink is absolute on the server's own address: {n}"
                );
            }
        }
        assert!(next.is_none(), "paging did not end");
        out
    }
}

fn action_item(id: &str, device: &str, action: &str) -> Value {
    json!({"id": id, "method": "POST", "url": format!("/deviceManagement/managedDevices/{device}/{action}"), "body": {}, "headers": {"Content-Type": "application/json"}})
}

fn item<'a>(answer: &'a Value, id: &str) -> &'a Value {
    answer["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no item {id} in {answer}"))
}

#[tokio::test]
async fn token_failures_answer_like_entra() {
    let t = T::new(config(10)).await;
    let scope = ("scope", "https://graph.microsoft.com/.default");
    let grant = ("grant_type", "client_credentials");
    type Form<'a> = Vec<(&'a str, &'a str)>;
    let cases: [(Form, u16, u64); 4] = [
        (
            vec![
                grant,
                ("client_id", "sim-client"),
                ("client_secret", "wrong"),
                scope,
            ],
            401,
            7000215,
        ),
        (
            vec![
                grant,
                ("client_id", "no-such-app"),
                ("client_secret", "sim-secret"),
                scope,
            ],
            400,
            700016,
        ),
        (
            vec![
                grant,
                ("client_id", "sim-client"),
                ("client_secret", "sim-secret"),
                ("scope", "DeviceManagementManagedDevices.Read.All"),
            ],
            400,
            70011,
        ),
        (
            vec![grant, ("client_id", "sim-client"), scope],
            400,
            7000218,
        ),
    ];
    for (form, status, code) in cases {
        let (s, body) = t.token_with(&form).await;
        assert_eq!(s, status, "{body}");
        assert_eq!(body["error_codes"][0], code, "{body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with(&format!("AADSTS{code}:")),
            "{body}"
        );
        assert!(body["trace_id"].is_string() && body["correlation_id"].is_string());
    }
    let r = t
        .http
        .post(t.url("/00000000-0000-4000-8000-000000000000/oauth2/v2.0/token"))
        .form(&[
            grant,
            ("client_id", "sim-client"),
            ("client_secret", "sim-secret"),
            scope,
        ])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_codes"][0], 90002);
}

#[tokio::test]
async fn graph_calls_check_the_bearer_token_and_its_roles() {
    let t = T::new(SimConfig {
        roles: vec!["DeviceManagementManagedDevices.PrivilegedOperations.All".into()],
        token_lifetime: Duration::from_secs(1),
        ..config(10)
    })
    .await;
    let list = "/beta/deviceManagement/managedDevices";
    let r = t.http.get(t.url(list)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "InvalidAuthenticationToken"
    );
    assert_eq!(t.get("not.a.jwt", list).await.0, 401);
    let token = t.token().await;
    let (status, body) = t.get(&token, list).await;
    assert_eq!(status, 403, "the token lacks a read role: {body}");
    assert_eq!(body["error"]["code"], "Forbidden");
    // The token lives one second: ask (reads only, bounded) until the simulator calls it expired,
    // rather than sleeping a fixed time that a loaded machine could make too short or too long.
    let mut expired = false;
    for _ in 0..100 {
        if t.get(&token, list).await.0 == 401 {
            expired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(expired, "a one-second token expires within ten seconds");
    let mac = t
        .sim
        .tenant()
        .devices
        .iter()
        .find(|d| d.os == "macOS")
        .unwrap()
        .id
        .clone();
    let (status, body) = t
        .post(
            &token,
            &format!("/beta/deviceManagement/managedDevices/{mac}/rotateFileVaultKey"),
        )
        .await;
    assert_eq!(status, 401, "expired: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert_eq!(t.sim.stats().devices_accepted("rotateFileVaultKey"), 0);
}

#[tokio::test]
async fn paging_returns_every_device_exactly_once() {
    let t = T::new(config(2500)).await;
    let token = t.token().await;
    let all = t
        .all(
            &token,
            "/beta/deviceManagement/managedDevices?$select=id,deviceName",
        )
        .await;
    let ids: HashSet<String> = all
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(all.len(), 2500);
    assert_eq!(
        ids,
        t.sim
            .tenant()
            .devices
            .iter()
            .map(|d| d.id.clone())
            .collect()
    );
    assert!(
        all[0].get("serialNumber").is_none(),
        "$select keeps only what was asked"
    );
    let small = t
        .all(&token, "/v1.0/deviceManagement/managedDevices?$top=7")
        .await;
    assert_eq!(small.len(), 2500, "v1.0 lists too, with a small page size");
    let (status, _) = t
        .get(&token, "/beta/deviceManagement/managedDevices?$top=5000")
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn filters_match_the_tenant_and_unsupported_ones_are_refused_in_refuse_mode() {
    let t = T::new(SimConfig {
        filter_mode: graph_sim::FilterMode::Refuse,
        ..simple(600)
    })
    .await;
    let token = t.token().await;
    let truth = t.sim.tenant();
    let macs = t
        .all(
            &token,
            "/beta/deviceManagement/managedDevices?$filter=operatingSystem%20eq%20'macOS'&$top=100",
        )
        .await;
    assert_eq!(
        macs.len(),
        truth.devices.iter().filter(|d| d.os == "macOS").count()
    );
    let clear = t.all(&token, "/beta/deviceManagement/managedDevices?$filter=operatingSystem%20eq%20'macOS'%20and%20isEncrypted%20eq%20false").await;
    assert_eq!(
        clear.len(),
        truth
            .devices
            .iter()
            .filter(|d| d.os == "macOS" && !d.encrypted)
            .count()
    );
    assert!(!clear.is_empty());
    let co = t
        .all(&token, "/beta/deviceManagement/comanagedDevices")
        .await;
    assert_eq!(
        co.len(),
        truth.devices.iter().filter(|d| d.comanaged()).count()
    );
    for bad in [
        "operatingSystem%20ne%20'macOS'",
        "deviceType%20eq%20'macMDM'",
        "operatingSystem%20in%20('macOS')",
    ] {
        let (status, body) = t
            .get(
                &token,
                &format!("/beta/deviceManagement/managedDevices?$filter={bad}"),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn by_default_unsupported_clauses_are_dropped_and_an_or_returns_everything() {
    let t = T::new(simple(600)).await;
    let token = t.token().await;
    let truth = t.sim.tenant();
    let macs = truth.devices.iter().filter(|d| d.os == "macOS").count();
    let ignored = t
        .all(
            &token,
            "/beta/deviceManagement/managedDevices?$filter=operatingSystem%20eq%20'macOS'%20and%20deviceEnrollmentType%20eq%20'userEnrollment'",
        )
        .await;
    assert_eq!(
        ignored.len(),
        macs,
        "the enrollment type clause was dropped"
    );
    assert!(
        ignored
            .iter()
            .any(|d| d["deviceEnrollmentType"] != "userEnrollment")
    );
    let or = t
        .all(
            &token,
            "/beta/deviceManagement/managedDevices?$filter=operatingSystem%20eq%20'macOS'%20or%20operatingSystem%20eq%20'iOS'",
        )
        .await;
    assert_eq!(
        or.len(),
        truth.devices.len(),
        "an or answers with every device, never an empty page"
    );
    let stats: graph_sim::Stats = t.sim.stats();
    assert!(stats.filter_clauses_ignored >= 3, "{stats:?}");
}

#[tokio::test]
async fn groups_list_their_transitive_members_with_casts_and_paging() {
    let t = T::new(simple(300)).await;
    let token = t.token().await;
    let dir = t.sim.tenant().directory;
    let (status, groups) = t
        .get(&token, "/v1.0/groups?$filter=displayName%20eq%20'FIN-Macs'")
        .await;
    assert_eq!(status, 200, "{groups}");
    let fin = groups["value"].as_array().unwrap();
    assert_eq!(fin.len(), 1);
    let id = fin[0]["id"].as_str().unwrap();
    let all = t
        .all(
            &token,
            &format!("/v1.0/groups/{id}/transitiveMembers?$top=3"),
        )
        .await;
    let kinds = |t: &str| all.iter().filter(|m| m["@odata.type"] == t).count();
    assert_eq!(
        (
            kinds("#microsoft.graph.device"),
            kinds("#microsoft.graph.user"),
            kinds("#microsoft.graph.group")
        ),
        (12, 2, 3),
        "five direct devices, six more and a zero-id object two and three levels down, two users, three nested groups"
    );
    let devices = t
        .all(
            &token,
            &format!(
                "/v1.0/groups/{id}/transitiveMembers/microsoft.graph.device?$select=id,deviceId"
            ),
        )
        .await;
    assert_eq!(devices.len(), 12);
    assert!(devices.iter().all(|d| d["deviceId"].is_string()));
    assert!(devices.iter().any(|d| d["deviceId"] == graph_sim::ZERO_ID));
    let direct = t.all(&token, &format!("/v1.0/groups/{id}/members")).await;
    assert_eq!(direct.len(), 7);
    assert_eq!(
        dir.groups.iter().filter(|g| g.name == "Pilot Macs").count(),
        2
    );
}

#[tokio::test]
async fn without_device_read_members_carry_only_id_and_type() {
    let t = T::new(SimConfig {
        roles: vec![
            "DeviceManagementManagedDevices.Read.All".into(),
            "GroupMember.Read.All".into(),
        ],
        ..simple(300)
    })
    .await;
    let token = t.token().await;
    let g = &t.sim.tenant().directory.groups;
    let fin = g.iter().find(|g| g.name == "FIN-Macs").unwrap();
    let devices = t
        .all(
            &token,
            &format!(
                "/v1.0/groups/{}/transitiveMembers/microsoft.graph.device",
                fin.id
            ),
        )
        .await;
    assert!(!devices.is_empty());
    assert!(
        devices
            .iter()
            .all(|d| d.as_object().unwrap().len() == 2 && d["deviceId"].is_null())
    );
    let no_groups = T::new(SimConfig {
        roles: vec!["DeviceManagementManagedDevices.Read.All".into()],
        ..simple(300)
    })
    .await;
    let token = no_groups.token().await;
    let (status, body) = no_groups.get(&token, "/v1.0/groups").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("GroupMember.Read.All"), "{body}");
}

#[tokio::test]
async fn scripts_and_detected_apps_list_by_display_name() {
    let t = T::new(config(300)).await;
    let token = t.token().await;
    let battery = t
        .all(&token, "/beta/deviceManagement/deviceHealthScripts?$filter=displayName%20eq%20'Battery%20report'")
        .await;
    assert_eq!(battery.len(), 2, "two scripts share the name");
    let vpn = t
        .all(&token, "/beta/deviceManagement/detectedApps?$filter=displayName%20eq%20'Legacy%20VPN%20Client'")
        .await;
    assert_eq!(vpn.len(), 2, "two versions of one app");
    let all = t
        .all(&token, "/beta/deviceManagement/deviceManagementScripts")
        .await;
    assert_eq!(all.len(), 2);
}

#[tokio::test]
async fn every_navigation_source_lists_the_simulators_truth() {
    let t = T::new(simple(300)).await;
    let token = t.token().await;
    let truth = t.sim.tenant();
    let user = &truth.devices[0];
    let mine = t
        .all(&token, &format!("/beta/users/{}/managedDevices", user.upn))
        .await;
    assert_eq!(
        mine.len(),
        truth.devices.iter().filter(|d| d.upn == user.upn).count()
    );
    let by_id = t
        .all(
            &token,
            &format!("/beta/users/{}/managedDevices", user.user_id),
        )
        .await;
    assert_eq!(by_id.len(), mine.len());
    let app = &truth.apps[0];
    let with_app = t
        .all(
            &token,
            &format!(
                "/beta/deviceManagement/detectedApps/{}/managedDevices",
                app.id
            ),
        )
        .await;
    assert_eq!(with_app.len(), app.devices.len());
    for script in &truth.scripts {
        let runs = t
            .all(
                &token,
                &format!(
                    "/beta/deviceManagement/{}/{}/deviceRunStates?$expand=managedDevice&$top=50",
                    script.kind.collection(),
                    script.id
                ),
            )
            .await;
        assert_eq!(runs.len(), script.run_states.len());
        assert!(
            runs.iter().all(|r| r["managedDevice"]["id"].is_string()
                && r[script.kind.state_field()].is_string())
        );
    }
    let (status, _) = t
        .get(&token, "/beta/users/nobody@example.com/managedDevices")
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn actions_run_on_every_path_and_refuse_the_wrong_platform() {
    let t = T::new(simple(400)).await;
    let token = t.token().await;
    let truth = t.sim.tenant();
    let mac = truth.devices.iter().find(|d| d.os == "macOS").unwrap();
    let win = truth
        .devices
        .iter()
        .find(|d| d.os == "Windows" && d.comanaged())
        .unwrap();
    let cases = [
        format!(
            "/beta/deviceManagement/managedDevices/{}/rotateFileVaultKey",
            mac.id
        ),
        format!(
            "/beta/deviceManagement/managedDevices/{}/rotateRecoveryLockPasscode",
            mac.id
        ),
        format!(
            "/beta/deviceManagement/comanagedDevices/{}/rotateBitLockerKeys",
            win.id
        ),
        format!(
            "/beta/deviceManagement/managedDevices/{}/rotateLocalAdminPassword",
            win.id
        ),
        format!(
            "/beta/users/{}/managedDevices/{}/rotateFileVaultKey",
            mac.user_id, mac.id
        ),
    ];
    for path in &cases {
        let (status, body) = t.post(&token, path).await;
        assert_eq!(status, 204, "{path}: {body}");
    }
    let app = truth
        .apps
        .iter()
        .find(|a| {
            a.devices
                .iter()
                .any(|&i| truth.devices[i].os == "macOS" && truth.devices[i].id != mac.id)
        })
        .unwrap();
    let app_mac = &truth.devices[*app
        .devices
        .iter()
        .find(|&&i| truth.devices[i].os == "macOS" && truth.devices[i].id != mac.id)
        .unwrap()];
    assert_eq!(
        t.post(
            &token,
            &format!(
                "/beta/deviceManagement/detectedApps/{}/managedDevices/{}/rotateFileVaultKey",
                app.id, app_mac.id
            )
        )
        .await
        .0,
        204
    );
    let script = truth
        .scripts
        .iter()
        .find(|s| {
            s.run_states.iter().any(|r| {
                truth.devices[r.device].os == "macOS" && truth.devices[r.device].id != mac.id
            })
        })
        .unwrap();
    let rs = script
        .run_states
        .iter()
        .find(|r| truth.devices[r.device].os == "macOS" && truth.devices[r.device].id != mac.id)
        .unwrap();
    let nested = format!(
        "/beta/deviceManagement/{}/{}/deviceRunStates/{}/managedDevice/rotateFileVaultKey",
        script.kind.collection(),
        script.id,
        rs.id
    );
    assert_eq!(t.post(&token, &nested).await.0, 204);
    let (status, body) = t
        .post(
            &token,
            &format!(
                "/beta/deviceManagement/managedDevices/{}/rotateFileVaultKey",
                win.id
            ),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"Message\""),
        "Intune puts a JSON document in the message: {body}"
    );
    assert_eq!(t.post(&token, "/beta/deviceManagement/managedDevices/00000000-0000-4000-8000-000000000000/rotateFileVaultKey").await.0, 404);
    assert_eq!(
        t.post(
            &token,
            &format!(
                "/v1.0/deviceManagement/managedDevices/{}/rotateFileVaultKey",
                mac.id
            )
        )
        .await
        .0,
        405
    );
    let stats = t.sim.stats();
    assert_eq!(stats.accepted("rotateFileVaultKey", &mac.id), 2);
    assert_eq!(stats.accepted("rotateBitLockerKeys", &win.id), 1);
    let (_, device) = t
        .get(
            &token,
            &format!("/beta/deviceManagement/managedDevices/{}", mac.id),
        )
        .await;
    let results = device["deviceActionResults"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["actionState"], "pending");
}

#[tokio::test]
async fn batches_are_validated_and_run_item_by_item() {
    let t = T::new(config(200)).await;
    let token = t.token().await;
    let macs: Vec<String> = t
        .sim
        .tenant()
        .devices
        .iter()
        .filter(|d| d.os == "macOS")
        .map(|d| d.id.clone())
        .take(25)
        .collect();
    let too_many: Vec<Value> = (0..21)
        .map(|n| action_item(&n.to_string(), &macs[n], "rotateFileVaultKey"))
        .collect();
    assert_eq!(
        t.batch(&token, "beta", json!({"requests": too_many}))
            .await
            .0,
        400
    );
    let dup = json!({"requests": [{"id": "a", "method": "GET", "url": "/me"}, {"id": "A", "method": "GET", "url": "/me"}]});
    assert_eq!(t.batch(&token, "beta", dup).await.0, 400);
    assert_eq!(t.stats_actions(&t.sim), 0, "a refused batch runs nothing");
    let body = json!({"requests": [
        action_item("1", &macs[0], "rotateFileVaultKey"),
        {"id": "2", "method": "POST", "url": format!("deviceManagement/managedDevices/{}/rotateFileVaultKey", macs[1])},
        {"id": "3", "method": "POST", "url": "/deviceManagement/managedDevices/00000000-0000-4000-8000-000000000000/rotateFileVaultKey"},
    ]});
    let (status, answer) = t.batch(&token, "beta", body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(item(&answer, "1")["status"], 204);
    assert_eq!(
        item(&answer, "2")["status"],
        204,
        "no leading slash and no body are accepted"
    );
    assert_eq!(item(&answer, "3")["status"], 404);
    let chain = json!({"requests": [
        {"id": "3", "method": "POST", "url": "/deviceManagement/managedDevices/00000000-0000-4000-8000-000000000000/rotateFileVaultKey"},
        {"id": "4", "method": "GET", "url": "/deviceManagement/managedDevices?$top=1", "depends_on": ["3"]},
    ]});
    let (_, answer) = t.batch(&token, "beta", chain).await;
    assert_eq!(item(&answer, "4")["status"], 424, "a failed dependency");
    let v1 = json!({"requests": [action_item("1", &macs[2], "rotateFileVaultKey")]});
    let (_, answer) = t.batch(&token, "v1.0", v1).await;
    assert_eq!(item(&answer, "1")["status"], 405);
    let stats = t.sim.stats();
    assert_eq!(stats.devices_accepted("rotateFileVaultKey"), 2);
    assert_eq!(stats.batches, 5);
}

impl T {
    fn stats_actions(&self, sim: &SimHandle) -> usize {
        sim.stats().actions.values().map(|m| m.len()).sum()
    }
}

#[tokio::test]
async fn throttling_counts_each_batch_item_and_penalises_early_returns() {
    let t = T::new(SimConfig {
        post_limit: Quota::new(30, Duration::from_secs(20)),
        ..config(200)
    })
    .await;
    let token = t.token().await;
    let macs: Vec<String> = t
        .sim
        .tenant()
        .devices
        .iter()
        .filter(|d| d.os == "macOS")
        .map(|d| d.id.clone())
        .take(60)
        .collect();
    let batch = |from: usize| json!({"requests": (0..20).map(|n| action_item(&(n + 1).to_string(), &macs[from + n], "rotateFileVaultKey")).collect::<Vec<_>>()});
    let (_, first) = t.batch(&token, "beta", batch(0)).await;
    assert!(
        first["responses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == 204)
    );
    let (status, second) = t.batch(&token, "beta", batch(20)).await;
    assert_eq!(
        status, 200,
        "the batch itself succeeds even when items are throttled"
    );
    let items = second["responses"].as_array().unwrap();
    let throttled: Vec<&Value> = items.iter().filter(|r| r["status"] == 429).collect();
    assert_eq!(
        throttled.len(),
        10,
        "30 per window: 20 + 10 accepted, 10 throttled"
    );
    for r in &throttled {
        let ra = r["headers"]["Retry-After"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap();
        assert!((1..=20).contains(&ra), "{ra}");
        assert_eq!(r["body"]["error"]["code"], "TooManyRequests");
    }
    let (_, third) = t.batch(&token, "beta", batch(40)).await;
    assert!(
        third["responses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == 429)
    );
    let stats = t.sim.stats();
    assert_eq!(stats.devices_accepted("rotateFileVaultKey"), 30);
    assert_eq!(stats.throttled, 30);
    assert_eq!(stats.requests, 60);
    assert!(
        stats.penalised >= 1,
        "coming back before Retry-After is penalised"
    );
}

#[tokio::test]
async fn retry_after_is_written_in_each_style() {
    for (style, check) in [
        (
            RetryAfterStyle::Int,
            (|v: Option<&str>| v.is_some_and(|v| v.parse::<u64>().is_ok()))
                as fn(Option<&str>) -> bool,
        ),
        (RetryAfterStyle::Fraction, |v| {
            v.is_some_and(|v| v.contains('.') && v.parse::<f64>().is_ok())
        }),
        (RetryAfterStyle::Date, |v| {
            v.is_some_and(|v| v.ends_with("GMT"))
        }),
        (RetryAfterStyle::Comma, |v| {
            v.is_some_and(|v| v.ends_with(",120"))
        }),
        (RetryAfterStyle::None, |v| v.is_none()),
    ] {
        let t = T::new(SimConfig {
            post_limit: Quota::new(1, Duration::from_secs(20)),
            retry_after_style: style,
            ..config(50)
        })
        .await;
        let token = t.token().await;
        let macs: Vec<String> = t
            .sim
            .tenant()
            .devices
            .iter()
            .filter(|d| d.os == "macOS")
            .map(|d| d.id.clone())
            .take(2)
            .collect();
        let (_, answer) = t.batch(&token, "beta", json!({"requests": [action_item("1", &macs[0], "rotateFileVaultKey"), action_item("2", &macs[1], "rotateFileVaultKey")]})).await;
        let throttled = answer["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["status"] == 429)
            .expect("one item throttled");
        let value = throttled["headers"]["Retry-After"].as_str();
        assert!(check(value), "{style:?}: {value:?}");
    }
}

#[tokio::test]
async fn faults_are_injected_as_configured() {
    let t = T::new(SimConfig {
        p503: 1.0,
        ..config(20)
    })
    .await;
    let token = t.token().await;
    let mac = t
        .sim
        .tenant()
        .devices
        .iter()
        .find(|d| d.os == "macOS")
        .unwrap()
        .id
        .clone();
    let (status, _) = t
        .post(
            &token,
            &format!("/beta/deviceManagement/managedDevices/{mac}/rotateFileVaultKey"),
        )
        .await;
    assert_eq!(status, 503);
    assert_eq!(t.sim.stats().devices_accepted("rotateFileVaultKey"), 0);

    let t = T::new(SimConfig {
        truncate: 1.0,
        ..config(20)
    })
    .await;
    let token = t.token().await;
    let r = t
        .http
        .get(t.url("/beta/deviceManagement/managedDevices"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "a cut body is not JSON"
    );

    let t = T::new(SimConfig {
        drop: 1.0,
        ..config(20)
    })
    .await;
    let token = t.token().await;
    let mac = t
        .sim
        .tenant()
        .devices
        .iter()
        .find(|d| d.os == "macOS")
        .unwrap()
        .id
        .clone();
    let r = t
        .http
        .post(t.url(&format!(
            "/beta/deviceManagement/managedDevices/{mac}/rotateFileVaultKey"
        )))
        .bearer_auth(&token)
        .send()
        .await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "the connection is dropped mid-answer");
    assert_eq!(
        t.sim.stats().accepted("rotateFileVaultKey", &mac),
        1,
        "the work was done before the drop"
    );

    let t = T::new(SimConfig {
        batch_p429: 1.0,
        ..config(20)
    })
    .await;
    let token = t.token().await;
    let (status, _) = t
        .batch(
            &token,
            "beta",
            json!({"requests": [action_item("1", &mac, "rotateFileVaultKey")]}),
        )
        .await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn stats_and_the_device_export_follow_the_contract() {
    let t = T::new(config(30)).await;
    let stats: Value = t
        .http
        .get(t.url("/_sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in ["http_requests", "requests", "throttled", "actions"] {
        assert!(stats.get(key).is_some(), "{key} in {stats}");
    }
    let csv = t
        .http
        .get(t.url("/_sim/devices.csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("Device ID,Device name,"));
    assert_eq!(csv.lines().count(), 31);
}

mod certificate {
    use super::*;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};

    /// A throwaway RSA key and a self-signed certificate for it, made fresh for the test.
    fn key_and_cert() -> (String, String) {
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let pair = rcgen::KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["sim-client".into()])
            .unwrap()
            .self_signed(&pair)
            .unwrap();
        (pem, cert.pem())
    }

    fn thumbprints(cert_pem: &str) -> (String, String) {
        use base64::Engine;
        use sha1::Digest;
        let der = pem::parse(cert_pem).unwrap().into_contents();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        (
            b64.encode(sha1::Sha1::digest(&der)),
            b64.encode(sha2::Sha256::digest(&der)),
        )
    }

    fn assertion(
        alg: Algorithm,
        key_pem: &str,
        cert_pem: &str,
        aud: &str,
        lifetime: i64,
    ) -> String {
        let (x5t, x5t_s256) = thumbprints(cert_pem);
        let mut header = Header::new(alg);
        if alg == Algorithm::PS256 {
            header.x5t_s256 = Some(x5t_s256)
        } else {
            header.x5t = Some(x5t)
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let claims = json!({"aud": aud, "iss": "sim-client", "sub": "sim-client", "jti": uuid::Uuid::new_v4().to_string(), "nbf": now - 5, "iat": now - 5, "exp": now + lifetime});
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn assertions_are_verified_against_the_registered_certificate() {
        let (key, cert) = key_and_cert();
        let (other_key, _) = key_and_cert();
        let t = T::new(SimConfig {
            certificate: Some(cert.clone()),
            ..config(5)
        })
        .await;
        let aud = t.url(&format!("/{}/oauth2/v2.0/token", t.sim.config().tenant));
        let ask = |a: String| {
            let t = &t;
            async move {
                t.token_with(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", "sim-client"),
                    ("scope", "https://graph.microsoft.com/.default"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &a),
                ])
                .await
            }
        };
        let (s, body) = ask(assertion(Algorithm::PS256, &key, &cert, &aud, 300)).await;
        assert_eq!(s, 200, "PS256 with x5t#S256: {body}");
        let (s, body) = ask(assertion(Algorithm::RS256, &key, &cert, &aud, 300)).await;
        assert_eq!(s, 200, "RS256 with x5t: {body}");
        let (s, body) = ask(assertion(Algorithm::PS256, &other_key, &cert, &aud, 300)).await;
        assert_eq!(
            (s, body["error_codes"][0].as_u64()),
            (401, Some(700027)),
            "signed by another key: {body}"
        );
        let (s, body) = ask(assertion(Algorithm::PS256, &key, &cert, &aud, -120)).await;
        assert_eq!(
            (s, body["error_codes"][0].as_u64()),
            (401, Some(700024)),
            "expired: {body}"
        );
        let (s, _) = ask(assertion(
            Algorithm::PS256,
            &key,
            &cert,
            "https://elsewhere.example/token",
            300,
        ))
        .await;
        assert_eq!(s, 401, "wrong audience");
    }
    /// graph-facts §10: MSAL base64-pads `x5t`/`x5t#S256` and sends no `nbf`; Entra accepts both.
    #[tokio::test]
    async fn assertions_as_msal_signs_them_are_accepted() {
        let (key, cert) = key_and_cert();
        let t = T::new(SimConfig {
            certificate: Some(cert.clone()),
            ..config(5)
        })
        .await;
        let aud = t.url(&format!("/{}/oauth2/v2.0/token", t.sim.config().tenant));
        let (x5t, x5t_s256) = thumbprints(&cert);
        let pad = |t: String| format!("{t}{}", "=".repeat((4 - t.len() % 4) % 4));
        for alg in [Algorithm::RS256, Algorithm::PS256] {
            let mut header = Header::new(alg);
            match alg {
                Algorithm::PS256 => header.x5t_s256 = Some(pad(x5t_s256.clone())),
                _ => header.x5t = Some(pad(x5t.clone())),
            }
            assert!(
                header
                    .x5t
                    .as_deref()
                    .or(header.x5t_s256.as_deref())
                    .unwrap()
                    .ends_with('=')
            );
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            // No `nbf`, as MSAL writes it.
            let claims = json!({"aud": aud, "iss": "sim-client", "sub": "sim-client", "jti": uuid::Uuid::new_v4().to_string(), "iat": now, "exp": now + 600});
            let a = jsonwebtoken::encode(
                &header,
                &claims,
                &EncodingKey::from_rsa_pem(key.as_bytes()).unwrap(),
            )
            .unwrap();
            let (s, body) = t
                .token_with(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", "sim-client"),
                    ("scope", "https://graph.microsoft.com/.default"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &a),
                ])
                .await;
            assert_eq!(s, 200, "{alg:?}: {body}");
        }
    }
}

/// A simulator of five devices serving https.
async fn over_tls() -> T {
    T::new(SimConfig {
        tls: true,
        ..config(5)
    })
    .await
}

/// A client that trusts `t`'s throwaway CA alone.
fn trusting(t: &T) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(t.sim.ca_pem.as_deref().unwrap().as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(30))
}

/// graph-facts §2: over TLS, HTTP/2 is negotiated as with Graph, and a client that offers only
/// HTTP/1.1 is still answered.
#[tokio::test]
async fn tls_negotiates_http2_and_still_answers_http1() {
    let t = over_tls().await;
    let tenant = t.sim.config().tenant.clone();
    let url = t.url(&format!("/{tenant}/v2.0/.well-known/openid-configuration"));
    for (http1_only, version) in [
        (false, reqwest::Version::HTTP_2),
        (true, reqwest::Version::HTTP_11),
    ] {
        let mut builder = trusting(&t);
        if http1_only {
            builder = builder.http1_only();
        }
        let r = builder.build().unwrap().get(&url).send().await.unwrap();
        assert_eq!((r.status().as_u16(), r.version()), (200, version));
    }
}

/// graph-facts §10: MSAL and azure-identity need an https authority and read the tenant's OpenID
/// configuration, instance discovery and the JWKS first.
#[tokio::test]
async fn tls_serves_discovery_documents_a_client_can_trust() {
    let t = over_tls().await;
    assert!(t.sim.base_url.starts_with("https://127.0.0.1:"));
    let http = trusting(&t).build().unwrap();
    let get = |path: String| {
        let http = http.clone();
        let url = t.url(&path);
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let tenant = t.sim.config().tenant.clone();
    let (s, doc) = get(format!("/{tenant}/v2.0/.well-known/openid-configuration")).await;
    assert_eq!(s, 200, "{doc}");
    assert_eq!(
        doc["token_endpoint"],
        t.url(&format!("/{tenant}/oauth2/v2.0/token"))
    );
    assert_eq!(doc["issuer"], t.url(&format!("/{tenant}/v2.0")));
    let (s, keys) = get(doc["jwks_uri"]
        .as_str()
        .unwrap()
        .replace(&t.sim.base_url, ""))
    .await;
    assert_eq!(
        (s, keys["keys"][0]["kty"].as_str()),
        (200, Some("EC")),
        "{keys}"
    );
    let (s, _) = get("/common/v2.0/.well-known/openid-configuration".into()).await;
    assert_eq!(s, 200);
    let (s, err) =
        get("/00000000-0000-4000-8000-00000000dead/v2.0/.well-known/openid-configuration".into())
            .await;
    assert_eq!(
        (s, err["error_codes"][0].as_u64()),
        (400, Some(90002)),
        "{err}"
    );
    let (s, found) = get(format!(
        "/common/discovery/instance?api-version=1.1&authorization_endpoint={}/{tenant}/oauth2/v2.0/authorize",
        t.sim.base_url
    ))
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        found["tenant_discovery_endpoint"],
        t.url(&format!("/{tenant}/v2.0/.well-known/openid-configuration"))
    );
    // A client that does not trust the CA is refused by the handshake.
    assert!(
        reqwest::Client::new()
            .get(t.url("/common/v2.0/.well-known/openid-configuration"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_binary_prints_its_url_first_and_serves_5000_devices() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_graph-sim"))
        .args(["--addr", "127.0.0.1:0", "--devices", "5000", "--seed", "9"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"));
    let http = http();
    let token: Value = http
        .post(format!(
            "{base}/{}/oauth2/v2.0/token",
            graph_sim::DEFAULT_TENANT
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sim-client"),
            ("client_secret", "sim-secret"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap();
    let mut next = Some(format!("{base}/beta/deviceManagement/managedDevices"));
    let mut count = 0;
    for _ in 0..10 {
        let Some(url) = next.take() else { break };
        let page: Value = http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        count += page["value"].as_array().unwrap().len();
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(count, 5000);
}

#[tokio::test]
async fn device_code_sign_in_issues_delegated_tokens_that_refresh_once() {
    let t = T::new(SimConfig {
        device_code_approve_after: Duration::from_millis(1500),
        device_code_interval: Duration::from_secs(1),
        ..config(20)
    })
    .await;
    let tenant = t.sim.config().tenant.clone();
    let scope = "https://graph.microsoft.com/DeviceManagementManagedDevices.PrivilegedOperations.All offline_access";
    let code: Value = t
        .http
        .post(t.url(&format!("/{tenant}/oauth2/v2.0/devicecode")))
        .form(&[("client_id", "sim-client"), ("scope", scope)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        code["message"]
            .as_str()
            .unwrap()
            .contains(code["user_code"].as_str().unwrap())
    );
    assert_eq!(code["interval"], 1);
    let device_code = code["device_code"].as_str().unwrap().to_string();
    let poll = |t: &T| {
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", "sim-client"),
            ("device_code", device_code.as_str()),
        ];
        let form: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let url = t.url(&format!("/{tenant}/oauth2/v2.0/token"));
        let http = t.http.clone();
        async move {
            let r = http.post(url).form(&form).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(poll(&t).await.1["error"], "authorization_pending");
    assert_eq!(
        poll(&t).await.1["error"],
        "slow_down",
        "polled again at once"
    );
    // Poll at the interval the endpoint asked for until the sign-in is approved (bounded).
    let (mut status, mut token) = (0, Value::Null);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        (status, token) = poll(&t).await;
        if status == 200 {
            break;
        }
        assert_eq!(token["error"], "authorization_pending", "{token}");
    }
    assert_eq!(status, 200, "{token}");
    let access = token["access_token"].as_str().unwrap().to_string();
    let mac = t
        .sim
        .tenant()
        .devices
        .iter()
        .find(|d| d.os == "macOS")
        .unwrap()
        .id
        .clone();
    assert_eq!(
        t.post(
            &access,
            &format!("/beta/deviceManagement/managedDevices/{mac}/rotateFileVaultKey")
        )
        .await
        .0,
        204,
        "the delegated scope allows the action"
    );
    assert_eq!(
        t.get(&access, "/beta/deviceManagement/managedDevices")
            .await
            .0,
        403,
        "but not reading devices"
    );
    let refresh = token["refresh_token"].as_str().unwrap().to_string();
    let grant = [
        ("grant_type", "refresh_token"),
        ("client_id", "sim-client"),
        ("refresh_token", refresh.as_str()),
    ];
    let (s1, again) = t.token_with(&grant).await;
    assert_eq!(s1, 200, "{again}");
    assert_ne!(
        again["refresh_token"], token["refresh_token"],
        "refresh tokens rotate"
    );
    let (s2, used) = t.token_with(&grant).await;
    assert_eq!(
        (s2, used["error"].as_str()),
        (400, Some("invalid_grant")),
        "an old refresh token is refused"
    );
}

#[tokio::test]
async fn a_bad_certificate_is_an_error_from_start_not_a_panic() {
    let bad = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
    let started = graph_sim::start(SimConfig {
        certificate: Some(bad.into()),
        ..config(1)
    })
    .await;
    let Err(err) = started else {
        panic!("a bad certificate was accepted");
    };
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("--certificate"), "{err}");
}

#[tokio::test]
async fn error_answers_carry_consistent_support_ids() {
    let t = T::new(config(20)).await;
    let token = t.token().await;
    let r = t
        .http
        .get(t.url("/beta/deviceManagement/managedDevices/6d1f0000-0000-4000-8000-000000000001"))
        .bearer_auth(&token)
        .header("client-request-id", "7a1c0000-0000-4000-8000-0000000000c1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let header = r.headers()["request-id"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["innerError"]["request-id"], header.as_str());
    assert_eq!(
        body["error"]["innerError"]["client-request-id"], "7a1c0000-0000-4000-8000-0000000000c1",
        "echoed in every error body, not only 401"
    );
    let r = t
        .http
        .get(t.url("/beta/deviceManagement/managedDevices"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer ")
    );
    let limited = T::new(SimConfig {
        post_limit: graph_sim::Quota::new(1, std::time::Duration::from_secs(20)),
        mac_share: 1.0,
        ..config(3)
    })
    .await;
    let token = limited.token().await;
    let ids: Vec<String> = limited
        .sim
        .tenant()
        .devices
        .iter()
        .map(|d| d.id.clone())
        .collect();
    let mut last = Value::Null;
    for id in &ids {
        let (_, body) = limited
            .post(
                &token,
                &format!("/beta/deviceManagement/managedDevices/{id}/rotateFileVaultKey"),
            )
            .await;
        last = body;
    }
    let message = last["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Identifier:sim-client") && !message.contains("{app}"),
        "{last}"
    );
}

#[tokio::test]
async fn count_and_context_are_written_as_graph_writes_them() {
    let t = T::new(config(250)).await;
    let token = t.token().await;
    let (status, page) = t
        .get(
            &token,
            "/beta/deviceManagement/managedDevices?$count=true&$top=10",
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["@odata.count"], 250);
    assert!(
        page["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#deviceManagement/managedDevices"),
        "{page}"
    );
    let (status, body) = t.get(&token, "/v1.0/groups?$count=true").await;
    assert_eq!(
        status, 400,
        "directory counts need ConsistencyLevel: {body}"
    );
    let r = t
        .http
        .get(t.url("/v1.0/groups?$count=true"))
        .bearer_auth(&token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["@odata.count"].as_u64(),
        Some(t.sim.tenant().directory.groups.len() as u64),
        "{body}"
    );
}

/// graph-facts §10: Graph answers 400 for an unknown `$` option and an unknown `$select` property,
/// and each collection takes only the options it supports.
#[tokio::test]
async fn unknown_and_unsupported_query_options_are_refused_as_graph_refuses_them() {
    let t = T::new(config(30)).await;
    let token = t.token().await;
    let devices = "/beta/deviceManagement/managedDevices";
    for (query, says) in [
        ("$foo=1", "'$foo' is not allowed"),
        (
            "$select=id,deviceNmae",
            "Could not find a property named 'deviceNmae' on type 'microsoft.graph.managedDevice'",
        ),
        ("$search=\"mac\"", "'$search' is not supported"),
        ("$expand=users", "'$expand' is not supported"),
        ("$orderby=model", "Sorting on 'model' is not supported"),
    ] {
        let (status, body) = t.get(&token, &format!("{devices}?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{query}: {message}");
        assert!(
            body["error"]["innerError"]["request-id"].is_string(),
            "Graph's error shape: {body}"
        );
    }
    let (status, _) = t.get(&token, "/v1.0/groups?$skip=1").await;
    assert_eq!(status, 400, "the directory takes no $skip");
    let (status, _) = t.get(&token, "/v1.0/groups?$orderby=displayName").await;
    assert_eq!(status, 400, "sorting groups is an advanced query");
}

/// graph-facts §10: `$orderby` sorts the device listing on the properties it takes, `$skip`
/// offsets it, and paging keeps both.
#[tokio::test]
async fn orderby_and_skip_shape_the_device_listing() {
    let t = T::new(config(120)).await;
    let token = t.token().await;
    let sorted = t
        .all(&token, "/beta/deviceManagement/managedDevices?$orderby=deviceName desc&$top=25&$select=id,deviceName")
        .await;
    let names: Vec<&str> = sorted
        .iter()
        .map(|d| d["deviceName"].as_str().unwrap())
        .collect();
    let mut want = names.clone();
    want.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(names.len(), 120);
    assert_eq!(names, want);
    let skipped = t
        .all(&token, "/beta/deviceManagement/managedDevices?$orderby=deviceName desc&$skip=100&$top=7&$select=id,deviceName")
        .await;
    let ids = |v: &[Value]| v.iter().map(|d| d["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&skipped), ids(&sorted[100..]));
    let r = t
        .http
        .get(t.url("/v1.0/groups?$orderby=displayName&$search=\"displayName:FIN\""))
        .bearer_auth(&token)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let names: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["displayName"].as_str().unwrap())
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.contains("FIN")),
        "{names:?}"
    );
    assert!(names.windows(2).all(|w| w[0] <= w[1]), "{names:?}");
}

/// graph-facts §3 ("all requests accrue", Retry-After growing on a repeat offence): under the
/// default model throttled items count in the window; `block` and `none` stay as before.
#[tokio::test]
async fn each_throttling_model_treats_early_requests_as_documented() {
    use graph_sim::ThrottleModel;
    let mut answers = Vec::new();
    for model in [
        ThrottleModel::Accrue,
        ThrottleModel::Block,
        ThrottleModel::None,
    ] {
        let t = T::new(SimConfig {
            post_limit: Quota::new(20, Duration::from_secs(2)),
            tenant_post_limit: Quota::new(40, Duration::from_secs(2)),
            mac_share: 1.0,
            throttle_model: model,
            ..config(60)
        })
        .await;
        let token = t.token().await;
        let macs: Vec<String> = t
            .sim
            .tenant()
            .devices
            .iter()
            .map(|d| d.id.clone())
            .collect();
        let batch = |from: usize| {
            let items: Vec<Value> = (0..20)
                .map(|k| action_item(&(k + 1).to_string(), &macs[from + k], "rotateFileVaultKey"))
                .collect();
            json!({ "requests": items })
        };
        // The window's 20, then 20 more a second later: all throttled.
        let (_, first) = t.batch(&token, "beta", batch(0)).await;
        assert!(
            first["responses"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == 204)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (_, second) = t.batch(&token, "beta", batch(20)).await;
        assert!(
            second["responses"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == 429)
        );
        // Back once the first 20 left the window (and the second batch's Retry-After passed).
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let (_, third) = t.batch(&token, "beta", batch(40)).await;
        let admitted = third["responses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == 204)
            .count();
        answers.push((model, admitted, t.sim.stats().penalised));
    }
    // accrue: the 20 refused items still fill the window; block: the block has passed; none: room.
    assert_eq!(answers[0].1, 0, "{answers:?}");
    assert_eq!(answers[1].1, 20, "{answers:?}");
    assert_eq!(answers[2].1, 20, "{answers:?}");
}

/// graph-facts §3: a 429 for a write that was carried out; and a request carried out seconds after
/// its connection dropped, not visible to an early look.
#[tokio::test]
async fn ghost_429_and_late_actions_are_carried_out_all_the_same() {
    let t = T::new(SimConfig {
        ghost_429: 1.0,
        mac_share: 1.0,
        ..config(5)
    })
    .await;
    let token = t.token().await;
    let id = t.sim.tenant().devices[0].id.clone();
    let (status, body) = t
        .post(
            &token,
            &format!("/beta/deviceManagement/managedDevices/{id}/rotateFileVaultKey"),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    let stats = t.sim.stats();
    assert_eq!(
        (stats.ghost_429, stats.accepted("rotateFileVaultKey", &id)),
        (1, 1)
    );

    let t = T::new(SimConfig {
        late: 1.0,
        late_max: Duration::from_secs(2),
        mac_share: 1.0,
        ..config(5)
    })
    .await;
    let token = t.token().await;
    let id = t.sim.tenant().devices[0].id.clone();
    let sent = t
        .http
        .post(t.url(&format!(
            "/beta/deviceManagement/managedDevices/{id}/rotateFileVaultKey"
        )))
        .bearer_auth(&token)
        .header("Content-Length", "0")
        .send()
        .await;
    let lost = match sent {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(lost, "the answer is lost");
    // Every request of this simulator loses its answer, reads too: look at the tenant itself.
    let listed = |at: std::time::SystemTime| {
        let tenant = t.sim.tenant();
        tenant.devices[0].to_json(at, &tenant.shapes, graph_sim::Answer::Single)["deviceActionResults"]
            .as_array()
            .unwrap()
            .len()
    };
    let now = std::time::SystemTime::now();
    assert_eq!(listed(now), 0, "not carried out yet");
    assert_eq!(
        listed(now + Duration::from_secs(2)),
        1,
        "carried out at most 2 s later"
    );
    assert_eq!(t.sim.stats().accepted("rotateFileVaultKey", &id), 1);
    assert_eq!(t.sim.stats().late_requests, 1);
}

/// graph-facts §10: azure-identity's device code asks for `.default`, and MSAL builds its account
/// from the id token (`oid`, `tid`, `preferred_username`) and `client_info`.
#[tokio::test]
async fn device_code_takes_default_and_answers_with_an_id_token_and_client_info() {
    use base64::Engine;
    let t = T::new(SimConfig {
        device_code_approve_after: Duration::ZERO,
        ..config(5)
    })
    .await;
    let tenant = t.sim.config().tenant.clone();
    let code: Value = t
        .http
        .post(t.url(&format!("/{tenant}/oauth2/v2.0/devicecode")))
        .form(&[
            ("client_id", "sim-client"),
            (
                "scope",
                "https://graph.microsoft.com/.default offline_access openid profile",
            ),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(code["device_code"].is_string(), "{code}");
    let (status, token) = t
        .token_with(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", "sim-client"),
            ("device_code", code["device_code"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(status, 200, "{token}");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let part = |jwt: &str| -> Value {
        serde_json::from_slice(&b64.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
    };
    let access = part(token["access_token"].as_str().unwrap());
    assert!(
        access["scp"]
            .as_str()
            .unwrap()
            .contains("DeviceManagementManagedDevices.PrivilegedOperations.All"),
        ".default gives the consented permissions: {access}"
    );
    let id = part(token["id_token"].as_str().unwrap());
    assert_eq!(id["tid"], tenant.as_str());
    assert_eq!(id["aud"], "sim-client");
    assert!(
        id["oid"].is_string() && id["preferred_username"].is_string(),
        "{id}"
    );
    let info: Value =
        serde_json::from_slice(&b64.decode(token["client_info"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(
        (&info["uid"], &info["utid"]),
        (&id["oid"], &id["tid"]),
        "{info}"
    );
}

/// graph-facts §9: many tenants, each with its own token endpoint, devices and counters; an app
/// nobody consented to in a tenant is refused sign-in there with AADSTS7000229.
#[tokio::test]
async fn many_tenants_each_sign_in_list_and_count_on_their_own() {
    let configs: Vec<SimConfig> = (0..3)
        .map(|i| SimConfig {
            tenant: format!("7e0a000{i}-5e1f-4c8e-9a61-00000000000{i}"),
            tenant_name: format!("Customer {i}"),
            seed: i,
            devices: 10 + i as usize * 5,
            consented: i != 2,
            ..SimConfig::default()
        })
        .collect();
    let sim = graph_sim::start_fleet("127.0.0.1:0".parse().unwrap(), configs.clone())
        .await
        .unwrap();
    let http = http();
    let listed: Value = http
        .get(format!("{}/_sim/tenants", sim.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(listed[2]["consented"], false);
    for c in &configs {
        let r: Value = http
            .post(format!("{}/{}/oauth2/v2.0/token", sim.base_url, c.tenant))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "sim-client"),
                ("client_secret", "sim-secret"),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !c.consented {
            assert_eq!(r["error_codes"][0], 7000229, "{r}");
            continue;
        }
        let token = r["access_token"].as_str().unwrap();
        let page: Value = http
            .get(format!(
                "{}/beta/deviceManagement/managedDevices?$count=true",
                sim.base_url
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            page["@odata.count"].as_u64(),
            Some(c.devices as u64),
            "{}",
            c.tenant
        );
        let one: Value = http
            .get(format!("{}/_sim/stats?tenant={}", sim.base_url, c.tenant))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(one["requests"], 1, "{}: {one}", c.tenant);
    }
    let all: Value = http
        .get(format!("{}/_sim/stats", sim.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (all["requests"].as_u64(), all["token_requests"].as_u64()),
        (Some(2), Some(3)),
        "{all}"
    );
}

// graph-facts §11: what real tenants answer. Each fact in its real form (the default) and in the
// kinder form behind its flag.

fn real(devices: usize) -> SimConfig {
    config(devices)
}

async fn first_mac(t: &T, token: &str) -> Value {
    let (status, page) = t
        .get(token, "/beta/deviceManagement/managedDevices?$top=1000")
        .await;
    assert_eq!(status, 200, "{page}");
    page["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["operatingSystem"] == "macOS")
        .cloned()
        .expect("a Mac")
}

#[tokio::test]
async fn real_mac_versions_carry_the_build_and_windows_versions_have_four_parts() {
    let t = T::new(real(200)).await;
    let token = t.token().await;
    let all = t
        .all(&token, "/beta/deviceManagement/managedDevices?$top=1000")
        .await;
    for d in &all {
        let v = d["osVersion"].as_str().unwrap();
        match d["operatingSystem"].as_str().unwrap() {
            "macOS" => {
                let (number, build) = v.split_once(" (").expect("a build in brackets");
                assert!(number.split('.').all(|p| p.parse::<u32>().is_ok()), "{v}");
                assert!(build.ends_with(')') && build.len() > 3, "{v}");
            }
            "Windows" => assert_eq!(v.split('.').count(), 4, "{v}"),
            _ => {}
        }
    }
    let t = T::new(SimConfig {
        shapes: graph_sim::Shapes {
            os_versions: graph_sim::OsVersionForm::Plain,
            ..Default::default()
        },
        ..real(200)
    })
    .await;
    let token = t.token().await;
    let mac = first_mac(&t, &token).await;
    assert!(!mac["osVersion"].as_str().unwrap().contains('('), "{mac}");
}

#[tokio::test]
async fn real_list_answers_leave_action_results_out_and_a_single_get_fills_them() {
    for (form, listed) in [
        (graph_sim::ListResults::Omitted, false),
        (graph_sim::ListResults::Included, true),
    ] {
        let t = T::new(SimConfig {
            shapes: graph_sim::Shapes {
                list_results: form,
                ..Default::default()
            },
            ..real(100)
        })
        .await;
        let token = t.token().await;
        let mac = first_mac(&t, &token).await;
        let id = mac["id"].as_str().unwrap().to_string();
        let (status, _) = t
            .post(
                &token,
                &format!("/beta/deviceManagement/managedDevices/{id}/rotateFileVaultKey"),
            )
            .await;
        assert_eq!(status, 204);
        let again = t
            .all(&token, "/beta/deviceManagement/managedDevices?$top=1000")
            .await;
        let in_list = again.iter().find(|d| d["id"] == id.as_str()).unwrap()["deviceActionResults"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(in_list > 0, listed, "{form:?}");
        let (status, one) = t
            .get(
                &token,
                &format!("/beta/deviceManagement/managedDevices/{id}"),
            )
            .await;
        assert_eq!(status, 200);
        let one = if one["value"].is_object() {
            &one["value"]
        } else {
            &one
        };
        assert!(!one["deviceActionResults"].as_array().unwrap().is_empty());
    }
}

#[tokio::test]
async fn real_script_run_states_hold_macs_in_shell_scripts_only() {
    for (form, macs_in_health) in [
        (graph_sim::ScriptPlatforms::AsModelled, false),
        (graph_sim::ScriptPlatforms::Any, true),
    ] {
        let t = T::new(SimConfig {
            shapes: graph_sim::Shapes {
                script_platforms: form,
                ..Default::default()
            },
            ..real(300)
        })
        .await;
        let token = t.token().await;
        let os_in = |coll: &'static str| {
            let (t, token) = (&t, token.clone());
            async move {
                let scripts = t
                    .all(&token, &format!("/beta/deviceManagement/{coll}"))
                    .await;
                let mut seen = std::collections::BTreeSet::new();
                for s in scripts {
                    let id = s["id"].as_str().unwrap();
                    let states = t
                        .all(
                            &token,
                            &format!("/beta/deviceManagement/{coll}/{id}/deviceRunStates?$expand=managedDevice"),
                        )
                        .await;
                    for r in states {
                        seen.insert(
                            r["managedDevice"]["operatingSystem"]
                                .as_str()
                                .unwrap()
                                .to_string(),
                        );
                    }
                }
                seen
            }
        };
        let health = os_in("deviceHealthScripts").await;
        assert_eq!(
            health.contains("macOS"),
            macs_in_health,
            "{form:?}: {health:?}"
        );
        let shell = os_in("deviceShellScripts").await;
        assert_eq!(shell.iter().collect::<Vec<_>>(), ["macOS"], "{form:?}");
        let attributes = os_in("deviceCustomAttributeShellScripts").await;
        assert_eq!(attributes.iter().collect::<Vec<_>>(), ["macOS"], "{form:?}");
    }
}

#[tokio::test]
async fn real_member_casts_are_advanced_queries() {
    for (form, plain_ok) in [
        (graph_sim::MemberCasts::AdvancedQuery, false),
        (graph_sim::MemberCasts::Plain, true),
    ] {
        let t = T::new(SimConfig {
            shapes: graph_sim::Shapes {
                member_casts: form,
                ..Default::default()
            },
            ..real(200)
        })
        .await;
        let token = t.token().await;
        let gid = t.sim.tenant().directory.groups[0].id.clone();
        let path = format!("/v1.0/groups/{gid}/transitiveMembers/microsoft.graph.device");
        let (status, body) = t.get(&token, &path).await;
        if plain_ok {
            assert_eq!(status, 200, "{body}");
        } else {
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["error"]["code"], "Request_UnsupportedQuery");
        }
        let r = t
            .http
            .get(t.url(&format!("{path}?$count=true")))
            .bearer_auth(&token)
            .header("ConsistencyLevel", "eventual")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            200,
            "{form:?}: the advanced query is served"
        );
    }
}

#[tokio::test]
async fn real_join_type_and_ownership_may_be_unknown_and_arm_is_arm64_as_graph_spells_it() {
    for (form, unknown) in [
        (graph_sim::UnknownMembers::Present, true),
        (graph_sim::UnknownMembers::Absent, false),
    ] {
        let t = T::new(SimConfig {
            shapes: graph_sim::Shapes {
                unknown_members: form,
                ..Default::default()
            },
            ..real(300)
        })
        .await;
        let token = t.token().await;
        let all = t
            .all(&token, "/beta/deviceManagement/managedDevices?$top=1000")
            .await;
        let windows_unknown = all
            .iter()
            .any(|d| d["operatingSystem"] == "Windows" && d["joinType"] == "unknown");
        let owner_unknown = all.iter().any(|d| d["managedDeviceOwnerType"] == "unknown");
        assert_eq!(
            (windows_unknown, owner_unknown),
            (unknown, unknown),
            "{form:?}"
        );
        assert!(all.iter().any(|d| d["processorArchitecture"] == "arM64"));
        assert!(!all.iter().any(|d| d["processorArchitecture"] == "arm64"));
        assert!(
            !all.iter()
                .any(|d| d["deviceEnrollmentType"] == "androidEnterpriseWorkProfile")
        );
    }
}

#[tokio::test]
async fn real_single_entities_come_wrapped_with_offset_times() {
    for (entities, times) in [
        (graph_sim::EntityForm::Wrapped, graph_sim::TimeForm::Offset),
        (graph_sim::EntityForm::TopLevel, graph_sim::TimeForm::Utc),
    ] {
        let t = T::new(SimConfig {
            shapes: graph_sim::Shapes {
                entities,
                times,
                ..Default::default()
            },
            ..real(100)
        })
        .await;
        let token = t.token().await;
        let entra = {
            let tenant = t.sim.tenant();
            tenant
                .devices
                .iter()
                .find(|d| !d.laps_backups.is_empty())
                .unwrap()
                .azure_ad_device_id
                .clone()
        };
        let (status, body) = t
            .get(
                &token,
                &format!("/beta/directory/deviceLocalCredentials/{entra}"),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let entity = match entities {
            graph_sim::EntityForm::Wrapped => &body["value"],
            graph_sim::EntityForm::TopLevel => &body,
        };
        let at = entity["lastBackupDateTime"]
            .as_str()
            .expect("the entity's field");
        match times {
            graph_sim::TimeForm::Offset => {
                assert!(at.ends_with("-08:00") && at.len() == 33, "{at}")
            }
            graph_sim::TimeForm::Utc => assert!(at.ends_with('Z'), "{at}"),
        }
    }
}

#[tokio::test]
async fn real_action_permissions_are_those_each_page_lists() {
    for (form, bitlocker_with_privileged) in [
        (graph_sim::ActionPermissions::AsDocumented, 403),
        (graph_sim::ActionPermissions::Broad, 204),
    ] {
        let t = T::new(SimConfig {
            roles: vec![
                "DeviceManagementManagedDevices.PrivilegedOperations.All".into(),
                "DeviceManagementManagedDevices.Read.All".into(),
            ],
            shapes: graph_sim::Shapes {
                action_permissions: form,
                ..Default::default()
            },
            ..real(100)
        })
        .await;
        let token = t.token().await;
        let pc = {
            let tenant = t.sim.tenant();
            tenant
                .devices
                .iter()
                .find(|d| d.os == "Windows")
                .unwrap()
                .id
                .clone()
        };
        let (status, body) = t
            .post(
                &token,
                &format!("/beta/deviceManagement/managedDevices/{pc}/rotateBitLockerKeys"),
            )
            .await;
        assert_eq!(status, bitlocker_with_privileged, "{form:?}: {body}");
    }
}

#[tokio::test]
async fn real_device_listings_apply_only_the_documented_filters() {
    for (form, status) in [
        (graph_sim::DeviceFilters::Documented, 400),
        (graph_sim::DeviceFilters::Practice, 200),
    ] {
        let t = T::new(SimConfig {
            filter_mode: graph_sim::FilterMode::Refuse,
            shapes: graph_sim::Shapes {
                device_filters: form,
                ..Default::default()
            },
            ..real(100)
        })
        .await;
        let token = t.token().await;
        let (got, body) = t
            .get(
                &token,
                "/beta/deviceManagement/managedDevices?$filter=operatingSystem%20eq%20%27macOS%27",
            )
            .await;
        assert_eq!(got, status, "{form:?}: {body}");
    }
}

#[tokio::test]
async fn recovery_key_ids_are_guids() {
    let t = T::new(real(100)).await;
    let token = t.token().await;
    let r = t
        .http
        .get(t.url("/beta/informationProtection/bitlocker/recoveryKeys"))
        .bearer_auth(&token)
        .header("User-Agent", "sim-test")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let keys = body["value"].as_array().unwrap();
    assert!(!keys.is_empty());
    for k in keys {
        let id = k["id"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
}
