//! Many tenants in one run (`--tenants FILE --run-dir DIR`), for MSPs: one multi-tenant app,
//! consented in each customer tenant, asks each tenant's token endpoint for its own token. Each
//! tenant is planned into its own ordinary ledger and sent at its own ceiling (Intune's limits are
//! per app per tenant); a shared gate holds Graph's per-app limit across tenants. A tenant that
//! cannot be signed in to or read is marked blocked with the service's reason, and the others go on.

use super::rotate::action_of;
use super::{Failure, failed, open_output, options, stop_on_ctrl_c, usage};
use crate::cli::{Connection, Dispatch, InDoubtArg, RotateArgs, SourceArgs};
use crate::connect;
use crate::exit_status::ExitStatus;
use crate::progress::Logs;
use futures::StreamExt;
use rotation::{
    Counters, DispatchOptions, InDoubt, Manifest, RateGate, RunDir, StopSignal, TenantEntry,
    TenantRecord, TenantState,
};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How one tenant ended in this invocation.
#[derive(Debug, Clone)]
struct TenantResult {
    entry: TenantEntry,
    state: TenantState,
    reason: Option<String>,
    advice: Option<String>,
    auth: bool,
    counters: Option<Counters>,
    interrupted: bool,
}

/// What every tenant's work shares.
struct Shared {
    /// What the run was asked to do, as its manifest keeps it.
    spec: rotation::RunSpec,
    /// The run's policy, its exclusions read once: each tenant plans with a copy.
    policy: rotation::Policy,
    connection: Connection,
    options: DispatchOptions,
    run: Mutex<RunDir>,
    stop: StopSignal,
    progress: Arc<Aggregate>,
}

/// `rotate --tenants FILE --run-dir DIR`.
pub async fn rotate(a: RotateArgs, logs: Logs) -> Result<ExitStatus, Failure> {
    let stop = stop_on_ctrl_c();
    let t = a.tenants.clone();
    let (tenants_file, run_dir) = (
        t.tenants
            .clone()
            .expect("clap: --run-dir requires --tenants"),
        t.run_dir
            .clone()
            .expect("clap: --tenants requires --run-dir"),
    );
    let action = action_of(a.action);
    // Everything that can be checked before a connection is checked: nothing is sent on bad input.
    let tenants = rotation::read_tenants(&tenants_file)?;
    let spec = super::rotate::run_spec(&a)?;
    rotation::OpenSource::open(&spec.source)?;
    let run_policy = spec.policy.policy(action)?;
    if a.dry_run || a.verify_after.is_some() || a.max_devices.is_some() {
        return Err(usage(anyhow::anyhow!(
            "--dry-run, --verify-after and --max-devices apply to one tenant: run them per tenant with --tenant and --ledger"
        )));
    }
    let split = match &a.source.input {
        Some(input) => Some(split_input(input, &tenants)?),
        None => None,
    };
    // The credentials must be usable at all before the run directory is made.
    let mut probe = a.connection.clone();
    probe.tenant = Some(tenants[0].tenant_id.to_string());
    connect::client(&probe, None, None, &[])?;
    connect::confirm(
        a.dispatch.yes,
        &format!(
            "About to rotate {} on the devices of {} tenant(s) ({}), each from {}.",
            action.graph_name(),
            tenants.len(),
            tenants_file.display(),
            source_text(&a.source)
        ),
    )
    .map_err(usage)?;
    let manifest = Manifest {
        version: 2,
        action: action.to_string(),
        source: source_text(&a.source),
        spec: Some(spec.clone()),
        options: serde_json::json!({
            "rate": a.dispatch.rate.to_string(),
            "global_rate": t.global_rate.to_string(),
            "tenant_concurrency": t.tenant_concurrency,
        }),
        created_at: rotation::now_iso(),
        tenants: tenants
            .iter()
            .map(|e| TenantRecord {
                tenant: e.clone(),
                state: TenantState::Waiting,
                reason: None,
                advice: None,
                auth: false,
            })
            .collect(),
    };
    let run = RunDir::create(&run_dir, manifest)?;
    if let Some(split) = split {
        write_inputs(&run, &split)?;
    }
    let options = DispatchOptions {
        global_gate: Some(global_gate(t.global_rate, &a.dispatch)),
        ..options(&a.dispatch, InDoubt::Verify)
    };
    let summary_json = a.dispatch.summary_json.clone();
    let shared = Arc::new(Shared {
        spec,
        policy: run_policy,
        connection: a.connection.clone(),
        options,
        run: Mutex::new(run),
        stop,
        progress: Arc::new(Aggregate::new(logs, &tenants)),
    });
    let results = drive(shared.clone(), tenants, t.tenant_concurrency).await;
    finish(&shared, &results, summary_json.as_deref())
}

