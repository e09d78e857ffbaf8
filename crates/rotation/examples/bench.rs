//! `make bench`: the figures in docs/BENCHMARKS.md, as ratios measured in one run.
//!
//! cargo run --release -p rotation --example bench [-- --quick | --smoke | --intune]
//!   --quick   smaller sizes (about four minutes)
//!   --smoke   every step once at the smallest sizes, in seconds: CI runs it so that no step
//!             rots unseen (its figures mean nothing)
//!   --intune  also ride Intune's real default (200/20s, 5,000 Macs, ~9 minutes)

use graph_client::{Cloud, Credential, Endpoints, GraphClient, GraphClientError, SecretString};
use graph_sim::{Quota, SimConfig, ThrottleModel};
use rotation::{DeviceList, DispatchOptions, InDoubt, Plan, RotateRequest, RunHeader, StopSignal};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The simulator runs in this process: the same allocator as the binary's, so neither side's
/// figures are the system allocator's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn client(base: &str, client_id: &str, secret: &str, tenant: &str) -> GraphClient {
    let endpoints = Endpoints::new(Cloud::Global, Some(base), Some(base)).unwrap();
    let credential = Credential::ClientSecret {
        tenant: tenant.into(),
        client_id: client_id.into(),
        secret: SecretString::from(secret.to_string()),
    };
    GraphClient::new(endpoints, credential, "beta").unwrap()
}

fn header(tenant: &str, rate: Quota, source: &Path) -> RunHeader {
    RunHeader {
        client_id: Some("sim-client".into()),
        created_at: String::new(),
        ..RunHeader::new(
            tenant,
            rotation::Action::FileVault,
            source.display().to_string(),
            rate,
        )
    }
}

struct Ride {
    rotated: usize,
    ratio: f64,
    share_429: f64,
    first_request: f64,
    retries: u64,
    elapsed: f64,
    twice: usize,
    failed: usize,
    pending: usize,
    /// The competing app's devices rotated, items throttled and items sent, when there was one.
    theirs: Option<(usize, u64, u64)>,
}

/// Another app in the same tenant-wide limit, rotating BitLocker keys with the same engine.
#[derive(Debug, Clone, Copy)]
struct Competitor {
    rate: Quota,
    tenant: Quota,
    /// How it starts: `Some(false)` is an app already pacing evenly.
    cold_start: Option<bool>,
}

/// A full rotation against a simulated tenant at `limit`, optionally with a competing app eating
/// `competitor` of the tenant-wide budget.
async fn ride(
    devices: usize,
    limit: Quota,
    latency_ms: u64,
    competitor: Option<Competitor>,
    cold_start: Option<bool>,
    model: ThrottleModel,
) -> Ride {
    let tenant_limit = competitor.map_or(Quota::new(limit.count * 2, limit.window), |c| c.tenant);
    let dir = tempfile::tempdir().unwrap();
    let config = SimConfig {
        devices,
        mac_share: 0.5,
        post_limit: limit,
        tenant_post_limit: tenant_limit,
        any_limit: Quota::new(limit.count * 10, limit.window),
        latency: Duration::from_millis(latency_ms),
        extra_clients: vec![("competitor".into(), "competitor-secret".into())],
        throttle_model: model,
        ..SimConfig::default()
    };
    let sim = graph_sim::start(config.clone()).await.unwrap();
    let csv = dir.path().join("devices.csv");
    std::fs::write(&csv, sim.tenant().devices_csv()).unwrap();
    let ours = client(&sim.base_url, "sim-client", "sim-secret", &config.tenant);
    // The other app is as polite as we are: the same engine, rotating BitLocker keys on the
    // tenant's Windows devices at its own quota, sharing the tenant-wide budget with us.
    let (stop_them, stop) = StopSignal::new();
    let competitor_task = competitor.map(
        |Competitor {
             rate: q,
             cold_start,
             ..
         }| {
            let them = client(
                &sim.base_url,
                "competitor",
                "competitor-secret",
                &config.tenant,
            );
            let (csv, ledger, tenant) = (
                csv.clone(),
                dir.path().join("competitor.jsonl"),
                config.tenant.clone(),
            );
            tokio::spawn(async move {
                let source =
                    Plan::check(DeviceList::open(&csv.to_string_lossy()).unwrap()).unwrap();
                let mut h = header(&tenant, q, &csv);
                h.action = rotation::Action::BitLocker;
                h.client_id = Some("competitor".into());
                let options = DispatchOptions {
                    rate: q,
                    in_doubt: InDoubt::Resend,
                    cold_start,
                    ..DispatchOptions::default()
                };
                let req = RotateRequest {
                    header: h,
                    source,
                    policy: rotation::Policy::for_action(rotation::Action::BitLocker),
                    ledger,
                    options,
                    max_devices: None,
                };
                rotation::rotate(&them, req, Arc::new(|_| {}), stop)
                    .await
                    .unwrap()
                    .counters
            })
        },
    );
    let source = Plan::check(DeviceList::open(&csv.to_string_lossy()).unwrap()).unwrap();
    let options = DispatchOptions {
        rate: limit,
        in_doubt: InDoubt::Resend,
        cold_start,
        tenant_rate: Some(tenant_limit),
        ..DispatchOptions::default()
    };
    let (_tx, stop) = StopSignal::new();
    let req = RotateRequest {
        header: header(&config.tenant, limit, &csv),
        source,
        policy: rotation::Policy::for_action(rotation::Action::FileVault),
        ledger: dir.path().join("l.jsonl"),
        options,
        max_devices: None,
    };
    let ledger = dir.path().join("l.jsonl");
    let outcome = rotation::rotate(&ours, req, Arc::new(|_| {}), stop)
        .await
        .unwrap();
    let _ = stop_them.send(true);
    let theirs = match competitor_task {
        Some(t) => Some(t.await.unwrap()),
        None => None,
    };
    let c = &outcome.counters;
    let stats = sim.stats();
    let ours_requests = c.items_sent.max(1);
    Ride {
        rotated: c.rotated,
        ratio: window_rate(&ledger, limit) / limit.per_second(),
        share_429: c.throttled as f64 / ours_requests as f64,
        first_request: c.first_request_secs.unwrap_or(0.0),
        retries: c.retries,
        elapsed: c.elapsed_secs,
        twice: stats.devices_accepted_twice("rotateFileVaultKey"),
        failed: c.failed,
        pending: c.pending + c.in_doubt,
        theirs: theirs.map(|t| (t.rotated, t.throttled, t.items_sent)),
    }
}

/// The long-run send rate, items per second: the items of every window's credit before the last
/// window began, over the time from the first send to the first send of the last window. An empty
/// window's credit goes at once and the rest when it frees, so the rate between the first and the
/// last batch would count the last window's credit as free; evenly paced, both measures agree.
fn window_rate(ledger: &Path, limit: Quota) -> f64 {
    rate_of(sent_times(ledger), limit)
}

/// [`window_rate`] of sends already read.
fn rate_of(mut sent: Vec<u64>, limit: Quota) -> f64 {
    sent.sort_unstable();
    let q = limit.count as usize;
    let k = sent.len().saturating_sub(1) / q;
    if k == 0 {
        return f64::NAN;
    }
    let span = (sent[k * q] - sent[0]) as f64 / 1000.0;
    (k * q) as f64 / span.max(1e-9)
}

