//! `graph-sim`: the simulated Intune tenant as a process, for scripts and clients that are not ours.

use clap::Parser;
use graph_sim::{Quota, RetryAfterStyle, SimConfig};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// A simulated Intune tenant speaking Microsoft Graph on loopback.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    after_help = "Example:\n  graph-sim --addr 127.0.0.1:0 --devices 5000 --latency-ms 100\n  (prints `listening on http://127.0.0.1:PORT` first; use that URL as --graph-url and --login-url)"
)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Serve https with a certificate made at start; the second line printed names the file of
    /// the CA that signed it (`ca certificate at PATH`), for clients to trust.
    #[arg(long)]
    tls: bool,
    /// Where `--tls` writes the CA certificate (default: a file in the temporary directory).
    #[arg(long, requires = "tls")]
    ca_out: Option<std::path::PathBuf>,
    /// Number of managed devices in the tenant.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Share of devices that are Macs (the rest mostly Windows, a few iOS/Android).
    #[arg(long, default_value_t = 0.6)]
    mac_share: f64,
    /// Seed for the tenant and every fault: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = graph_sim_default_tenant())]
    tenant: String,
    /// Serve this many tenants (the first is --tenant), each with its own seeded devices,
    /// directory, limits and token endpoint.
    #[arg(long, default_value_t = 1, conflicts_with = "tenants_file")]
    tenants: usize,
    /// Serve the tenants a CSV lists: tenant_id, and optionally name, devices, latency_ms, p429,
    /// post_limit (COUNT/WINDOW) and consented (true/false); other flags are every tenant's default.
    #[arg(long)]
    tenants_file: Option<std::path::PathBuf>,
    /// The last K tenants never consented to the app: sign-in answers AADSTS7000229.
    #[arg(long, default_value_t = 0)]
    unconsented: usize,
    #[arg(long, default_value = "sim-client")]
    client_id: String,
    #[arg(long, default_value = "sim-secret")]
    client_secret: String,
    /// PEM file of a client certificate registered for assertions.
    #[arg(long)]
    certificate: Option<std::path::PathBuf>,
    /// Roles put in issued tokens, comma separated (default: all the rotate actions and listings need).
    #[arg(long, value_delimiter = ',')]
    roles: Option<Vec<String>>,
    /// Lifetime of issued tokens in seconds.
    #[arg(long, default_value_t = 3599)]
    token_lifetime: u64,
    /// Refuse tokens (401) this many seconds after issue, although they advertise a longer life.
    #[arg(long)]
    revoke_tokens_after: Option<u64>,
    /// Device code sign-in: seconds until the simulated admin approves a code.
    #[arg(long, default_value_t = 2.0)]
    device_code_approve_after: f64,
    /// Device code sign-in: the polling interval (seconds) a code asks for.
    #[arg(long, default_value_t = 1)]
    device_code_interval: u64,
    /// Seconds until an accepted action goes from pending to done (or failed).
    #[arg(long, default_value_t = 30.0)]
    complete_after: f64,
    /// Share of accepted actions that end failed.
    #[arg(long, default_value_t = 0.0)]
    fail_share: f64,
    /// POST/PUT/PATCH/DELETE per app per tenant.
    #[arg(long, default_value = "200/20s")]
    post_limit: Quota,
    /// POST/PUT/PATCH/DELETE per tenant, all apps together.
    #[arg(long, default_value = "400/20s")]
    tenant_post_limit: Quota,
    /// Any request per app per tenant.
    #[arg(long, default_value = "2000/20s")]
    any_limit: Quota,
    #[arg(long, value_enum, default_value_t = RetryAfterStyle::Int)]
    retry_after_style: RetryAfterStyle,
    /// What the service does beyond the limit: accrue (throttled requests count too, and
    /// Retry-After grows for an app that keeps arriving early), block (a per-app block every early
    /// request extends by 1 s) or none (only admitted requests count).
    #[arg(long, value_enum, default_value = "accrue")]
    throttle_model: graph_sim::ThrottleModel,
    /// The same as `--throttle-model none` (kept for older scripts).
    #[arg(long, hide = true)]
    no_penalty: bool,
    /// Mean added latency per HTTP request (jittered ±50 %).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    #[arg(long, default_value_t = 0.0)]
    p429: f64,
    #[arg(long, default_value_t = 0.0)]
    p503: f64,
    #[arg(long, default_value_t = 0.0)]
    p500: f64,
    #[arg(long, default_value_t = 0.0)]
    p504: f64,
    /// Share of single-device GETs answered 500, listings and actions untouched.
    #[arg(long, default_value_t = 0.0)]
    read_p500: f64,
    /// Share of HTTP responses whose connection is closed mid-body (after the work was done).
    #[arg(long, default_value_t = 0.0)]
    drop: f64,
    /// Share of HTTP responses whose JSON body is cut short.
    #[arg(long, default_value_t = 0.0)]
    truncate: f64,
    /// Share of HTTP requests holding an action (a POST, or a $batch with a POST item) whose
    /// connection drops and whose actions are carried out later (between half of --late-max and
    /// --late-max seconds); a read is never late, a drop of one is --drop.
    #[arg(long, default_value_t = 0.0)]
    late: f64,
    /// The longest delay of a late action, in seconds (at most 60).
    #[arg(long, default_value_t = 20.0)]
    late_max: f64,
    /// Share of action items answered 429 although the action was carried out.
    #[arg(long = "ghost-429", default_value_t = 0.0)]
    ghost_429: f64,
    /// Share of whole `$batch` requests answered 429 without running any item.
    #[arg(long, default_value_t = 0.0)]
    batch_p429: f64,
    /// Share of whole `$batch` requests answered 503 without running any item.
    #[arg(long, default_value_t = 0.0)]
    batch_p503: f64,
    /// After this many listing pages, every further page answers 500.
    #[arg(long)]
    list_fail_after_pages: Option<u64>,
    /// How action results are named: graph (rotateFileVaultKey), pascal (RotateFileVaultKey),
    /// keyword (FileVaultKeyRotation), typed (a derived @odata.type, actionName deviceAction), or
    /// other=NAME.
    #[arg(long, default_value = "graph")]
    action_result_names: graph_sim::ResultNames,
    /// Every accepted action also leaves unrelated results (locateDevice, getFileVaultKey) on the
    /// next device.
    #[arg(long)]
    decoy_results: bool,
    /// What listings do with a $filter clause they do not support: ignore (drop it and answer
    /// with more, as Intune does; an unsupported `or` returns everything) or refuse (400).
    #[arg(long, value_enum, default_value = "ignore")]
    filter_mode: graph_sim::FilterMode,
    #[command(flatten)]
    shapes: ShapeArgs,
    #[command(flatten)]
    audit: AuditArgs,
    #[command(flatten)]
    identity: IdentityArgs,
}