/// `resume --run-dir DIR`: every tenant not done goes on: resumed from its ledger, or planned with
/// the run's own source and policy if it never was (blocked tenants are tried again).
pub async fn resume(
    dir: &Path,
    connection: &Connection,
    dispatch: &Dispatch,
    in_doubt: InDoubtArg,
    concurrency: usize,
    logs: Logs,
) -> Result<ExitStatus, Failure> {
    let stop = stop_on_ctrl_c();
    let run = RunDir::open(dir)?;
    let spec = match &run.manifest().spec {
        Some(spec) => spec.clone(),
        None => spec_of_argv(dir, &run.manifest().options)?,
    };
    let action = spec.action;
    let open: Vec<TenantEntry> = run
        .manifest()
        .tenants
        .iter()
        .filter(|t| t.state != TenantState::Done)
        .map(|t| t.tenant.clone())
        .collect();
    connect::confirm(
        dispatch.yes,
        &format!(
            "About to resume {} in {} tenant(s) of {} ({} done already).",
            action.graph_name(),
            open.len(),
            dir.display(),
            run.manifest().tenants.len() - open.len()
        ),
    )
    .map_err(usage)?;
    let in_doubt = match in_doubt {
        InDoubtArg::Resend => InDoubt::Resend,
        InDoubtArg::Skip => InDoubt::Skip,
        InDoubtArg::Verify => InDoubt::Verify,
    };
    let global_rate: graph_batch::Quota = run.manifest().options["global_rate"]
        .as_str()
        .and_then(|q| q.parse().ok())
        .unwrap_or(crate::cli::GLOBAL_RATE);
    let options = DispatchOptions {
        global_gate: Some(global_gate(global_rate, dispatch)),
        ..options(dispatch, in_doubt)
    };
    let all: Vec<TenantEntry> = run
        .manifest()
        .tenants
        .iter()
        .map(|t| t.tenant.clone())
        .collect();
    let shared = Arc::new(Shared {
        policy: spec.policy.policy(action)?,
        spec,
        connection: connection.clone(),
        options,
        run: Mutex::new(run),
        stop,
        progress: Arc::new(Aggregate::new(logs, &all)),
    });
    let results = drive(shared.clone(), open, concurrency).await;
    finish(&shared, &results, dispatch.summary_json.as_deref())
}

/// The run's spec from a run directory of an earlier release, which kept the `rotate` command
/// line in its manifest: parsed as that release's flags were.
fn spec_of_argv(dir: &Path, options: &serde_json::Value) -> Result<rotation::RunSpec, Failure> {
    let argv: Vec<String> = options["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    match <crate::cli::Cli as clap::Parser>::try_parse_from(&argv) {
        Ok(crate::cli::Cli {
            command: crate::cli::Command::Rotate(r),
            ..
        }) => super::rotate::run_spec(&r),
        _ => Err(usage(anyhow::anyhow!(
            "{}: the manifest does not hold what this run was asked to do",
            dir.join("manifest.json").display()
        ))),
    }
}

fn global_gate(q: graph_batch::Quota, d: &Dispatch) -> Arc<RateGate> {
    let gate = RateGate::new(q, 0.0, u32::from(d.batch_size));
    // Across tenants nobody else counts: the window is ours from the start.
    Arc::new(gate)
}

fn source_text(s: &SourceArgs) -> String {
    if let Some(i) = &s.input {
        format!("--input {i}")
    } else if !s.group.is_empty() {
        format!("--group {}", s.group.join(" --group "))
    } else if let Some(q) = &s.query {
        if q.is_empty() {
            "--query".into()
        } else {
            format!("--query {q:?}")
        }
    } else if let Some(sc) = s
        .health_script
        .as_ref()
        .or(s.management_script.as_ref())
        .or(s.compliance_script.as_ref())
        .or(s.shell_script.as_ref())
        .or(s.custom_attribute_script.as_ref())
    {
        format!("script {sc}")
    } else if let Some(app) = &s.detected_app {
        format!("--detected-app {app}")
    } else {
        "users".into()
    }
}