/// When each send of `ledger` left, in ms since the epoch, in file order.
fn sent_times(ledger: &Path) -> Vec<u64> {
    let mut sent: Vec<u64> = Vec::new();
    if !ledger.exists() {
        // A tenant of a run that never planned (blocked): the run's table says so.
        return sent;
    }
    rotation::ledger_rows(ledger, |row| {
        if let rotation::Row::Sent { at, .. } = row {
            sent.push(
                humantime::parse_rfc3339(&at)
                    .unwrap()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64,
            );
        }
    })
    .unwrap();
    sent
}

/// Wall time of intune-rotate rotating `n` Macs at `limit` on a fresh tenant, and items answered 429.
async fn sweep_ours(n: usize, limit: Quota, latency_ms: u64, model: ThrottleModel) -> (f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let (sim, csv, config) = sweep_tenant(n, limit, latency_ms, dir.path(), model).await;
    let ours = client(&sim.base_url, "sim-client", "sim-secret", &config.tenant);
    let req = RotateRequest {
        header: header(&config.tenant, limit, &csv),
        source: Plan::check(DeviceList::open(&csv.to_string_lossy()).unwrap()).unwrap(),
        policy: rotation::Policy::for_action(rotation::Action::FileVault),
        ledger: dir.path().join("l.jsonl"),
        options: DispatchOptions {
            rate: limit,
            in_doubt: InDoubt::Resend,
            ..DispatchOptions::default()
        },
        max_devices: None,
    };
    let (_tx, stop) = StopSignal::new();
    let outcome = rotation::rotate(&ours, req, Arc::new(|_| {}), stop)
        .await
        .unwrap();
    assert_eq!(outcome.counters.rotated, n, "every Mac rotated");
    (outcome.counters.elapsed_secs, sim.stats().throttled)
}

/// Up to `n` Macs of `tenant` a FileVault plan sends to: encrypted, corporate, escrow working,
/// nothing of ours pending.
fn sendable_macs(tenant: &graph_sim::Tenant, n: usize) -> Vec<String> {
    let now = std::time::SystemTime::now();
    tenant
        .devices
        .iter()
        .filter(|d| {
            d.os == "macOS"
                && d.encrypted
                && d.owner == "company"
                && d.filevault_state == "success"
                && !d.action_results.iter().any(|r| r.completes > now)
        })
        .take(n)
        .map(|d| d.id.clone())
        .collect()
}

/// A fresh tenant of `n` encrypted Macs under `model`, and their list.
async fn sweep_tenant(
    n: usize,
    limit: Quota,
    latency_ms: u64,
    dir: &Path,
    model: ThrottleModel,
) -> (graph_sim::SimHandle, std::path::PathBuf, SimConfig) {
    let config = SimConfig {
        devices: n * 4 + 100,
        mac_share: 1.0,
        post_limit: limit,
        tenant_post_limit: Quota::new(limit.count * 2, limit.window),
        any_limit: Quota::new(limit.count * 10, limit.window),
        latency: Duration::from_millis(latency_ms),
        throttle_model: model,
        ..SimConfig::default()
    };
    let sim = graph_sim::start(config.clone()).await.unwrap();
    let macs = sendable_macs(&sim.tenant(), n);
    assert_eq!(macs.len(), n, "enough eligible Macs");
    let csv = dir.join("macs.csv");
    let mut text = String::from("id,operatingSystem,isEncrypted,managedDeviceOwnerType\n");
    for id in &macs {
        text.push_str(&format!("{id},macOS,true,company\n"));
    }
    std::fs::write(&csv, text).unwrap();
    (sim, csv, config)
}

/// The cold-start guess gone wrong: another tool used this app's window a moment ago (a run of a
/// full window's credit on other devices), and a new run starts cold at once, or paced evenly.
/// Wall time and items answered 429 of the second run.
async fn window_just_used(limit: Quota, latency_ms: u64, cold: Option<bool>) -> (f64, u64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let n = limit.count as usize * 2;
    let (sim, csv, config) =
        sweep_tenant(n * 2, limit, latency_ms, dir.path(), ThrottleModel::None).await;
    let ours = client(&sim.base_url, "sim-client", "sim-secret", &config.tenant);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let head = lines.next().unwrap();
    let rest: Vec<&str> = lines.collect();
    let (first, second) = rest.split_at(limit.count as usize);
    let mut outcomes = Vec::new();
    for (k, (part, cold)) in [(first, None), (&second[..n], cold)]
        .into_iter()
        .enumerate()
    {
        let list = dir.path().join(format!("part{k}.csv"));
        std::fs::write(&list, format!("{head}\n{}\n", part.join("\n"))).unwrap();
        let req = RotateRequest {
            header: header(&config.tenant, limit, &list),
            source: Plan::check(DeviceList::open(&list.to_string_lossy()).unwrap()).unwrap(),
            policy: rotation::Policy::for_action(rotation::Action::FileVault),
            ledger: dir.path().join(format!("l{k}.jsonl")),
            options: DispatchOptions {
                rate: limit,
                in_doubt: InDoubt::Resend,
                cold_start: cold,
                ..DispatchOptions::default()
            },
            max_devices: None,
        };
        let before = sim.stats().throttled;
        let (_tx, stop) = StopSignal::new();
        let o = rotation::rotate(&ours, req, Arc::new(|_| {}), stop)
            .await
            .unwrap();
        outcomes.push((
            o.counters.elapsed_secs,
            sim.stats().throttled - before,
            o.counters.rotated,
        ));
    }
    outcomes[1]
}

/// The script an admin would write: 20 workers posting directly, each honouring Retry-After with
/// 3 retries as Microsoft's RetryHandler does. Wall time, devices rotated, items answered 429.
async fn twenty_workers(
    n: usize,
    limit: Quota,
    latency_ms: u64,
    model: ThrottleModel,
) -> (f64, usize, u64) {
    let dir = tempfile::tempdir().unwrap();
    let (sim, csv, config) = sweep_tenant(n, limit, latency_ms, dir.path(), model).await;
    let c = client(&sim.base_url, "sim-client", "sim-secret", &config.tenant);
    let ids: Vec<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(ids));
    let start = Instant::now();
    let workers: Vec<_> = (0..20)
        .map(|_| {
            let (c, queue) = (c.clone(), queue.clone());
            tokio::spawn(async move {
                let mut done = 0;
                loop {
                    let Some(id) = queue.lock().unwrap().pop() else {
                        return done;
                    };
                    let path = format!("/deviceManagement/managedDevices/{id}/rotateFileVaultKey");
                    for attempt in 0..=3u32 {
                        match c.post_action(&path).await {
                            Ok(_) => {
                                done += 1;
                                break;
                            }
                            Err(e) if e.is_transient() && attempt < 3 => {
                                let backoff = Duration::from_secs(3 << attempt);
                                tokio::time::sleep(e.retry_after().unwrap_or(backoff)).await;
                            }
                            Err(_) => break,
                        }
                    }
                }
            })
        })
        .collect();
    let mut done = 0;
    for w in workers {
        done += w.await.unwrap();
    }
    (start.elapsed().as_secs_f64(), done, sim.stats().throttled)
}