/// The audit logs (docs/graph-facts.md §12, docs/graph-sim.md "Audit logs").
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Audit logs (graph-facts §12)")]
struct AuditArgs {
    /// The Entra licence: free keeps directory audits 7 days, p1 and p2 keep 30.
    #[arg(long, value_enum, default_value = "free")]
    entra_license: graph_sim::EntraLicense,
    /// The longest an event takes to show in its log, in seconds (most show within 120; 0: at once).
    #[arg(long, default_value_t = 300.0)]
    audit_delay_max: f64,
    /// Share of directory reads logged twice (a known issue of the BitLocker key read).
    #[arg(long, default_value_t = 0.25)]
    audit_duplicates: f64,
    /// Which id of a Windows LAPS recovery's target names the device.
    #[arg(long, value_enum, default_value = "object-id")]
    laps_audit_target: graph_sim::LapsTarget,
    /// The Intune activity a FileVault key view is logged under (not documented).
    #[arg(long, default_value = "getFileVaultKey ManagedDevice")]
    filevault_view_activity: String,
    /// The Intune activity a Recovery Lock passcode view is logged under (not documented).
    #[arg(long, default_value = "retrieveRecoveryLockPasscode ManagedDevice")]
    recovery_lock_view_activity: String,
    /// The directory audit log's limit per app per tenant.
    #[arg(long, default_value = "5/10s")]
    audit_limit: graph_sim::Quota,
}

