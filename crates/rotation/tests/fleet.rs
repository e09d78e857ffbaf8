//! A run over many tenants, driven in this process against graph-sim: every tenant signed in to
//! through a `Connector`, ended as a `TenantEnd`, its manifest record written as it ends.

mod common;

use graph_sim::{Quota, SimConfig, SimHandle};
use rotation::fleet::{
    BlockCause, Blocked, Connector, Fleet, FleetEnd, FleetOutcome, Need, Reporter, Session,
    TenantEnd, open_tenants,
};
use rotation::{
    Counters, DispatchOptions, InDoubt, Manifest, RunDir, RunSpec, SignedIn, StopSignal,
    TenantEntry, TenantState,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

const ACTION: &str = "rotateFileVaultKey";

/// Simulated tenants, `unconsented` of them (the last ones) not consented to the app.
struct Env {
    sim: SimHandle,
    dir: tempfile::TempDir,
    tenants: Vec<TenantEntry>,
}

impl Env {
    async fn new(tenants: u64, unconsented: u64) -> Env {
        Env::with(tenants, unconsented, 40).await
    }

    async fn with(tenants: u64, unconsented: u64, devices: usize) -> Env {
        let q = |n, s| Quota::new(n, Duration::from_secs(s));
        let configs: Vec<SimConfig> = (0..tenants)
            .map(|i| SimConfig {
                tenant: format!("7e0a{i:04x}-5e1f-4c8e-9a61-{i:012x}"),
                tenant_name: format!("Customer {i:02}"),
                seed: 100 + i,
                devices,
                consented: i < tenants - unconsented,
                post_limit: q(4000, 1),
                tenant_post_limit: q(8000, 1),
                any_limit: q(20000, 1),
                ..SimConfig::default()
            })
            .collect();
        let sim = graph_sim::start_fleet("127.0.0.1:0".parse().unwrap(), configs)
            .await
            .expect("the simulator starts");
        let tenants = sim
            .tenants()
            .into_iter()
            .map(|(id, name, _)| TenantEntry {
                tenant_id: id.parse().unwrap(),
                name,
                cloud: None,
            })
            .collect();
        Env {
            sim,
            dir: tempfile::tempdir().unwrap(),
            tenants,
        }
    }

    fn run_dir(&self, spec: &RunSpec) -> RunDir {
        let manifest = Manifest::new(spec, &self.tenants, "query".into(), serde_json::json!({}));
        RunDir::create(&self.dir.path().join("run"), manifest).unwrap()
    }

    fn connector(&self) -> SimConnector {
        let c = self.sim.config();
        SimConnector {
            base_url: self.sim.base_url.clone(),
            client_id: c.client_id.clone(),
            secret: c.client_secret.clone(),
        }
    }

    /// Devices of `tenant` the simulator accepted the action for, each with its count.
    fn accepted(&self, tenant: Uuid) -> Vec<u64> {
        self.sim
            .stats_of(&tenant.to_string())
            .unwrap()
            .actions
            .get(ACTION)
            .map(|m| m.values().copied().collect())
            .unwrap_or_default()
    }

    async fn run(&self, spec: &RunSpec, run: RunDir, stop: StopSignal) -> (FleetOutcome, Events) {
        self.run_at(spec, run, stop, 4).await
    }

    async fn run_at(
        &self,
        spec: &RunSpec,
        run: RunDir,
        stop: StopSignal,
        concurrency: usize,
    ) -> (FleetOutcome, Events) {
        let events = Arc::new(Events::default());
        let connector = self.connector();
        let tenants = open_tenants(&run);
        let fleet = Fleet {
            spec: Arc::new(spec.clone()),
            policy: spec.policy.policy(spec.action).unwrap(),
            options: DispatchOptions {
                rate: Quota::new(4000, Duration::from_secs(1)),
                in_doubt: InDoubt::Verify,
                ..DispatchOptions::default()
            },
            concurrency,
            connector: Arc::new(connector),
            reporter: events.clone(),
            stop,
        };
        let outcome = fleet.run(run, tenants).await;
        let events = Arc::try_unwrap(events)
            .ok()
            .expect("the run holds no reporter");
        (outcome, events)
    }
}

/// Signs in with the simulator's app secret, as a multi-tenant app does in each tenant.
struct SimConnector {
    base_url: String,
    client_id: String,
    secret: String,
}

impl Connector for SimConnector {
    async fn connect(&self, tenant: &TenantEntry, _need: Need<'_>) -> Result<Session, Blocked> {
        let tenant_id = tenant.tenant_id.to_string();
        let client = common::client(&self.base_url, &tenant_id, &self.client_id, &self.secret);
        if let Err(e) = client.tokens().token().await {
            return Err(Blocked {
                cause: BlockCause::of_auth_error(&e),
                why: e.to_string(),
            });
        }
        Ok(Session {
            client,
            signed_in: SignedIn {
                tenant: tenant.tenant_id.to_string(),
                client_id: Some(self.client_id.clone()),
                ..SignedIn::default()
            },
        })
    }

    async fn connect_to_read(
        &self,
        tenant: &TenantEntry,
        _scopes: &[rotation::Permission],
    ) -> Result<graph_client::GraphClient, Blocked> {
        let need = Need {
            action: rotation::Action::FileVault,
            source_scopes: &[],
            lists_devices: true,
        };
        self.connect(tenant, need).await.map(|s| s.client)
    }

    fn advice(&self, tenant: &TenantEntry, cause: BlockCause) -> String {
        format!("{cause:?} in {}", tenant.tenant_id)
    }
}

/// Every event the run reported.
#[derive(Default)]
struct Events {
    progress: Mutex<Vec<(Uuid, usize)>>,
    ended: Mutex<Vec<(Uuid, TenantState)>>,
}

impl Reporter for Events {
    fn progress(&self, tenant: Uuid, c: &Counters) {
        self.progress.lock().unwrap().push((tenant, c.finished));
    }

    fn tenant_ended(&self, tenant: &TenantEntry, end: &TenantEnd) {
        self.ended
            .lock()
            .unwrap()
            .push((tenant.tenant_id, end.state()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_consented_tenant_is_rotated_once_and_the_unconsented_one_is_blocked_with_advice() {
    let env = Env::new(5, 1).await;
    let spec = common::every_mac();
    let (_tx, stop) = StopSignal::new();
    let (outcome, events) = env.run(&spec, env.run_dir(&spec), stop).await;
    assert_eq!(outcome.end(), FleetEnd::Incomplete);
    let unconsented = env.tenants[4].tenant_id;
    for (t, end) in &outcome.ends {
        if t.tenant_id == unconsented {
            let TenantEnd::Blocked(b) = end else {
                panic!("the unconsented tenant is blocked: {end:?}")
            };
            assert_eq!(b.cause, BlockCause::NotConsented, "{}", b.why);
            assert!(env.accepted(t.tenant_id).is_empty());
        } else {
            assert_eq!(end.state(), TenantState::Done, "{end:?}");
            let accepted = env.accepted(t.tenant_id);
            assert_eq!(accepted.len(), end.counters().unwrap().rotated);
            assert!(accepted.iter().all(|&n| n == 1), "nobody twice");
        }
    }
    let record = |id: Uuid| {
        let run = RunDir::open(outcome.run.dir()).unwrap();
        run.manifest()
            .tenants
            .iter()
            .find(|r| r.tenant.tenant_id == id)
            .cloned()
            .unwrap()
    };
    let blocked = record(unconsented);
    assert_eq!(blocked.state, TenantState::Blocked);
    assert!(blocked.auth);
    assert_eq!(
        blocked.advice.as_deref(),
        Some(format!("NotConsented in {unconsented}").as_str()),
        "the connector's advice is kept"
    );
    assert_eq!(events.ended.lock().unwrap().len(), 5, "one end per tenant");
    assert!(!events.progress.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_over_the_open_tenants_works_only_the_blocked_one_and_rotates_nobody_twice() {
    let env = Env::new(3, 1).await;
    let spec = common::every_mac();
    let (_tx, stop) = StopSignal::new();
    let (first, _) = env.run(&spec, env.run_dir(&spec), stop.clone()).await;
    let run = RunDir::open(first.run.dir()).unwrap();
    assert_eq!(
        open_tenants(&run).len(),
        1,
        "only the blocked tenant is open"
    );
    let (second, _) = env.run(&spec, run, stop).await;
    assert_eq!(second.ends.len(), 1);
    assert_eq!(second.ends[0].0.tenant_id, env.tenants[2].tenant_id);
    for t in &env.tenants[..2] {
        assert!(env.accepted(t.tenant_id).iter().all(|&n| n == 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_stop_no_tenant_starts_and_every_one_waits_for_resume() {
    let env = Env::new(3, 0).await;
    let spec = common::every_mac();
    let (tx, stop) = StopSignal::new();
    tx.send(true).unwrap();
    let (outcome, _) = env.run(&spec, env.run_dir(&spec), stop).await;
    assert_eq!(outcome.end(), FleetEnd::Interrupted);
    assert!(
        outcome
            .ends
            .iter()
            .all(|(_, e)| matches!(e, TenantEnd::NotStarted))
    );
    assert!(
        outcome
            .run
            .manifest()
            .tenants
            .iter()
            .all(|t| t.state == TenantState::Waiting)
    );
    for t in &env.tenants {
        assert!(env.accepted(t.tenant_id).is_empty(), "nothing sent");
    }
}

/// Records a person's read of `device`'s Windows LAPS password an hour ago, shown in the log at once.
async fn laps_read(env: &Env, tenant: Uuid, device: &str) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let at =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() - Duration::from_secs(3600));
    let r = reqwest::Client::new()
        .post(format!("{}/_sim/views?tenant={tenant}", env.sim.base_url))
        .json(&serde_json::json!({"device_id": device, "secret": "laps", "at": at.to_string(), "delay": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_tenants_read_their_audit_logs_within_the_logs_budgets() {
    let env = Env::with(300, 0, 24).await;
    let mut read = std::collections::HashMap::new();
    for t in &env.tenants {
        let tenant = env.sim.tenant_of(&t.tenant_id.to_string()).unwrap();
        let windows = tenant
            .devices
            .iter()
            .find(|d| d.os == "Windows" && d.azure_ad_device_id != graph_sim::ZERO_ID);
        if let Some(d) = windows {
            laps_read(&env, t.tenant_id, &d.id).await;
            read.insert(t.tenant_id, d.id.clone());
        }
    }
    assert!(read.len() > 290, "{}", read.len());
    let spec = RunSpec {
        action: rotation::Action::Laps,
        policy: rotation::PolicySpec {
            eligibility: rotation::Eligibility::Off,
            ..rotation::PolicySpec::default()
        },
        viewed: Some(rotation::views::ViewedSpec {
            within_secs: 86_400,
            activities: Vec::new(),
        }),
        ..common::every_mac()
    };
    let (_tx, stop) = StopSignal::new();
    let (outcome, _) = env.run_at(&spec, env.run_dir(&spec), stop, 32).await;
    assert_eq!(outcome.end(), FleetEnd::Done);
    for (t, end) in &outcome.ends {
        assert_eq!(end.state(), TenantState::Done, "{end:?}");
        let stats = env.sim.stats_of(&t.tenant_id.to_string()).unwrap();
        let laps = stats
            .actions
            .get("rotateLocalAdminPassword")
            .cloned()
            .unwrap_or_default();
        match read.get(&t.tenant_id) {
            Some(d) => {
                assert_eq!(laps.len(), 1, "only the device read: {laps:?}");
                assert_eq!(laps.get(d), Some(&1));
            }
            None => assert!(laps.is_empty(), "no read, no rotation"),
        }
    }
    let all = env.sim.stats();
    assert!(all.audit_requests >= 300, "{}", all.audit_requests);
    assert_eq!(all.audit_throttled, 0, "no log answered 429");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifying_a_run_directory_signs_in_to_each_tenant_and_names_the_one_without_a_ledger() {
    let env = Env::with(3, 1, 40).await;
    let spec = common::every_mac();
    let (_tx, stop) = StopSignal::new();
    let (outcome, _) = env.run(&spec, env.run_dir(&spec), stop).await;
    let run = RunDir::open(outcome.run.dir()).unwrap();
    let passes = Mutex::new(0usize);
    let o = rotation::VerifyOptions {
        rate: Quota::new(4000, Duration::from_secs(1)),
        ..rotation::VerifyOptions::default()
    };
    let v = rotation::fleet::verify_run(&run, &env.connector(), &o, &|_, _| {
        *passes.lock().unwrap() += 1;
    })
    .await
    .unwrap();
    assert_eq!(v.tenants.len(), 3);
    let mut verified = 0;
    for (t, result) in &v.tenants {
        match result {
            rotation::fleet::TenantVerification::Verified(r) => {
                let looked: usize = r.counts.values().sum();
                assert_eq!(
                    looked,
                    env.accepted(t.tenant.tenant_id).len(),
                    "each rotated device looked up"
                );
                verified += 1;
            }
            rotation::fleet::TenantVerification::NoLedger => {
                assert_eq!(
                    t.tenant.tenant_id, env.tenants[2].tenant_id,
                    "the unconsented tenant has none"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(verified, 2);
    assert!(!v.all_done(), "a tenant without a ledger is not done");
    assert_eq!(*passes.lock().unwrap(), 2, "one pass per verified tenant");
    let total: usize = v.total.values().sum();
    assert_eq!(
        total,
        env.accepted(env.tenants[0].tenant_id).len() + env.accepted(env.tenants[1].tenant_id).len()
    );
}