/// The simplest correct alternative: one direct POST per device, in turn, honouring Retry-After.
async fn one_at_a_time(devices: usize, limit: Quota, latency_ms: u64) -> (usize, f64) {
    let config = SimConfig {
        devices,
        mac_share: 1.0,
        post_limit: limit,
        latency: Duration::from_millis(latency_ms),
        ..SimConfig::default()
    };
    let sim = graph_sim::start(config.clone()).await.unwrap();
    let c = client(&sim.base_url, "sim-client", "sim-secret", &config.tenant);
    let macs: Vec<String> = sim
        .tenant()
        .devices
        .iter()
        .filter(|d| d.encrypted)
        .map(|d| d.id.clone())
        .collect();
    let start = Instant::now();
    let mut done = 0;
    for id in &macs {
        for _ in 0..10 {
            match c
                .post_action(&format!(
                    "/deviceManagement/managedDevices/{id}/rotateFileVaultKey"
                ))
                .await
            {
                Ok(_) => {
                    done += 1;
                    break;
                }
                Err(GraphClientError::Http { retry_after, .. }) => {
                    tokio::time::sleep(retry_after.unwrap_or(Duration::from_secs(1))).await
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }
    (done, done as f64 / start.elapsed().as_secs_f64())
}

/// What the plan's reads of the tenant's records cost for `n` devices at Intune's default limits:
/// Graph requests (each `$batch` item counted), HTTP requests, 429s and wall time.
async fn facts_cost(n: usize, latency_ms: u64) -> Vec<String> {
    let config = SimConfig {
        devices: n,
        latency: Duration::from_millis(latency_ms),
        ..SimConfig::default()
    };
    let sim = graph_sim::start(config.clone()).await.unwrap();
    let c = client(&sim.base_url, "sim-client", "sim-secret", &config.tenant);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("devices.csv");
    std::fs::write(&csv, sim.tenant().devices_csv()).unwrap();
    let list = DeviceList::open(csv.to_str().unwrap()).unwrap();
    let mut rows = Vec::new();
    for (what, action, within) in [
        (
            "FileVault: pending actions + encryption report",
            rotation::Action::FileVault,
            None,
        ),
        (
            "BitLocker: pending actions + recovery keys (--skip-rotated-within)",
            rotation::Action::BitLocker,
            Some(Duration::from_secs(90 * 86_400)),
        ),
    ] {
        let before = sim.stats();
        let start = Instant::now();
        let wanted = rotation::FactsWanted {
            rotated_within: within,
            skip_pending: true,
            ..Default::default()
        };
        let policy = rotation::Policy::for_action(action);
        let facts = rotation::read_facts(&c, &list, &policy, &wanted)
            .await
            .unwrap();
        let secs = start.elapsed().as_secs_f64();
        let after = sim.stats();
        let planned = facts.devices.len();
        let requests = after.requests - before.requests;
        rows.push(format!(
            "| {what} | {n} in the tenant, {planned} on the platform | {requests} | {:.2} | {} | {} | {secs:.1} s |",
            requests as f64 * 1000.0 / planned as f64,
            after.http_requests - before.http_requests,
            after.throttled - before.throttled,
        ));
    }
    rows
}

/// Issue 27's cost: where the listing leaves `deviceActionResults` out (graph-sim's default), a
/// run that sends reads every Mac by GET just before sending it. Its whole time (plan reads and
/// sending) against the same run on a twin tenant whose listing carries the results, so that no
/// Mac is read: the difference is what the reads add. In one run, on quotas scaled by `scale`
/// (both are paced by their windows, so the ratio does not move with the scale). Returns the rows
/// of the table in docs/BENCHMARKS.md.
async fn results_cost(n: usize, scale: u32) -> Vec<String> {
    let mut rows = Vec::new();
    let mut reference = None;
    for listing in [
        graph_sim::ListResults::Included,
        graph_sim::ListResults::Omitted,
    ] {
        let ran = results_run(n, scale, listing).await;
        let base = *reference.get_or_insert(ran.total);
        rows.push(format!(
            "| {n} Macs, quotas ×{scale}, listing {listing:?} | {} | {:.1} s | {} | {} rotated, {} skipped | {:.1} s | {} | {} | **{:+.1} %** |",
            ran.how,
            ran.planning,
            ran.reads,
            ran.rotated,
            ran.skipped,
            ran.total,
            ran.reads_throttled,
            ran.sends_throttled,
            100.0 * (ran.total - base) / base,
        ));
    }
    rows
}

/// One run of [`results_cost`].
struct ResultsRun {
    how: String,
    planning: f64,
    total: f64,
    reads: u64,
    reads_throttled: u64,
    sends_throttled: u64,
    rotated: usize,
    skipped: usize,
}

async fn results_run(n: usize, scale: u32, listing: graph_sim::ListResults) -> ResultsRun {
    let window = Duration::from_secs(20) / scale;
    let (post, any) = (Quota::new(200, window), Quota::new(2000, window));
    let mut config = SimConfig {
        devices: n,
        mac_share: 1.0,
        post_limit: post,
        tenant_post_limit: Quota::new(400, window),
        any_limit: any,
        ..SimConfig::default()
    };
    config.shapes.list_results = listing;
    let sim = graph_sim::start(config.clone()).await.unwrap();
    let c = client(&sim.base_url, "sim-client", "sim-secret", &config.tenant);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("devices.csv");
    std::fs::write(&csv, sim.tenant().devices_csv()).unwrap();
    let source = Plan::check(DeviceList::open(csv.to_str().unwrap()).unwrap()).unwrap();
    let wanted = rotation::FactsWanted {
        skip_pending: true,
        read_rate: Some(any),
        timing: rotation::ResultsTiming::BeforeSending,
        ..Default::default()
    };
    let before = sim.stats();
    let start = Instant::now();
    let mut policy = rotation::Policy::for_action(rotation::Action::FileVault);
    let facts = rotation::read_facts(&c, source.source(), &policy, &wanted)
        .await
        .unwrap();
    let planning = start.elapsed().as_secs_f64();
    let read = facts.results_read.expect("action results were read");
    policy.facts = facts.devices;
    let options = DispatchOptions {
        rate: post,
        // The run's reads beside the sending: half the service's quota, as by default.
        read_rate: Some(Quota::new(1000, window)),
        in_doubt: InDoubt::Resend,
        ..DispatchOptions::default()
    };
    let (_tx, stop) = StopSignal::new();
    let req = RotateRequest {
        header: RunHeader {
            action_results: Some(read),
            ..header(&config.tenant, post, &csv)
        },
        source,
        policy,
        ledger: dir.path().join("l.jsonl"),
        options,
        max_devices: None,
    };
    let outcome = rotation::rotate(&c, req, Arc::new(|_| {}), stop)
        .await
        .unwrap();
    let total = start.elapsed().as_secs_f64();
    let after = sim.stats();
    ResultsRun {
        how: format!("{:?}", read.source),
        planning,
        total,
        reads: after.requests - before.requests - outcome.counters.items_sent,
        reads_throttled: after.throttled - before.throttled - outcome.counters.throttled,
        sends_throttled: outcome.counters.throttled,
        rotated: outcome.counters.rotated,
        skipped: outcome.counters.skipped,
    }
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A device list of `n` eligible Macs with fresh GUIDs.
fn write_macs(path: &std::path::Path, n: usize) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    // Company-owned and encrypted, as strict eligibility wants to read them.
    writeln!(
        w,
        "id,deviceName,operatingSystem,managedDeviceOwnerType,isEncrypted"
    )?;
    for i in 0..n {
        writeln!(w, "{},MAC-{i:07},macOS,company,true", uuid::Uuid::new_v4())?;
    }
    w.flush()
}

/// The shipped binary planning `n` devices into a ledger, measured from outside: wall seconds and
/// peak RSS in MB. `None` where /usr/bin/time or the release binary is missing.
/// The shipped binary next to this example (`make bench` builds it), and /usr/bin/time.
fn binary() -> Option<std::path::PathBuf> {
    let bin = std::env::current_exe()
        .ok()?
        .parent()?
        .parent()?
        .join("intune-rotate");
    (bin.exists() && Path::new("/usr/bin/time").exists()).then_some(bin)
}

/// Runs the binary with `args` under `/usr/bin/time -v`: wall seconds and peak RSS in MB.
fn timed(args: &[&std::ffi::OsStr]) -> Option<(f64, f64)> {
    timed_ending(args, true)
}

/// As [`timed`]; `must_succeed: false` times a command that is expected to stop with an error (a
/// reader's planning step before a connection that is refused).
fn timed_ending(args: &[&std::ffi::OsStr], must_succeed: bool) -> Option<(f64, f64)> {
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg(binary()?)
        .args(args)
        .env("RUST_LOG", "warn")
        .env("AZURE_CLIENT_SECRET", "unused")
        .stdout(std::process::Stdio::null())
        .output()
        .ok()?;
    if must_succeed && !out.status.success() {
        eprintln!(
            "binary run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let report = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let kb: f64 = field("Maximum resident set size (kbytes):")?.parse().ok()?;
    // "m:ss.ss" or "h:mm:ss"
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):")?;
    let secs = wall.split(':').try_fold(0.0, |acc, part| {
        part.parse::<f64>().ok().map(|v| acc * 60.0 + v)
    })?;
    Some((secs, kb / 1024.0))
}

fn binary_plan(n: usize) -> Option<(f64, f64)> {
    let dir = tempfile::tempdir().ok()?;
    let csv = dir.path().join("devices.csv");
    write_macs(&csv, n).ok()?;
    let ledger = dir.path().join("run.jsonl");
    let s = |v: &'static str| std::ffi::OsStr::new(v);
    timed(&[
        s("rotate"),
        s("--action"),
        s("filevault"),
        s("--dry-run"),
        s("--input"),
        csv.as_os_str(),
        s("--ledger"),
        ledger.as_os_str(),
    ])
}

/// A finished ledger of `n` devices as a run writes it: the plan, then a `sent` and a `rotated`
/// outcome with Graph's support ids for each.
fn finished_ledger(path: &Path, n: usize) {
    use rotation::{Outcome, Row};
    let h = header("t", Quota::new(200, Duration::from_secs(20)), path);
    let mut l = rotation::Ledger::create(path, &h).unwrap();
    let id =
        |i: usize| uuid::Uuid::from_u128(0x6d1f_0000_0000_4000_8000_0000_0000_0000 | i as u128);
    for i in 0..n {
        l.append(&Row::Planned {
            id: id(i),
            name: Some(format!("MAC-{i:07}")),
            serial: Some(format!("C02X{i:08}")),
            user: Some(format!("user{i}@example.test")),
            os: Some("macOS".into()),
            line: Some(i as u64 + 2),
            viewed_at: None,
            viewed_by: None,
        })
        .unwrap();
    }
    l.append(&Row::PlanDone {
        planned: n as u64,
        skipped: 0,
        skip_reasons: Default::default(),
        at: "2026-11-28T08:00:00.000Z".into(),
    })
    .unwrap();
    for i in 0..n {
        let at = format!(
            "2026-11-28T08:{:02}:{:02}.{:03}Z",
            (i / 10_000) % 60,
            (i / 200) % 60,
            i % 1000
        );
        l.append(&Row::Sent {
            id: id(i),
            attempt: 1,
            at: at.clone(),
        })
        .unwrap();
        l.append(&Row::Outcome {
            id: id(i),
            result: Outcome::Rotated,
            cause: None,
            status: Some(204),
            code: None,
            message: None,
            request_id: Some(uuid::Uuid::from_u128(i as u128).to_string()),
            client_request_id: Some(uuid::Uuid::from_u128(!(i as u128)).to_string()),
            date: Some("Sat, 28 Nov 2026 08:00:00 GMT".into()),
            at,
        })
        .unwrap();
    }
    // As a run ends: with the checkpoint that lets the next open skip what it covers.
    l.checkpoint().unwrap();
}

/// Each ledger reader of the binary on a finished ledger of `n` devices: seconds and peak RSS.
/// Every reader but the checkpoint-less `status` finds the ledger as a finished run leaves it.
/// `export --run-dir` of `tenants` finished ledgers of `n` devices each, against `export --ledger`
/// of one of them: the run directory's export streams each ledger into the output, so its peak
/// memory is one ledger's, whatever the number of tenants. Rows of the table in BENCHMARKS.md.
fn fleet_export(tenants: usize, n: usize) -> Vec<String> {
    use rotation::{Manifest, RunDir, TenantEntry, TenantRecord, TenantState};
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<TenantEntry> = (0..tenants)
        .map(|k| TenantEntry {
            tenant_id: uuid::Uuid::from_u128(0x7e0a_0000_5e1f_4c8e_9a61_0000_0000_0000 | k as u128),
            name: format!("Customer {k:03}"),
            cloud: None,
        })
        .collect();
    let manifest = Manifest {
        version: 2,
        action: rotation::Action::FileVault.to_string(),
        source: "--query".into(),
        options: serde_json::json!({}),
        spec: None,
        created_at: rotation::now_iso(),
        tenants: entries
            .iter()
            .map(|e| TenantRecord {
                tenant: e.clone(),
                state: TenantState::Done,
                reason: None,
                advice: None,
                auth: false,
            })
            .collect(),
    };
    let run_dir = dir.path().join("run");
    let run = RunDir::create(&run_dir, manifest).unwrap();
    for e in &entries {
        finished_ledger(&run.ledger(e.tenant_id), n);
    }
    let one = run.ledger(entries[0].tenant_id);
    let out = dir.path().join("out");
    let s = |v: &'static str| std::ffi::OsStr::new(v);
    let mut rows = Vec::new();
    for (format, flag) in [("csv", None), ("json", Some("json"))] {
        let export = |what: &'static str, path: &std::ffi::OsStr| {
            let mut a = vec![s("export"), s(what), path, s("--out"), out.as_os_str()];
            if let Some(f) = flag {
                a.extend([s("--format"), s(f)]);
            }
            timed(&a)
        };
        let single = export("--ledger", one.as_os_str());
        let all = export("--run-dir", run_dir.as_os_str());
        if let (Some((s1, m1)), Some((sa, ma))) = (single, all) {
            rows.push(format!(
                "| {format} | {n} | {s1:.2} s, {m1:.0} MB | {tenants} × {n} | {sa:.2} s, {ma:.0} MB | {:.2} |",
                ma / m1
            ));
        } else {
            rows.push(format!(
                "| {format} | skipped: needs /usr/bin/time and the release binary |"
            ));
        }
    }
    rows
}

async fn readers(n: usize) -> Vec<(&'static str, Option<(f64, f64)>)> {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("finished.jsonl");
    finished_ledger(&ledger, n);
    let out = dir.path().join("out");
    let s = |v: &'static str| std::ffi::OsStr::new(v);
    let l = ledger.as_os_str();
    let with = timed(&[s("status"), s("--ledger"), l]);
    let checkpoint = dir.path().join("finished.jsonl.state");
    let aside = dir.path().join("state.aside");
    std::fs::rename(&checkpoint, &aside).unwrap();
    let without = timed(&[s("status"), s("--ledger"), l]);
    std::fs::rename(&aside, &checkpoint).unwrap();
    vec![
        ("status", with),
        ("status, no checkpoint (a run that crashed)", without),
        (
            "export (csv)",
            timed(&[s("export"), s("--ledger"), l, s("--out"), out.as_os_str()]),
        ),
        (
            "export --format json",
            timed(&[
                s("export"),
                s("--ledger"),
                l,
                s("--format"),
                s("json"),
                s("--out"),
                out.as_os_str(),
            ]),
        ),
        (
            "report (HTML; failures and a sample in the table)",
            timed(&[s("report"), s("--ledger"), l, s("--out"), out.as_os_str()]),
        ),
        (
            "verify, its planning step (up to its first look-up)",
            verify_planning(&ledger).await,
        ),
    ]
}

/// `verify` against graph-sim from its start to its first look-up `$batch` (opening the ledger,
/// signing in, the pre-flight read, choosing the devices): seconds, and the peak RSS then, read
/// from `/proc` before the process is stopped (the look-ups of a million devices are not timed).
async fn verify_planning(ledger: &Path) -> Option<(f64, f64)> {
    let config = SimConfig {
        devices: 10,
        ..SimConfig::default()
    };
    let sim = graph_sim::start(config.clone()).await.ok()?;
    let start = Instant::now();
    let mut child = std::process::Command::new(binary()?)
        .arg("verify")
        .arg("--ledger")
        .arg(ledger)
        .args(["--tenant", &config.tenant, "--client-id", "sim-client"])
        .args(["--graph-url", &sim.base_url, "--login-url", &sim.base_url])
        .env("RUST_LOG", "warn")
        .env("AZURE_CLIENT_SECRET", "sim-secret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let pid = child.id();
    let peak_mb = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<f64>()
            .ok()
            .map(|kb| kb / 1024.0)
    };
    let mut found = None;
    for _ in 0..60_000 {
        if sim.stats().batches > 0 {
            let secs = start.elapsed().as_secs_f64();
            found = peak_mb().map(|mb| (secs, mb));
            break;
        }
        if !matches!(child.try_wait(), Ok(None)) {
            eprintln!("verify ended before its first look-up");
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    sim.shutdown().await;
    found
}

fn plan_child(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("devices.csv");
    write_macs(&csv, n).unwrap();
    let ledger = dir.path().join("l.jsonl");
    let start = Instant::now();
    let source = Plan::check(DeviceList::open(&csv.to_string_lossy()).unwrap()).unwrap();
    let mut l = rotation::Ledger::create(
        &ledger,
        &header("t", Quota::new(200, Duration::from_secs(20)), &csv),
    )
    .unwrap();
    let report = Plan::build(
        &source,
        &rotation::Policy::for_action(rotation::Action::FileVault),
        &mut l,
    )
    .unwrap();
    drop(l);
    let plan_secs = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let (state, _) = rotation::ledger_replay(&ledger).unwrap();
    let replay_secs = start.elapsed().as_secs_f64();
    assert_eq!(report.planned, n);
    println!(
        "{}",
        serde_json::json!({"devices": n, "plan_secs": plan_secs, "replay_rows": state.rows, "replay_secs": replay_secs, "peak_rss_mb": peak_rss_mb()})
    );
}

/// One FileVault run of `n` Macs at `limit` with 100 ms latency and the given faults: wall time,
/// devices rotated twice, and Graph reads (every Graph request but the items sent).
async fn fault_cost(
    n: usize,
    limit: Quota,
    faults: SimConfig,
    recheck: Duration,
    strict_once: bool,
) -> (f64, usize, u64) {
    let dir = tempfile::tempdir().unwrap();
    let (base_sim, csv, config) =
        sweep_tenant(n, limit, 100, dir.path(), ThrottleModel::Accrue).await;
    drop(base_sim);
    // The same tenant (same seed, same size) with the faults on.
    let sim = graph_sim::start(SimConfig {
        late: faults.late,
        late_max: faults.late_max,
        ghost_429: faults.ghost_429,
        ..config.clone()
    })
    .await
    .unwrap();
    let ours = client(&sim.base_url, "sim-client", "sim-secret", &config.tenant);
    let req = RotateRequest {
        header: header(&config.tenant, limit, &csv),
        source: Plan::check(DeviceList::open(&csv.to_string_lossy()).unwrap()).unwrap(),
        policy: rotation::Policy::for_action(rotation::Action::FileVault),
        ledger: dir.path().join("l.jsonl"),
        options: DispatchOptions {
            rate: limit,
            in_doubt: InDoubt::Resend,
            lost_answer_recheck: recheck,
            strict_once,
            max_attempts: 20,
            ..DispatchOptions::default()
        },
        max_devices: None,
    };
    let (_tx, stop) = StopSignal::new();
    let outcome = rotation::rotate(&ours, req, Arc::new(|_| {}), stop)
        .await
        .unwrap();
    // Late actions still to come are counted before the figures are read.
    tokio::time::sleep(faults.late_max).await;
    let stats = sim.stats();
    let reads = stats.requests.saturating_sub(outcome.counters.items_sent);
    (
        outcome.counters.elapsed_secs,
        stats.devices_accepted_twice("rotateFileVaultKey"),
        reads,
    )
}

/// What the answers to the two new faults cost: the second look-up of a lost answer, and the
/// look-up before resending a throttled item.
async fn faults() {
    let limit = Quota::new(2000, Duration::from_secs(20));
    let n = 3000;
    let none = SimConfig::default();
    let late = SimConfig {
        late: 0.01,
        late_max: Duration::from_secs(20),
        ..SimConfig::default()
    };
    let ghost = SimConfig {
        ghost_429: 0.02,
        ..SimConfig::default()
    };
    let recheck = rotation::LOST_ANSWER_RECHECK;
    println!(
        "| {n} Macs at {limit}, 100 ms | wall time | devices rotated twice | Graph reads (all but the items sent) |"
    );
    println!("|---|---|---|---|");
    let rows: [(&str, &SimConfig, Duration, bool); 5] = [
        ("no fault", &none, recheck, false),
        (
            "--late 0.01 (up to 20 s), one look-up (the previous engine)",
            &late,
            Duration::ZERO,
            false,
        ),
        (
            "--late 0.01 (up to 20 s), second look-up at 70 s",
            &late,
            recheck,
            false,
        ),
        (
            "--ghost-429 0.02, sent again without reading (default for FileVault)",
            &ghost,
            recheck,
            false,
        ),
        (
            "--ghost-429 0.02, looked up first (--strict-once; BitLocker's default)",
            &ghost,
            recheck,
            true,
        ),
    ];
    for (what, faults, recheck, strict) in rows {
        let (secs, twice, reads) = fault_cost(n, limit, faults.clone(), recheck, strict).await;
        println!("| {what} | {secs:.1} s | {twice} | {reads} |");
    }
}

/// `tenants T N`: the shipped binary rotating N Macs in each of T tenants of one in-process
/// simulator, each tenant at its own scaled ceiling, paced evenly from the start. The sum of the
/// tenants' send rates against the sum of their ceilings, peak RSS and CPU per 1,000 devices
/// (`/usr/bin/time -v`). `extra` goes on the command line after the defaults.
async fn tenants_bench(count: usize, per_tenant: usize, extra: Vec<String>) -> Vec<String> {
    let Some(bin) = binary() else {
        return vec![
            "the many-tenant ride skipped: needs /usr/bin/time and target/release/intune-rotate"
                .into(),
        ];
    };
    // A multiple of the batch of 20, as Intune's 200/20s is: half its count in the same window.
    let ceiling = Quota::new(100, Duration::from_secs(20));
    let configs: Vec<SimConfig> = (0..count)
        .map(|i| SimConfig {
            tenant: format!("7e0a{i:04x}-5e1f-4c8e-9a61-{i:012x}"),
            tenant_name: format!("Customer {i:03}"),
            seed: 1000 + i as u64,
            // About three in four generated Macs can be sent to (encrypted, corporate, escrow
            // working, nothing pending): enough for `per_tenant`, and little more to list.
            devices: per_tenant * 3 / 2 + 50,
            mac_share: 1.0,
            post_limit: ceiling,
            tenant_post_limit: Quota::new(ceiling.count * 2, ceiling.window),
            latency: Duration::from_millis(50),
            // Over TLS, where HTTP/2 is negotiated as with Graph (graph-facts §2): every request
            // in flight shares one connection, not a socket each.
            tls: true,
            ..SimConfig::default()
        })
        .collect();
    let sim = graph_sim::start_fleet("127.0.0.1:0".parse().unwrap(), configs)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem.as_deref().expect("a TLS simulator's CA")).unwrap();
    let (tenants_csv, input) = (dir.path().join("tenants.csv"), dir.path().join("macs.csv"));
    let mut t = String::from("tenant_id,name\n");
    let mut m = String::from("tenant_id,id,operatingSystem,isEncrypted,managedDeviceOwnerType\n");
    for (id, name, _) in sim.tenants() {
        t.push_str(&format!("{id},{name}\n"));
        let macs = sendable_macs(&sim.tenant_of(&id).unwrap(), per_tenant);
        assert_eq!(macs.len(), per_tenant, "enough eligible Macs in {id}");
        for mac in macs {
            m.push_str(&format!("{id},{mac},macOS,true,company\n"));
        }
    }
    std::fs::write(&tenants_csv, t).unwrap();
    std::fs::write(&input, m).unwrap();
    let run_dir = dir.path().join("run");
    let args: Vec<String> = [
        "rotate",
        "--input",
        &input.display().to_string(),
        "--tenants",
        &tenants_csv.display().to_string(),
        "--run-dir",
        &run_dir.display().to_string(),
        "--yes",
        "--rate",
        &ceiling.to_string(),
        "--no-cold-start",
        "--client-id",
        "sim-client",
        "--graph-url",
        &sim.base_url,
        "--login-url",
        &sim.base_url,
    ]
    .map(String::from)
    .into_iter()
    .chain(extra)
    .collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("/usr/bin/time")
            .arg("-v")
            .arg(bin)
            .args(&args)
            .env("RUST_LOG", "warn")
            .env("AZURE_CLIENT_SECRET", "sim-secret")
            // The simulator's throwaway CA, trusted as the system's roots are.
            .env("SSL_CERT_FILE", &ca)
            .stdout(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| -> f64 {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map_or(f64::NAN, |v| {
                v.trim().split(':').fold(0.0, |acc, p| {
                    acc * 60.0 + p.parse::<f64>().unwrap_or(f64::NAN)
                })
            })
    };
    let (rss_mb, user, system, wall) = (
        field("Maximum resident set size (kbytes):") / 1024.0,
        field("User time (seconds):"),
        field("System time (seconds):"),
        field("Elapsed (wall clock) time (h:mm:ss or m:ss):"),
    );
    // Each tenant's long-run rate from its own ledger, summed, against the sum of the ceilings.
    let mut rates = 0.0;
    let mut rotated = 0;
    let mut each: Vec<f64> = Vec::new();
    let mut first_sent = u64::MAX;
    let mut all: Vec<u64> = Vec::new();
    let (mut starts, mut ends) = (Vec::new(), Vec::new());
    for (id, ..) in sim.tenants() {
        let ledger = run_dir.join("tenants").join(format!("{id}.jsonl"));
        let times = sent_times(&ledger);
        starts.extend(times.iter().min().copied());
        ends.extend(times.iter().max().copied());
        first_sent = times.iter().copied().fold(first_sent, u64::min);
        all.extend_from_slice(&times);
        let r = rate_of(times, ceiling);
        each.push(r / ceiling.per_second());
        rates += r;
        rotated += sim
            .stats_of(&id)
            .unwrap()
            .devices_accepted("rotateFileVaultKey");
    }
    each.sort_by(f64::total_cmp);
    let manifest = rotation::RunDir::open(&run_dir).map(|r| r.manifest().clone());
    for t in manifest.iter().flat_map(|m| &m.tenants) {
        if t.state != rotation::TenantState::Done {
            eprintln!("tenant {} not done: {:?}", t.tenant.tenant_id, t.reason);
        }
    }
    eprintln!(
        "per tenant, rate ÷ ceiling: min {:.3}, median {:.3}, max {:.3}",
        each[0],
        each[each.len() / 2],
        each[each.len() - 1]
    );
    // When the tenants began and ended sending, after the first send of any: waves show here.
    for (what, mut at) in [("first send", starts), ("last send", ends)] {
        at.sort_unstable();
        if let (Some(lo), Some(hi)) = (at.first(), at.last()) {
            let s = |ms: u64| ms.saturating_sub(first_sent) as f64 / 1000.0;
            eprintln!(
                "a tenant's {what}, after the run's first: min {:.1} s, median {:.1} s, max {:.1} s",
                s(*lo),
                s(at[at.len() / 2]),
                s(*hi)
            );
        }
    }
    let sum_ceilings = ceiling.per_second() * count as f64;
    // The fleet's rate: every tenant's sends together, measured as one tenant's are against the
    // sum of the windows' counts. All tenants paced from one start give the sum; waves and
    // staggered starts show as less.
    let fleet = rate_of(
        all,
        Quota::new(ceiling.count * count as u32, ceiling.window),
    );
    if std::env::var_os("BENCH_KEEP_RUN").is_some() {
        // The run directory kept for a look at its ledgers.
        eprintln!("run directory kept: {}", dir.keep().join("run").display());
    }
    let stats = sim.stats();
    let (twice, throttled) = (
        stats.devices_accepted_twice("rotateFileVaultKey"),
        format!("{} ({} actions)", stats.throttled, stats.throttled_writes),
    );
    vec![
        "| tenants × devices | rotated | twice | 429 | fleet's send rate ÷ Σ ceilings | Σ tenant send rates ÷ Σ ceilings | wall time | peak RSS | CPU (user + system) | CPU per 1,000 devices | exit |".into(),
        "|---|---|---|---|---|---|---|---|---|---|---|".into(),
        format!(
        "| {count} × {per_tenant} at {ceiling} each, 50 ms | {rotated} | {twice} | {throttled} | {:.3} ({fleet:.0}/s) | {:.3} ({rates:.0}/s of {sum_ceilings:.0}/s) | {wall:.1} s | {rss_mb:.0} MB | {:.1} s | {:.2} s | {} |",
        fleet / sum_ceilings,
        rates / sum_ceilings,
        user + system,
        (user + system) / (rotated.max(1) as f64 / 1000.0),
        out.status.code().unwrap_or(-1)
    ),
    ]
}

/// Our ride at a scaled ceiling, our wall time for 296 Macs, and the 20-worker script's, under
/// each throttling model: what the engine does does not rest on the model.
async fn models() {
    let scaled = Quota::new(2000, Duration::from_secs(20));
    let fast = Quota::new(200, Duration::from_secs(2));
    println!(
        "| throttle model | ride: send rate ÷ ceiling | ride: 429 | ride: wall time (6000) | 296 Macs at {fast}: ours | our 429s | 20 direct-POST workers | their 429s | their rotated |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for model in [
        ThrottleModel::Accrue,
        ThrottleModel::Block,
        ThrottleModel::None,
    ] {
        let r = ride(6000, scaled, 100, None, None, model).await;
        let (ours, ours_429) = sweep_ours(296, fast, 100, model).await;
        let (theirs, done, their_429) = twenty_workers(296, fast, 100, model).await;
        println!(
            "| {model:?} | {:.3} | {:.2} % | {:.1} s | {ours:.1} s | {ours_429} | {theirs:.1} s | {their_429} | {done} |",
            r.ratio,
            r.share_429 * 100.0,
            r.elapsed
        );
    }
}

#[tokio::main]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("plan") {
        plan_child(args[2].parse().unwrap());
        return;
    }
    // `facts N`: only the cost of the plan's reads of the tenant's records for N devices.
    if args.get(1).map(String::as_str) == Some("facts") {
        let n: usize = args[2].parse().unwrap();
        println!(
            "| reads before the plan | devices | Graph requests | per 1,000 devices | HTTP requests | 429 | wall time |"
        );
        println!("|---|---|---|---|---|---|---|");
        for row in facts_cost(n, 100).await {
            println!("{row}");
        }
        return;
    }
    // `results N [SCALE]`: only the cost of reading N Macs' action results by GET, against sending.
    if args.get(1).map(String::as_str) == Some("results") {
        let n: usize = args[2].parse().unwrap();
        let scale: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100);
        println!(
            "| run | how results were read | plan's reads | reads | devices | plan and sending | reads answered 429 | sends answered 429 | time added |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for row in results_cost(n, scale).await {
            println!("{row}");
        }
        return;
    }
    // `fleet-export T N`: a run directory's export of T tenants of N devices, against one's.
    if args.get(1).map(String::as_str) == Some("fleet-export") {
        let tenants: usize = args[2].parse().unwrap();
        let n: usize = args[3].parse().unwrap();
        println!(
            "| format | one ledger | its export | run directory | its export | peak memory, run directory ÷ one ledger |"
        );
        println!("|---|---|---|---|---|---|");
        for row in fleet_export(tenants, n) {
            println!("{row}");
        }
        return;
    }
    // `readers N`: only the ledger readers of the binary on a finished ledger of N devices.
    if args.get(1).map(String::as_str) == Some("readers") {
        let n: usize = args[2].parse().unwrap();
        for (what, r) in readers(n).await {
            println!("{what}: {r:?} (seconds, peak MB)");
        }
        return;
    }
    // `ledger N PATH`: only write the finished ledger the readers are measured on, to profile one.
    if args.get(1).map(String::as_str) == Some("ledger") {
        let n: usize = args[2].parse().unwrap();
        finished_ledger(Path::new(&args[3]), n);
        return;
    }
    // `tenants T N [ARGS…]`: many tenants in one process (issues #16, #28), ARGS added to the run.
    if args.get(1).map(String::as_str) == Some("tenants") {
        let count = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(300);
        let per = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(500);
        for row in tenants_bench(count, per, args.iter().skip(4).cloned().collect()).await {
            println!("{row}");
        }
        return;
    }
    // `faults`: the cost of the answers to late actions and 429s for actions that ran.
    if args.get(1).map(String::as_str) == Some("faults") {
        faults().await;
        return;
    }
    // `models`: the same rides under each of graph-sim's throttling models.
    if args.get(1).map(String::as_str) == Some("models") {
        models().await;
        return;
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let quick = smoke || args.iter().any(|a| a == "--quick");
    // The size of a step: the full run's, `--quick`'s, or `--smoke`'s.
    let size = |full: usize, quick_size: usize, smoke_size: usize| {
        if smoke {
            smoke_size
        } else if quick {
            quick_size
        } else {
            full
        }
    };
    let intune = args.iter().any(|a| a == "--intune");
    let mut out = String::new();
    let mut line = |s: String| {
        println!("{s}");
        out.push_str(&s);
        out.push('\n');
    };
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string())
            )
            .unwrap_or_default()
    );
    line(format!("machine: {machine}"));
    line(format!(
        "command: cargo run --release -p rotation --example bench --{}",
        if smoke {
            " --smoke"
        } else if quick {
            " --quick"
        } else if intune {
            " --intune"
        } else {
            ""
        }
    ));
    line(String::new());
    line("| ceiling ride | devices rotated | send rate ÷ ceiling | items answered 429 | first request | retries | wall time | rotated twice | failed | left |".into());
    line("|---|---|---|---|---|---|---|---|---|---|".into());
    // Intune's 20 s window with ten times the count: the same arithmetic at ten times the pace. (A
    // shorter window would shrink the headroom's time margin below the simulated network jitter.)
    let scaled = Quota::new(2000, Duration::from_secs(20));
    let n = size(12000, 2400, 200);
    let competing = |cold_start| {
        Some(Competitor {
            rate: Quota::new(2000, Duration::from_secs(20)),
            tenant: Quota::new(3000, Duration::from_secs(20)),
            cold_start,
        })
    };
    let mut rides = vec![
        (
            format!("scaled {scaled}, 100 ms latency"),
            n,
            scaled,
            100,
            None,
            None,
        ),
        (
            format!("scaled {scaled}, 1 s latency"),
            n,
            scaled,
            1000,
            None,
            None,
        ),
        (
            format!(
                "scaled {scaled}, 100 ms, another app already pacing 2000/20s into a 3000/20s tenant limit"
            ),
            n,
            scaled,
            100,
            competing(Some(false)),
            None,
        ),
        (
            "the same, both apps starting cold at once".to_string(),
            n,
            scaled,
            100,
            competing(None),
            None,
        ),
        (
            "the same, both apps paced evenly from the start (--no-cold-start: the previous release)".to_string(),
            n,
            scaled,
            100,
            competing(Some(false)),
            Some(false),
        ),
    ];
    if intune {
        rides.push((
            "Intune default 200/20s, 100 ms latency".into(),
            5600,
            Quota::new(200, Duration::from_secs(20)),
            100,
            None,
            None,
        ));
    }
    let mut notes = Vec::new();
    // `--ride N` runs only the Nth ceiling ride (0-based) and stops: for looking into one figure.
    let only: Option<usize> = args
        .iter()
        .position(|a| a == "--ride")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok());
    for (k, (name, devices, limit, latency, competitor, cold)) in rides.into_iter().enumerate() {
        if only.is_some_and(|o| o != k) {
            continue;
        }
        let r = ride(
            devices,
            limit,
            latency,
            competitor,
            cold,
            ThrottleModel::Accrue,
        )
        .await;
        if let Some((rotated, throttled, sent)) = r.theirs {
            notes.push(format!(
                "competing app in \"{name}\": {rotated} BitLocker rotations meanwhile, {:.2} % of its items answered 429",
                throttled as f64 / sent.max(1) as f64 * 100.0
            ));
        }
        line(format!(
            "| {name} | {} | {:.3} | {:.2} % | {:.2} s | {} | {:.1} s | {} | {} | {} |",
            r.rotated,
            r.ratio,
            r.share_429 * 100.0,
            r.first_request,
            r.retries,
            r.elapsed,
            r.twice,
            r.failed,
            r.pending
        ));
    }
    for n in notes {
        line(n);
    }
    if only.is_some() {
        return;
    }
    line(String::new());
    let (seq_n, seq_rate) = one_at_a_time(size(300, 100, 10), scaled, 100).await;
    let batched = ride(
        size(6000, 4400, 200),
        scaled,
        100,
        None,
        None,
        ThrottleModel::Accrue,
    )
    .await;
    // The long-run rate, over whole windows (an empty window's credit goes at once).
    let batched_rate = batched.ratio * scaled.per_second();
    line("| same tenant (2000/20s, 100 ms) | devices | devices/s |".into());
    line("|---|---|---|".into());
    line(format!(
        "| one direct POST at a time, honouring Retry-After | {seq_n} | {seq_rate:.1} |"
    ));
    line(format!(
        "| intune-rotate ($batch of 20, paced) | {} | {batched_rate:.1} (×{:.1}) |",
        batched.rotated,
        batched_rate / seq_rate
    ));
    line(String::new());
    // Wall time against the window's optimum, (ceil(N/Q) - 1) * W plus a round trip, and against
    // the 20-worker script. At 100 ms the window is Intune's count in a tenth of the time (200/2s):
    // the same arithmetic, ten times faster. At 1 s, Intune's own 200/20s (a shorter window would
    // be shorter than the network's jitter).
    line("| wall time, fresh tenant | N | window optimum | intune-rotate | ÷ optimum | 429s | 20 direct-POST workers | their 429s | their rotated |".into());
    line("|---|---|---|---|---|---|---|---|---|".into());
    let fast_window = Quota::new(200, Duration::from_secs(2));
    let intune_window = Quota::new(200, Duration::from_secs(20));
    let mut sweeps: Vec<(Quota, u64, usize)> = [20, 200, 296, 1000, 5000]
        .into_iter()
        .filter(|&n| n <= size(5000, 1000, 20))
        .map(|n| (fast_window, 100, n))
        .collect();
    sweeps.extend(
        [20, 200, 296]
            .into_iter()
            .filter(|&n| n <= size(296, 296, 20))
            .chain(intune.then_some(1000))
            .map(|n| (intune_window, 1000, n)),
    );
    for (limit, latency, n) in sweeps {
        let rtt = latency as f64 / 1000.0;
        let optimum =
            (n.div_ceil(limit.count as usize) - 1) as f64 * limit.window.as_secs_f64() + rtt;
        let (ours, ours_429) = sweep_ours(n, limit, latency, ThrottleModel::None).await;
        let (theirs, their_done, their_429) =
            twenty_workers(n, limit, latency, ThrottleModel::None).await;
        line(format!(
            "| {limit}, {latency} ms | {n} | {optimum:.1} s | {ours:.1} s | {:.2} | {ours_429} | {theirs:.1} s | {their_429} | {their_done} |",
            ours / optimum
        ));
    }
    line(String::new());
    // The guess gone wrong: the same app used a full window a moment ago.
    line("| the window just used by another run of this app (200/2s, 100 ms), then 400 devices | wall time | items answered 429 | rotated |".into());
    line("|---|---|---|---|".into());
    for (what, cold) in [
        ("cold start (the default guess)", None),
        ("--no-cold-start", Some(false)),
    ] {
        let (secs, throttled, rotated) = window_just_used(fast_window, 100, cold).await;
        line(format!(
            "| {what} | {secs:.1} s | {throttled} | {rotated} |"
        ));
    }
    line(String::new());
    let unthrottled = ride(
        size(20000, 5000, 500),
        Quota::new(1_000_000, Duration::from_secs(1)),
        0,
        None,
        None,
        ThrottleModel::Accrue,
    )
    .await;
    line(format!(
        "unthrottled end to end (in-process simulator, no latency): {} devices in {:.2} s = {:.0} devices/s",
        unthrottled.rotated,
        unthrottled.elapsed,
        unthrottled.rotated as f64 / unthrottled.elapsed
    ));
    let plan_n = size(1_000_000, 100_000, 10_000);
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["plan", &plan_n.to_string()])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&child.stdout)
        .unwrap_or_else(|_| panic!("plan child: {}", String::from_utf8_lossy(&child.stderr)));
    line(format!(
        "plan + ledger {} devices: {:.2} s, peak RSS {:.0} MB; ledger replay: {} rows in {:.2} s = {:.0} rows/s",
        doc["devices"],
        doc["plan_secs"].as_f64().unwrap(),
        doc["peak_rss_mb"].as_f64().unwrap(),
        doc["replay_rows"],
        doc["replay_secs"].as_f64().unwrap(),
        doc["replay_rows"].as_f64().unwrap() / doc["replay_secs"].as_f64().unwrap()
    ));
    match binary_plan(plan_n) {
        Some((secs, mb)) => line(format!(
            "the binary, `intune-rotate rotate --dry-run` on {plan_n} devices (check, plan, ledger): {secs:.2} s, peak RSS {mb:.0} MB (/usr/bin/time -v)"
        )),
        None => line("the binary's own plan run skipped: needs /usr/bin/time and target/release/intune-rotate (`make bench` builds it)".into()),
    }
    let readers_n = size(1_000_000, 200_000, 10_000);
    for (what, r) in readers(readers_n).await {
        match r {
            Some((secs, mb)) => line(format!(
                "the binary, `{what}` of a finished {readers_n}-device ledger ({} rows): {secs:.2} s, peak RSS {mb:.0} MB",
                readers_n * 3 + 2
            )),
            None => line(format!(
                "`{what}` skipped: needs /usr/bin/time and the release binary"
            )),
        }
    }
    // Many tenants of one app in one run, with the default flags (issue #28's ride at full size).
    line(String::new());
    let (tenants, per) = (size(2000, 200, 3), size(1000, 200, 40));
    for row in tenants_bench(tenants, per, Vec::new()).await {
        line(row);
    }
    let _ = std::fs::create_dir_all("target/bench");
    let _ = std::fs::write("target/bench/latest.md", out);
}