/// Sign-in without a stored secret (docs/graph-facts.md §13, docs/graph-sim.md "Unattended sign-in").
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Unattended sign-in (graph-facts §13)")]
struct IdentityArgs {
    /// The X-IDENTITY-HEADER `GET /_identity/token` requires (App Service's IDENTITY_HEADER).
    #[arg(long, default_value = "sim-identity-header")]
    identity_header: String,
    /// How managed identity answers write `expires_on`.
    #[arg(long, value_enum, default_value = "date")]
    identity_expires_on: graph_sim::ExpiresOnForm,
    /// Where Azure Arc's challenge writes its key files (default: a folder in the temporary directory).
    #[arg(long)]
    arc_key_dir: Option<std::path::PathBuf>,
    /// The bearer `GET /_gha/token` requires (GitHub's ACTIONS_ID_TOKEN_REQUEST_TOKEN).
    #[arg(long, default_value = "sim-gha")]
    gha_request_token: String,
    /// Keep a valid federated assertion for the app in this file, rewritten at half its lifetime.
    #[arg(long)]
    federated_token_out: Option<std::path::PathBuf>,
    /// The subject the app's federated credential trusts.
    #[arg(
        long,
        default_value = "repo:example-org/fleet-rotation:ref:refs/heads/main"
    )]
    federated_subject: String,
    /// How long federated assertions live, in seconds.
    #[arg(long, default_value_t = 600)]
    federated_lifetime: u64,
}

/// How answers are shaped where real tenants differ from the simple reading (docs/graph-sim.md,
/// "Real shapes"). Each defaults to what real tenants answer; `--shapes simple` is every kinder
/// form at once, and a flag of its own chooses one form over the preset.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Real shapes (graph-facts §11)")]
struct ShapeArgs {
    /// Every form at once: real (what tenants answer) or simple (the plain reading of the docs).
    #[arg(long, value_enum, default_value = "real")]
    shapes: graph_sim::ShapesPreset,
    /// macOS osVersion with its build, `14.5 (23F79)`, or plain, `14.5`.
    #[arg(long, value_enum)]
    os_versions: Option<graph_sim::OsVersionForm>,
    /// deviceActionResults in device listings: omitted (filled on a single-device GET only) or included.
    #[arg(long, value_enum)]
    list_results: Option<graph_sim::ListResults>,
    /// Which devices script run states hold: as-modelled (Macs in shell scripts only) or any.
    #[arg(long, value_enum)]
    script_platforms: Option<graph_sim::ScriptPlatforms>,
    /// Member listings with a cast: advanced-query (400 without ConsistencyLevel and $count) or plain.
    #[arg(long, value_enum)]
    member_casts: Option<graph_sim::MemberCasts>,
    /// Single Intune entities (a device, a LAPS credential): wrapped in `value`, or top-level.
    #[arg(long, value_enum)]
    entities: Option<graph_sim::EntityForm>,
    /// Timestamps: offset (`…46.7156189-08:00`) or utc (`…46Z`).
    #[arg(long, value_enum)]
    times: Option<graph_sim::TimeForm>,
    /// Permissions of the rotate actions: as-documented (per action page) or broad.
    #[arg(long, value_enum)]
    action_permissions: Option<graph_sim::ActionPermissions>,
    /// `unknown` join type and ownership on some devices: present or absent.
    #[arg(long, value_enum)]
    unknown_members: Option<graph_sim::UnknownMembers>,
    /// managedDevices $filter properties: documented (the SDK's few) or practice (operatingSystem too).
    #[arg(long, value_enum)]
    device_filters: Option<graph_sim::DeviceFilters>,
    /// The encryption report's ids: managed-device (join to devices) or own (a key of its own).
    #[arg(long, value_enum)]
    report_ids: Option<graph_sim::ReportIds>,
}

