//! The engine's front door, driven in this process against graph-sim: a job plans a source into
//! its ledger, and the plan is sent, kept as a dry run, or discarded.

mod common;

use graph_client::GraphClient;
use graph_sim::{Quota, SimConfig, SimHandle};
use rotation::{
    DispatchOptions, InDoubt, Job, OpenSource, PlannedJob, ResultsTiming, RotationError, RunSpec,
    SignedIn, StopSignal,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A simulated tenant with limits high enough for a test, and a client signed in to it.
struct Env {
    sim: SimHandle,
    client: GraphClient,
    dir: tempfile::TempDir,
}

impl Env {
    async fn new(devices: usize) -> Env {
        let q = |n, s| Quota::new(n, Duration::from_secs(s));
        let config = SimConfig {
            devices,
            post_limit: q(4000, 1),
            tenant_post_limit: q(8000, 1),
            any_limit: q(20000, 1),
            ..SimConfig::default()
        };
        let sim = graph_sim::start(config)
            .await
            .expect("the simulator starts");
        let c = sim.config();
        let client = common::client(&sim.base_url, &c.tenant, &c.client_id, &c.client_secret);
        Env {
            sim,
            client,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn ledger(&self) -> PathBuf {
        self.dir.path().join("run.jsonl")
    }

    fn job<'s>(&self, spec: &'s RunSpec) -> Job<'s> {
        Job {
            spec,
            source: OpenSource::open(&spec.source).unwrap(),
            early_rows: None,
            policy: spec.policy.policy(spec.action).unwrap(),
            signed_in: SignedIn {
                tenant: self.sim.config().tenant.clone(),
                ..SignedIn::default()
            },
            rate: Quota::new(4000, Duration::from_secs(1)),
            ledger: self.ledger(),
            timing: ResultsTiming::BeforeSending,
            limit: None,
            max_devices: None,
        }
    }

    async fn plan(&self, job: Job<'_>) -> Result<PlannedJob, RotationError> {
        let (_tx, stop) = StopSignal::new();
        job.plan(Some(&self.client), &stop).await
    }

    fn accepted(&self) -> Vec<u64> {
        self.sim
            .stats()
            .actions
            .get("rotateFileVaultKey")
            .map(|m| m.values().copied().collect())
            .unwrap_or_default()
    }
}

fn options() -> DispatchOptions {
    DispatchOptions {
        rate: Quota::new(4000, Duration::from_secs(1)),
        in_doubt: InDoubt::Resend,
        ..DispatchOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_job_sends_each_device_it_keeps_once() {
    let env = Env::new(200).await;
    let spec = common::every_mac();
    let planned = env.plan(env.job(&spec)).await.unwrap();
    let to_send = planned.to_send;
    assert!(to_send > 0, "the tenant has Macs to rotate");
    let (_tx, stop) = StopSignal::new();
    let outcome = planned
        .send(&env.client, &options(), Arc::new(|_| {}), stop)
        .await
        .unwrap();
    let skipped_late: usize = outcome.skipped_at_sending.values().sum();
    assert_eq!(outcome.counters.rotated + skipped_late, to_send);
    let accepted = env.accepted();
    assert_eq!(accepted.len(), outcome.counters.rotated);
    assert!(accepted.iter().all(|&n| n == 1), "nobody twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_is_a_plan_that_is_not_sent() {
    let env = Env::new(100).await;
    let spec = common::every_mac();
    let planned = env
        .plan(Job {
            timing: ResultsTiming::BeforePlan,
            ..env.job(&spec)
        })
        .await
        .unwrap();
    let (state, _) = rotation::ledger_replay(planned.path()).unwrap();
    assert!(state.plan_done, "the plan is whole in its ledger");
    assert_eq!(planned.counters().rotated, 0);
    drop(planned);
    assert!(env.accepted().is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_plan_leaves_no_ledger_and_sends_nothing() {
    let env = Env::new(60).await;
    let spec = common::every_mac();
    env.plan(env.job(&spec)).await.unwrap().discard();
    assert!(!env.ledger().exists());
    assert!(env.accepted().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_over_the_most_devices_allowed_is_refused_and_leaves_no_ledger() {
    let env = Env::new(60).await;
    let spec = common::every_mac();
    let err = env
        .plan(Job {
            max_devices: Some(1),
            ..env.job(&spec)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, RotationError::TooManyDevices { max: 1, .. }),
        "{err}"
    );
    assert!(!env.ledger().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_asked_before_the_plan_ends_it_with_nothing_written() {
    let env = Env::new(60).await;
    let spec = common::every_mac();
    let (tx, stop) = StopSignal::new();
    tx.send(true).unwrap();
    let err = env
        .job(&spec)
        .plan(Some(&env.client), &stop)
        .await
        .unwrap_err();
    assert!(matches!(err, RotationError::StoppedBeforeSending), "{err}");
    assert!(!env.ledger().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_sends_as_many_devices_as_it_was_given() {
    let env = Env::new(300).await;
    let spec = common::every_mac();
    let planned = env
        .plan(Job {
            limit: Some(15),
            ..env.job(&spec)
        })
        .await
        .unwrap();
    let (_tx, stop) = StopSignal::new();
    let o = planned
        .send(&env.client, &options(), Arc::new(|_| {}), stop)
        .await
        .unwrap();
    assert_eq!(o.counters.rotated, 15);
    assert_eq!(env.accepted().len(), 15);
}