/// Every tenant at once, up to `concurrency` in flight; each ends with a line on stdout.
async fn drive(
    shared: Arc<Shared>,
    tenants: Vec<TenantEntry>,
    concurrency: usize,
) -> Vec<TenantResult> {
    futures::stream::iter(tenants)
        .map(|t| {
            let shared = shared.clone();
            async move {
                let r = one_tenant(&shared, t).await;
                let mut run = shared.run.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = run.set(
                    r.entry.tenant_id,
                    r.state,
                    r.reason.clone(),
                    r.advice.clone(),
                    r.auth,
                ) {
                    tracing::error!("{e}");
                }
                drop(run);
                shared.progress.tenant_done(&r);
                r
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// An error's message with its causes, each said once (a cause often repeats its parent's text).
fn said_once(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// Why a tenant could not go on, and what to do.
fn blocked(entry: &TenantEntry, why: String, advice: String, auth: bool) -> TenantResult {
    TenantResult {
        entry: entry.clone(),
        state: TenantState::Blocked,
        reason: Some(why),
        advice: Some(advice),
        auth,
        counters: None,
        interrupted: false,
    }
}

/// The run's connection options, pointed at one tenant (and its cloud, where the file gives one).
fn tenant_connection(base: &Connection, t: &TenantEntry) -> Connection {
    let mut conn = base.clone();
    conn.tenant = Some(t.tenant_id.to_string());
    if let Some(cloud) = &t.cloud {
        conn.cloud = cloud.clone();
    }
    conn
}

/// The URL an admin of the tenant opens to consent to the app.
fn consent_url(c: &Connection, tenant: &Uuid) -> String {
    let login = c.login_url.clone().unwrap_or_else(|| {
        match c.cloud.as_str() {
            "usgov" | "usgov-dod" => "https://login.microsoftonline.us",
            "china" => "https://login.chinacloudapi.cn",
            _ => "https://login.microsoftonline.com",
        }
        .to_string()
    });
    format!(
        "{}/{tenant}/adminconsent?client_id={}",
        login.trim_end_matches('/'),
        c.client_id.as_deref().unwrap_or("<client id>")
    )
}

/// What to do about a sign-in or permission failure: consent where Entra's code says the tenant
/// has not consented to the app (found by the code, never in the message's words).
fn auth_advice(c: &Connection, tenant: &Uuid, e: &(dyn std::error::Error + 'static)) -> String {
    if graph_client::TokenError::in_chain(e).is_some_and(graph_client::TokenError::needs_consent) {
        format!(
            "the app is not consented in this tenant: an admin of the tenant opens {}",
            consent_url(c, tenant)
        )
    } else {
        format!(
            "check the app's permissions and admin consent in this tenant (`intune-rotate whoami --tenant {tenant}` lists them)"
        )
    }
}

/// One tenant: resumed if its plan is done, else signed in, listed, planned and sent.
async fn one_tenant(shared: &Shared, entry: TenantEntry) -> TenantResult {
    // After Ctrl-C no tenant starts: those waiting stay waiting for `resume --run-dir`.
    if shared.stop.requested() {
        return TenantResult {
            entry,
            state: TenantState::Waiting,
            reason: None,
            advice: None,
            auth: false,
            counters: None,
            interrupted: true,
        };
    }
    let id = entry.tenant_id;
    let ledger = shared
        .run
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .ledger(id);
    let conn = tenant_connection(&shared.connection, &entry);
    let planned = rotation::ledger_replay(&ledger)
        .map(|(state, _)| state.plan_done)
        .unwrap_or(false);
    let mut source_spec = shared.spec.source.clone();
    if source_spec.input().is_some() {
        let file = input_file(&ledger);
        if !file.exists() && !planned {
            return TenantResult {
                entry,
                state: TenantState::Skipped,
                reason: Some("the input has no rows for this tenant".into()),
                advice: None,
                auth: false,
                counters: None,
                interrupted: false,
            };
        }
        source_spec = source_spec.with_input(file.display().to_string());
    }
    let source = if planned {
        None
    } else {
        match rotation::OpenSource::open(&source_spec) {
            Ok(s) => Some(s),
            Err(e) => {
                return blocked(&entry, format!("{e:#}"), "fix the source".into(), false);
            }
        }
    };
    let scopes = connect::delegated_scopes(
        shared.spec.action,
        source
            .as_ref()
            .map_or(&[][..], rotation::OpenSource::scopes),
    );
    let c = match connect::client(&conn, None, None, &scopes) {
        Ok(c) => c,
        Err(e) => {
            let Failure(_, e) = Failure::from(e);
            return blocked(&entry, said_once(&e), "fix the credentials".into(), true);
        }
    };
    let lists = source
        .as_ref()
        .is_some_and(rotation::OpenSource::lists_devices);
    if let Err(e) = connect::preflight(&c, shared.spec.action, lists).await {
        let Failure(_, e) = Failure::from(e);
        let why = said_once(&e);
        let advice = auth_advice(&conn, &id, e.as_ref());
        return blocked(&entry, why, advice, true);
    }
    let progress = shared.progress.reporter(id);
    let outcome = match source {
        None => {
            rotation::resume(
                &c.client,
                &ledger,
                &shared.options,
                progress,
                shared.stop.clone(),
            )
            .await
        }
        Some(source) => match plan(shared, &conn, id, &c, source, &ledger).await {
            Ok(planned) => {
                let stop = shared.stop.clone();
                planned
                    .send(&c.client, &shared.options, progress, stop)
                    .await
            }
            Err(r) => return r.into_result(entry),
        },
    };
    match outcome {
        Ok(o) => {
            let c = &o.counters;
            let done =
                !o.interrupted && o.auth_stopped.is_none() && c.pending == 0 && c.in_doubt == 0;
            TenantResult {
                entry,
                state: if done {
                    TenantState::Done
                } else {
                    TenantState::Started
                },
                reason: o.auth_stopped.clone(),
                advice: None,
                auth: o.auth_stopped.is_some(),
                counters: Some(o.counters),
                interrupted: o.interrupted,
            }
        }
        Err(e) => {
            let status = ExitStatus::of_error(&e);
            let why = e.to_string();
            let advice = auth_advice(&conn, &id, &e);
            blocked(&entry, why, advice, status == ExitStatus::Auth)
        }
    }
}

/// A tenant that ends before sending: skipped (nothing of the source there) or blocked.
enum NotPlanned {
    Skipped(String),
    Blocked(String, String, bool),
}

impl NotPlanned {
    fn into_result(self, entry: TenantEntry) -> TenantResult {
        match self {
            NotPlanned::Skipped(why) => TenantResult {
                entry,
                state: TenantState::Skipped,
                reason: Some(why),
                advice: None,
                auth: false,
                counters: None,
                interrupted: false,
            },
            NotPlanned::Blocked(why, advice, auth) => blocked(&entry, why, advice, auth),
        }
    }
}

/// Why a tenant stops before its plan: nothing of the source there (a name it does not have, no
/// devices) skips it; anything else blocks it, with the consent advice where sign-in failed.
fn not_planned(conn: &Connection, tenant: &Uuid, Failure(status, e): Failure) -> NotPlanned {
    let why = said_once(&e);
    let nothing_there = matches!(
        e.downcast_ref::<rotation::RotationError>(),
        Some(rotation::RotationError::BadName { .. } | rotation::RotationError::EmptySource(_))
    );
    if nothing_there {
        return NotPlanned::Skipped(why);
    }
    let auth = status == ExitStatus::Auth;
    let advice = if auth {
        auth_advice(conn, tenant, e.as_ref())
    } else {
        "see the reason; `resume --run-dir` tries this tenant again".into()
    };
    NotPlanned::Blocked(why, advice, auth)
}

/// The tenant's plan, by the one plan sequence ([`rotation::Job`]), written into its ledger.
async fn plan(
    shared: &Shared,
    conn: &Connection,
    tenant: Uuid,
    c: &connect::Connected,
    source: rotation::OpenSource,
    ledger: &Path,
) -> Result<rotation::PlannedJob, NotPlanned> {
    let job = rotation::Job {
        spec: &shared.spec,
        source,
        early_rows: None,
        policy: rotation::Policy {
            now: std::time::SystemTime::now(),
            ..shared.policy.clone()
        },
        signed_in: rotation::SignedIn {
            tenant: c.tenant.clone(),
            client_id: c.client_id.clone(),
            // The tenant's own cloud (the tenants file's, else the run's), as it was signed in to.
            cloud: conn.cloud.parse().unwrap_or(rotation::Cloud::Global),
            as_whom: connect::signed_in_as(c).await,
        },
        rate: shared.options.rate,
        ledger: ledger.to_path_buf(),
        // A fleet run always sends (it has no dry run): results are read beside the sending.
        timing: rotation::ResultsTiming::BeforeSending,
        limit: shared.options.limit,
        max_devices: None,
    };
    // Every failure before the plan is judged by one rule (`not_planned`).
    let planned = job
        .plan(Some(&c.client), &shared.stop)
        .await
        .map_err(|e| not_planned(conn, &tenant, Failure::from(e)))?;
    for note in &planned.notes {
        tracing::info!(tenant = %c.tenant, "{note}");
    }
    Ok(planned)
}

/// The input file of one tenant, beside its ledger.
fn input_file(ledger: &Path) -> PathBuf {
    ledger.with_extension("input.csv")
}

/// The --input rows of each tenant, by its `tenant_id` column; a row naming a tenant not in the
/// tenants file is bad input (exit 2), named by its line.
fn split_input(
    input: &str,
    tenants: &[TenantEntry],
) -> Result<(csv::StringRecord, HashMap<Uuid, Vec<csv::StringRecord>>), Failure> {
    let bad = |line: u64, what: String| usage(anyhow::anyhow!("{input}: line {line}: {what}"));
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(input)
        .map_err(|e| usage(anyhow::anyhow!("{input}: {e}")))?;
    let headers = r.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    let col = headers
        .iter()
        .position(|h| {
            h.trim()
                .trim_start_matches('\u{feff}')
                .eq_ignore_ascii_case("tenant_id")
        })
        .ok_or_else(|| {
            bad(
                1,
                "with --tenants, --input needs a tenant_id column to route each row to its tenant"
                    .into(),
            )
        })?;
    let known: HashMap<Uuid, ()> = tenants.iter().map(|t| (t.tenant_id, ())).collect();
    let mut by_tenant: HashMap<Uuid, Vec<csv::StringRecord>> = HashMap::new();
    for (k, record) in r.records().enumerate() {
        let line = k as u64 + 2;
        let record = record.map_err(|e| bad(line, e.to_string()))?;
        let raw = record.get(col).unwrap_or("").trim();
        let id = Uuid::parse_str(raw).map_err(|_| {
            bad(
                line,
                format!("column {} (tenant_id): {raw:?} is not a tenant id", col + 1),
            )
        })?;
        if !known.contains_key(&id) {
            return Err(bad(
                line,
                format!(
                    "column {} (tenant_id): tenant {id} is not in the tenants file",
                    col + 1
                ),
            ));
        }
        by_tenant.entry(id).or_default().push(record);
    }
    Ok((headers, by_tenant))
}

fn write_inputs(
    run: &RunDir,
    (headers, rows): &(csv::StringRecord, HashMap<Uuid, Vec<csv::StringRecord>>),
) -> Result<(), Failure> {
    for (tenant, records) in rows {
        let path = input_file(&run.ledger(*tenant));
        let mut w = csv::Writer::from_path(&path)
            .map_err(|e| failed(anyhow::anyhow!("{}: {e}", path.display())))?;
        w.write_record(headers).map_err(failed)?;
        for r in records {
            w.write_record(r).map_err(failed)?;
        }
        w.flush().map_err(failed)?;
    }
    Ok(())
}

/// The summary: a line per tenant, the total, `--summary-json`, and the exit status: 0 when every
/// tenant is done, 3 when every tenant is blocked by authentication, 1 otherwise.
fn finish(
    shared: &Shared,
    results: &[TenantResult],
    summary_json: Option<&Path>,
) -> Result<ExitStatus, Failure> {
    shared.progress.finish();
    let run = shared.run.lock().unwrap_or_else(|p| p.into_inner());
    let manifest = run.manifest();
    let mut total = Counters::default();
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &manifest.tenants {
        *by_state.entry(t.state.name()).or_default() += 1;
    }
    for r in results {
        if let Some(c) = &r.counters {
            total.add(c);
        }
    }
    println!(
        "summary of {} ({} tenants)",
        run.dir().display(),
        manifest.tenants.len()
    );
    let states: Vec<String> = by_state.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("  tenants   {}", states.join(", "));
    println!(
        "  devices   {} (rotated {}, failed {}, skipped {}, pending {}, in doubt {}) in this run",
        total.total, total.rotated, total.failed, total.skipped, total.pending, total.in_doubt
    );
    for t in manifest
        .tenants
        .iter()
        .filter(|t| t.state == TenantState::Blocked)
    {
        println!(
            "  blocked   {} ({}): {}",
            t.tenant.name,
            t.tenant.tenant_id,
            t.reason.as_deref().unwrap_or("")
        );
        if let Some(advice) = &t.advice {
            println!("            {advice}");
        }
    }
    let interrupted = results.iter().any(|r| r.interrupted);
    let all_blocked_by_auth = !manifest.tenants.is_empty()
        && manifest
            .tenants
            .iter()
            .all(|t| t.state == TenantState::Blocked && t.auth);
    let status = if interrupted {
        ExitStatus::Interrupted
    } else if all_blocked_by_auth {
        ExitStatus::Auth
    } else if manifest
        .tenants
        .iter()
        .all(|t| t.state == TenantState::Done)
    {
        ExitStatus::Success
    } else {
        ExitStatus::Incomplete
    };
    if interrupted {
        eprintln!(
            "interrupted; continue with `intune-rotate resume --run-dir {}`",
            run.dir().display()
        );
    }
    if let Some(path) = summary_json {
        let per: HashMap<Uuid, &TenantResult> =
            results.iter().map(|r| (r.entry.tenant_id, r)).collect();
        let tenants: Vec<serde_json::Value> = manifest
            .tenants
            .iter()
            .map(|t| {
                let counters = per
                    .get(&t.tenant.tenant_id)
                    .and_then(|r| r.counters.clone());
                serde_json::json!({
                    "tenant_id": t.tenant.tenant_id,
                    "tenant_name": t.tenant.name,
                    "state": t.state.name(),
                    "reason": t.reason,
                    "advice": t.advice,
                    "counters": counters,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "counters": total,
            "exit_code": status.code(),
            "interrupted": interrupted,
            "run_dir": run.dir(),
            "tenants": tenants,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap_or_default())
            .map_err(|e| failed(anyhow::anyhow!("{}: {e}", path.display())))?;
    }
    Ok(status)
}

/// Progress across tenants: one bar (devices done of total, tenants done of total, rate) on a
/// terminal, a log line every few seconds otherwise, and a line per tenant as it finishes.
struct Aggregate {
    per: Mutex<HashMap<Uuid, (usize, usize)>>,
    names: HashMap<Uuid, String>,
    tenants: usize,
    done: std::sync::atomic::AtomicUsize,
    bar: Option<indicatif::ProgressBar>,
    last_log: Mutex<Instant>,
    started: Instant,
}

impl Aggregate {
    fn new(logs: Logs, tenants: &[TenantEntry]) -> Self {
        let bar = logs.bar.then(|| {
            let b = indicatif::ProgressBar::new(0);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} devices · {msg}",
            ) {
                b.set_style(style);
            }
            b
        });
        Aggregate {
            per: Mutex::new(HashMap::new()),
            names: tenants
                .iter()
                .map(|t| (t.tenant_id, t.name.clone()))
                .collect(),
            tenants: tenants.len(),
            done: std::sync::atomic::AtomicUsize::new(0),
            bar,
            last_log: Mutex::new(Instant::now()),
            started: Instant::now(),
        }
    }

    /// The engine's progress callback for one tenant.
    fn reporter(self: &Arc<Self>, tenant: Uuid) -> rotation::Progress {
        let me = self.clone();
        Arc::new(move |c: &Counters| me.update(tenant, c))
    }

    fn update(&self, tenant: Uuid, c: &Counters) {
        let (done, total) = {
            let mut per = self.per.lock().unwrap_or_else(|p| p.into_inner());
            per.insert(tenant, (c.finished, c.to_send));
            per.values().fold((0, 0), |(d, t), (a, b)| (d + a, t + b))
        };
        let tenants_done = self.done.load(std::sync::atomic::Ordering::Relaxed);
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        match &self.bar {
            Some(b) => {
                b.set_length(total as u64);
                b.set_position(done as u64);
                b.set_message(format!(
                    "tenants {tenants_done}/{} · {rate:.1}/s",
                    self.tenants
                ));
            }
            None => {
                let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
                if last.elapsed() >= Duration::from_secs(5) {
                    *last = Instant::now();
                    tracing::info!(
                        devices_done = done,
                        of = total,
                        tenants_done,
                        tenants = self.tenants,
                        rate = format!("{rate:.1}/s"),
                        "progress"
                    );
                }
            }
        }
    }

    fn tenant_done(&self, r: &TenantResult) {
        let n = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let name = self
            .names
            .get(&r.entry.tenant_id)
            .cloned()
            .unwrap_or_default();
        let what = match (&r.counters, r.state) {
            (Some(c), _) => format!(
                "{}: rotated {}, failed {}, skipped {}, pending {}",
                r.state.name(),
                c.rotated,
                c.failed,
                c.skipped,
                c.pending + c.in_doubt
            ),
            (None, s) => format!("{}: {}", s.name(), r.reason.as_deref().unwrap_or("")),
        };
        let line = format!(
            "tenant {n}/{} {name} ({}) {what}",
            self.tenants, r.entry.tenant_id
        );
        match &self.bar {
            Some(b) => b.println(line),
            None => println!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// `status --run-dir`: one line per tenant and the total (or JSON).
pub fn status(dir: &Path, json: bool) -> Result<ExitStatus, Failure> {
    let run = RunDir::open(dir)?;
    let states = [
        rotation::DeviceState::Rotated,
        rotation::DeviceState::Failed,
        rotation::DeviceState::Skipped,
        rotation::DeviceState::Pending,
        rotation::DeviceState::InDoubt,
    ];
    let mut total: BTreeMap<&str, usize> = BTreeMap::new();
    let mut devices = 0;
    let mut rows = Vec::new();
    for t in &run.manifest().tenants {
        let ledger = run.ledger(t.tenant.tenant_id);
        let counts: BTreeMap<&str, usize> = match rotation::ledger_replay(&ledger) {
            Ok((state, _)) => {
                devices += state.ids.len();
                states.iter().map(|s| (s.name(), state.count(*s))).collect()
            }
            Err(_) => BTreeMap::new(),
        };
        for (k, v) in &counts {
            *total.entry(k).or_default() += v;
        }
        rows.push((t, counts));
    }
    if json {
        let tenants: Vec<serde_json::Value> = rows
            .iter()
            .map(|(t, counts)| {
                let mut v = serde_json::json!({
                    "tenant_id": t.tenant.tenant_id,
                    "tenant_name": t.tenant.name,
                    "state": t.state.name(),
                    "reason": t.reason,
                    "advice": t.advice,
                });
                for s in states {
                    v[s.name()] = serde_json::json!(counts.get(s.name()).copied().unwrap_or(0));
                }
                v
            })
            .collect();
        let mut doc = serde_json::json!({
            "run_dir": dir,
            "action": run.manifest().action,
            "tenants": tenants,
            "total": devices,
            "devices": devices,
        });
        for s in states {
            doc[s.name()] = serde_json::json!(total.get(s.name()).copied().unwrap_or(0));
        }
        println!("{doc}");
        return Ok(ExitStatus::Success);
    }
    println!("run      {}", dir.display());
    println!("action   {}", run.manifest().action);
    println!(
        "{:<38} {:<24} {:<8} {:>8} {:>7} {:>8} {:>8} {:>8}",
        "tenant", "name", "state", "rotated", "failed", "skipped", "pending", "in_doubt"
    );
    for (t, counts) in &rows {
        let n = |k: &str| counts.get(k).copied().unwrap_or(0);
        println!(
            "{:<38} {:<24} {:<8} {:>8} {:>7} {:>8} {:>8} {:>8}",
            t.tenant.tenant_id,
            truncate(&t.tenant.name, 24),
            t.state.name(),
            n("rotated"),
            n("failed"),
            n("skipped"),
            n("pending"),
            n("in_doubt")
        );
        if let Some(why) = &t.reason {
            println!("    {why}");
        }
    }
    let n = |k: &str| total.get(k).copied().unwrap_or(0);
    println!(
        "{:<38} {:<24} {:<8} {:>8} {:>7} {:>8} {:>8} {:>8}",
        "total",
        format!("{} tenants", rows.len()),
        "",
        n("rotated"),
        n("failed"),
        n("skipped"),
        n("pending"),
        n("in_doubt")
    );
    Ok(ExitStatus::Success)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// `export --run-dir`: every tenant's rows in one file, `tenant_id` and `tenant_name` first.
pub fn export(
    dir: &Path,
    format: rotation::ExportFormat,
    out: Option<&Path>,
    excel: bool,
) -> Result<ExitStatus, Failure> {
    let run = RunDir::open(dir)?;
    let mut w = super::export::ForExcel::wrap(open_output(out)?, excel).map_err(failed)?;
    // Each tenant's ledger is exported straight into the output, tagged with its tenant: memory
    // stays that of one ledger's export, whatever the number of tenants.
    let ledgers = run
        .manifest()
        .tenants
        .iter()
        .map(|t| {
            let tag = rotation::Tag {
                tenant_id: t.tenant.tenant_id.to_string(),
                tenant_name: t.tenant.name.clone(),
            };
            (run.ledger(t.tenant.tenant_id), Some(tag))
        })
        .filter(|(ledger, _)| ledger.exists());
    let n = rotation::export_all(ledgers, format, &mut w)?;
    w.flush().map_err(failed)?;
    if let Some(p) = out {
        eprintln!(
            "wrote {n} device(s) of {} tenant(s) to {}",
            run.manifest().tenants.len(),
            p.display()
        );
    }
    Ok(ExitStatus::Success)
}

/// Copies one tenant's CSV into `out` with `tenant_id` and `tenant_name` first (the header once,
/// before the first tenant's rows); returns the rows copied.
fn with_tenant_columns(
    csv_text: &[u8],
    out: &mut dyn Write,
    id: &str,
    name: &str,
    header_written: &mut bool,
) -> Result<usize, Failure> {
    let mut r = csv::Reader::from_reader(csv_text);
    let mut w = csv::WriterBuilder::new().from_writer(out);
    if !*header_written {
        let mut h = csv::StringRecord::from(vec!["tenant_id", "tenant_name"]);
        h.extend(r.headers().map_err(failed)?.iter());
        w.write_record(&h).map_err(failed)?;
        *header_written = true;
    }
    let mut n = 0;
    for record in r.records() {
        let record = record.map_err(failed)?;
        let mut row = csv::StringRecord::from(vec![id, name]);
        row.extend(record.iter());
        w.write_record(&row).map_err(failed)?;
        n += 1;
    }
    w.flush().map_err(failed)?;
    Ok(n)
}

/// `verify --run-dir`: each tenant's ledger, each with its own sign-in.
pub async fn verify(
    dir: &Path,
    connection: &Connection,
    o: &rotation::VerifyOptions,
) -> Result<ExitStatus, Failure> {
    let run = RunDir::open(dir)?;
    let mut status = ExitStatus::Success;
    let mut total: rotation::VerifyCounts = BTreeMap::new();
    for t in &run.manifest().tenants {
        let ledger = run.ledger(t.tenant.tenant_id);
        if !ledger.exists() {
            println!(
                "{} ({}): no ledger ({})",
                t.tenant.name,
                t.tenant.tenant_id,
                t.state.name()
            );
            status = status.max(ExitStatus::Incomplete);
            continue;
        }
        let conn = tenant_connection(connection, &t.tenant);
        let connected = async {
            let c = connect::client(
                &conn,
                None,
                None,
                &["DeviceManagementManagedDevices.Read.All"],
            )?;
            connect::preflight_read(&c).await?;
            Ok::<_, Failure>(c)
        }
        .await;
        let c = match connected {
            Ok(c) => c,
            Err(Failure(_, e)) => {
                println!(
                    "{} ({}): blocked: {}",
                    t.tenant.name,
                    t.tenant.tenant_id,
                    said_once(&e)
                );
                status = status.max(ExitStatus::Incomplete);
                continue;
            }
        };
        let report = super::verify::run_verify(&c.client, &ledger, o).await?;
        let line: Vec<String> = report
            .counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!(
            "{} ({}): {}",
            t.tenant.name,
            t.tenant.tenant_id,
            line.join(", ")
        );
        for (k, v) in &report.counts {
            *total.entry(*k).or_default() += v;
        }
        status = status.max(ExitStatus::of_verify(&report.counts));
    }
    let line: Vec<String> = total.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("total: {}", line.join(", "));
    Ok(status)
}

/// `devices --tenants FILE`: every tenant's devices in one list, `tenant_id` and `tenant_name`
/// first; a tenant that cannot be read is named on stderr and the command exits 1.
pub async fn devices(
    tenants_file: &Path,
    a: &crate::cli::DevicesArgs,
) -> Result<ExitStatus, Failure> {
    let tenants = rotation::read_tenants(tenants_file)?;
    let action = action_of(a.action);
    let source = super::source::open(&a.source)?;
    if !source.lists_devices() {
        return Err(usage(anyhow::anyhow!(
            "--tenants lists devices from Graph: use --query, --group or another Graph source"
        )));
    }
    let mut out = open_output(a.out.as_deref())?;
    let mut status = ExitStatus::Success;
    let mut header_written = false;
    let mut n = 0;
    for t in &tenants {
        let conn = tenant_connection(&a.connection, t);
        let listed = async {
            let source = super::source::open(&a.source)?;
            let c = connect::client(
                &conn,
                None,
                None,
                &connect::delegated_scopes(action, source.scopes()),
            )?;
            connect::preflight_read(&c).await?;
            let list = super::source::materialize(
                source,
                Some(&c.client),
                action,
                a.source.allow_partial_source,
            )
            .await?;
            let mut buf = Vec::new();
            rotation::write_devices_csv(&mut buf, &list)?;
            Ok::<Vec<u8>, Failure>(buf)
        }
        .await;
        let buf = match listed {
            Ok(b) => b,
            Err(Failure(_, e)) => {
                eprintln!("{} ({}): {}", t.name, t.tenant_id, said_once(&e));
                status = ExitStatus::Incomplete;
                continue;
            }
        };
        let id = t.tenant_id.to_string();
        if let Some(dir) = &a.run_dir {
            let path = dir.join("devices").join(format!("{id}.csv"));
            std::fs::create_dir_all(dir.join("devices"))
                .and_then(|()| std::fs::write(&path, &buf))
                .map_err(|e| failed(anyhow::anyhow!("{}: {e}", path.display())))?;
        }
        n += with_tenant_columns(&buf, &mut out, &id, &t.name, &mut header_written)?;
    }
    out.flush().map_err(failed)?;
    eprintln!("{n} device(s) from {} tenant(s)", tenants.len());
    Ok(status)
}