impl ShapeArgs {
    fn shapes(&self) -> graph_sim::Shapes {
        let mut s = graph_sim::Shapes::preset(self.shapes);
        s.os_versions = self.os_versions.unwrap_or(s.os_versions);
        s.list_results = self.list_results.unwrap_or(s.list_results);
        s.script_platforms = self.script_platforms.unwrap_or(s.script_platforms);
        s.member_casts = self.member_casts.unwrap_or(s.member_casts);
        s.entities = self.entities.unwrap_or(s.entities);
        s.times = self.times.unwrap_or(s.times);
        s.action_permissions = self.action_permissions.unwrap_or(s.action_permissions);
        s.unknown_members = self.unknown_members.unwrap_or(s.unknown_members);
        s.device_filters = self.device_filters.unwrap_or(s.device_filters);
        s.report_ids = self.report_ids.unwrap_or(s.report_ids);
        s
    }
}

const fn graph_sim_default_tenant() -> &'static str {
    graph_sim::DEFAULT_TENANT
}

fn config(a: Args) -> Result<SimConfig, String> {
    let certificate = match a.certificate {
        Some(p) => {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            graph_sim::RegisteredCert::from_pem(&text)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            Some(text)
        }
        None => None,
    };
    let mut c = SimConfig {
        devices: a.devices,
        mac_share: a.mac_share,
        seed: a.seed,
        tenant: a.tenant,
        client_id: a.client_id,
        client_secret: a.client_secret,
        certificate,
        token_lifetime: Duration::from_secs(a.token_lifetime),
        revoke_tokens_after: a.revoke_tokens_after.map(Duration::from_secs),
        device_code_approve_after: seconds(a.device_code_approve_after),
        device_code_interval: Duration::from_secs(a.device_code_interval.max(1)),
        complete_after: seconds(a.complete_after),
        fail_share: a.fail_share,
        post_limit: a.post_limit,
        tenant_post_limit: a.tenant_post_limit,
        any_limit: a.any_limit,
        retry_after_style: a.retry_after_style,
        throttle_model: if a.no_penalty {
            graph_sim::ThrottleModel::None
        } else {
            a.throttle_model
        },
        latency: Duration::from_millis(a.latency_ms),
        p429: a.p429,
        p503: a.p503,
        p500: a.p500,
        p504: a.p504,
        read_p500: a.read_p500,
        drop: a.drop,
        truncate: a.truncate,
        late: a.late,
        late_max: seconds(a.late_max.min(60.0)),
        ghost_429: a.ghost_429,
        batch_p429: a.batch_p429,
        batch_p503: a.batch_p503,
        list_fail_after_pages: a.list_fail_after_pages,
        action_result_names: a.action_result_names,
        decoy_results: a.decoy_results,
        filter_mode: a.filter_mode,
        tls: a.tls,
        shapes: a.shapes.shapes(),
        entra_license: a.audit.entra_license,
        audit: graph_sim::AuditShape {
            delay_max: seconds(a.audit.audit_delay_max.max(0.0)),
            duplicates: a.audit.audit_duplicates.clamp(0.0, 1.0),
            laps_target: a.audit.laps_audit_target,
            filevault_view: a.audit.filevault_view_activity.clone(),
            recovery_lock_view: a.audit.recovery_lock_view_activity.clone(),
            fixed_delay: None,
        },
        audit_limit: a.audit.audit_limit,
        identity: graph_sim::IdentityConfig {
            header: a.identity.identity_header,
            gha_request_token: a.identity.gha_request_token,
            expires_on: a.identity.identity_expires_on,
            arc_key_dir: a.identity.arc_key_dir,
            federated_subject: a.identity.federated_subject,
            federated_lifetime: Duration::from_secs(a.identity.federated_lifetime.max(2)),
            federated_token_out: a.identity.federated_token_out,
            ..graph_sim::IdentityConfig::default()
        },
        ..SimConfig::default()
    };
    if let Some(roles) = a.roles {
        c.roles = roles.into_iter().filter(|r| !r.is_empty()).collect();
    }
    Ok(c)
}

/// Every tenant's configuration: the flags' one, or one per `--tenants` / `--tenants-file` entry.
fn fleet(a: Args) -> Result<Vec<SimConfig>, String> {
    let (count, file, unconsented) = (a.tenants.max(1), a.tenants_file.clone(), a.unconsented);
    let base = config(a)?;
    let mut configs: Vec<SimConfig> = match file {
        None => (0..count)
            .map(|i| {
                let mut c = base.clone();
                if i > 0 {
                    c.tenant = format!(
                        "{:08x}-5e1f-4c8e-9a61-{:012x}",
                        0x7e0a_0000_u32 + i as u32,
                        i
                    );
                    c.seed = base.seed.wrapping_add(i as u64);
                }
                c.tenant_name = format!("Customer {:03} (simulated)", i + 1);
                c
            })
            .collect(),
        Some(path) => tenants_file(&path, &base)?,
    };
    if unconsented > configs.len() {
        return Err(format!(
            "--unconsented {unconsented}: only {} tenants",
            configs.len()
        ));
    }
    let n = configs.len();
    for c in &mut configs[n - unconsented..] {
        c.consented = false;
    }
    Ok(configs)
}

fn tenants_file(path: &std::path::Path, base: &SimConfig) -> Result<Vec<SimConfig>, String> {
    let place = |line: u64, what: String| format!("{}:{line}: {what}", path.display());
    let mut r = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = r
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let id_col = col("tenant_id").ok_or_else(|| place(1, "no tenant_id column".into()))?;
    let mut out = Vec::new();
    for (k, row) in r.records().enumerate() {
        let line = k as u64 + 2;
        let row = row.map_err(|e| place(line, e.to_string()))?;
        let get = |name: &str| {
            col(name)
                .and_then(|i| row.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let mut c = base.clone();
        c.tenant = row.get(id_col).unwrap_or("").trim().to_string();
        if uuid::Uuid::parse_str(&c.tenant).is_err() {
            return Err(place(
                line,
                format!("tenant_id {:?} is not a GUID", c.tenant),
            ));
        }
        c.seed = base.seed.wrapping_add(k as u64);
        c.tenant_name = get("name").map_or_else(
            || format!("Customer {:03} (simulated)", k + 1),
            str::to_string,
        );
        let num = |name: &str| -> Result<Option<f64>, String> {
            get(name)
                .map(|v| {
                    v.parse::<f64>()
                        .map_err(|_| place(line, format!("{name} {v:?} is not a number")))
                })
                .transpose()
        };
        if let Some(n) = num("devices")? {
            c.devices = n as usize;
        }
        if let Some(ms) = num("latency_ms")? {
            c.latency = Duration::from_millis(ms as u64);
        }
        if let Some(p) = num("p429")? {
            c.p429 = p;
        }
        if let Some(q) = get("post_limit") {
            c.post_limit = q
                .parse()
                .map_err(|e| place(line, format!("post_limit: {e}")))?;
            c.tenant_post_limit = Quota::new(c.post_limit.count * 2, c.post_limit.window);
        }
        if let Some(v) = get("consented") {
            c.consented = v
                .parse()
                .map_err(|_| place(line, format!("consented {v:?}: expected true or false")))?;
        }
        out.push(c);
    }
    if out.is_empty() {
        return Err(format!("{}: no tenants", path.display()));
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let addr = args.addr;
    let ca_out = args.ca_out.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("graph-sim-{}-ca.pem", std::process::id()))
    });
    let configs = match fleet(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("graph-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("graph-sim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        match graph_sim::start_fleet(addr, configs).await {
            Ok(handle) => {
                println!("listening on {}", handle.base_url);
                if let Some(pem) = &handle.ca_pem {
                    if let Err(e) = std::fs::write(&ca_out, pem) {
                        eprintln!("graph-sim: cannot write {}: {e}", ca_out.display());
                        return ExitCode::FAILURE;
                    }
                    println!("ca certificate at {}", ca_out.display());
                }
                use std::io::Write;
                let _ = std::io::stdout().flush();
                let _ = tokio::signal::ctrl_c().await;
                handle.shutdown().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("graph-sim: cannot listen on {addr}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// A flag's seconds as a duration: negative or not a number is zero, and a huge value is capped,
/// so no value given on the command line can panic the conversion.
fn seconds(x: f64) -> Duration {
    if x.is_nan() {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(x.clamp(0.0, 1e9))
    }
}
