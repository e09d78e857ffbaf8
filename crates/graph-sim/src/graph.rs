//! Graph's routes over the tenant. Direct calls and `$batch` items both come through [`Sim::handle`],
//! so auth, throttling and faults apply to each the same way.

use crate::audit::{AuditLog, Log};
use crate::auth::{Auth, Claims};
use crate::config::{RetryAfterStyle, SimConfig};
use crate::directory::Directory;
use crate::filter::{self, FieldValue, Op, Supported};
use crate::odata::{self, Shape};
use crate::select::Selection;
use crate::shapes::{ActionPermissions, DeviceFilters, EntityForm, MemberCasts, ReportIds};
use crate::stats::Stats;
use crate::tenant::{
    ActionResult, Answer, DEVICE_FILTERS, DOCUMENTED_DEVICE_FILTERS, ScriptKind, Tenant,
};
use crate::throttle::{Throttle, Verdict};
use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

pub use crate::wire::{SimRequest, SimResponse, graph_error};

/// The rotate actions: canonical name and the platform each applies to.
const ACTIONS: [(&str, &str); 4] = [
    ("rotateFileVaultKey", "macOS"),
    ("rotateRecoveryLockPasscode", "macOS"),
    ("rotateBitLockerKeys", "Windows"),
    ("rotateLocalAdminPassword", "Windows"),
];

const READ_DEVICES: &[&str] = &[
    "DeviceManagementManagedDevices.Read.All",
    "DeviceManagementManagedDevices.ReadWrite.All",
];
const READ_BITLOCKER: &[&str] = &["BitLockerKey.ReadBasic.All", "BitLockerKey.Read.All"];
const READ_LAPS: &[&str] = &[
    "DeviceLocalCredential.ReadBasic.All",
    "DeviceLocalCredential.Read.All",
];
/// Reading groups and their members.
const READ_GROUPS: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
];
/// Reading device objects' properties (`deviceId`) in member listings.
const READ_ENTRA_DEVICES: &[&str] = &["Device.Read.All", "Directory.Read.All"];
/// The directory audit log takes both (graph-facts §12).
const READ_AUDIT: &[&str] = &["AuditLog.Read.All", "Directory.Read.All"];
/// Intune's audit events.
const READ_INTUNE_AUDIT: &[&str] = &[
    "DeviceManagementApps.Read.All",
    "DeviceManagementApps.ReadWrite.All",
];
const READ_ORGANIZATION: &[&str] = &["Organization.Read.All", "Directory.Read.All"];
/// The directory audit log's documented filters: the activity's name (compared with case), its
/// time, and the service that logged it; nothing else.
const DIRECTORY_AUDIT_FILTERS: Supported = &[
    ("activityDisplayName", Op::EqCase),
    ("activityDateTime", Op::Ge),
    ("activityDateTime", Op::Le),
    ("loggedByService", Op::Eq),
];
const INTUNE_AUDIT_FILTERS: Supported = &[
    ("activityType", Op::EqCase),
    ("activityDateTime", Op::Ge),
    ("activityDateTime", Op::Le),
    ("category", Op::Eq),
];
/// Named collections (groups, scripts, apps) are filtered by display name only.
const NAME_FILTERS: Supported = &[("displayName", Op::Eq)];
const READ_CONFIG: &[&str] = &[
    "DeviceManagementConfiguration.Read.All",
    "DeviceManagementConfiguration.ReadWrite.All",
];

fn has_any(claims: &Claims, roles: &[&str]) -> bool {
    let scopes = claims.scp.as_deref().unwrap_or("").split_whitespace();
    claims
        .roles
        .iter()
        .map(String::as_str)
        .chain(scopes)
        .any(|r| roles.iter().any(|x| x.eq_ignore_ascii_case(r)))
}

/// Whether the token's roles allow `action`: as each action's page lists them (graph-facts §11),
/// or, in the broad form, as a service that takes either write permission would.
fn may_run<'a>(claims: &Claims, action: &'a str, form: ActionPermissions) -> Result<(), &'a str> {
    const PRIVILEGED: &str = "DeviceManagementManagedDevices.PrivilegedOperations.All";
    const READ_WRITE: &str = "DeviceManagementManagedDevices.ReadWrite.All";
    let ok = match (action, form) {
        ("rotateFileVaultKey", _) => has_any(claims, &[PRIVILEGED]),
        ("rotateLocalAdminPassword", ActionPermissions::AsDocumented) => {
            has_any(claims, &[PRIVILEGED, READ_WRITE])
        }
        ("rotateLocalAdminPassword", ActionPermissions::Broad) => {
            has_any(claims, &[PRIVILEGED, READ_WRITE])
                || (has_any(claims, READ_CONFIG) && has_any(claims, READ_DEVICES))
        }
        (_, ActionPermissions::AsDocumented) => has_any(claims, &[READ_WRITE]),
        (_, ActionPermissions::Broad) => has_any(claims, &[READ_WRITE, PRIVILEGED]),
    };
    if ok { Ok(()) } else { Err(action) }
}

/// Everything the simulator keeps between requests.
#[derive(Debug)]
pub struct Inner {
    pub tenant: Tenant,
    pub stats: Stats,
    pub throttle: Throttle,
    pub rng: StdRng,
    /// Draws whether a request holding an action is late (`--late`): a stream of its own, so the
    /// n-th such request is late or not whatever reads came between.
    pub late_rng: StdRng,
    pub http_seq: u64,
    /// Listing pages served, for `list_fail_after_pages`.
    pub pages_served: u64,
    /// The request being handled loses its answer and its actions are carried out this much later
    /// (`--late`).
    pub late_by: Option<Duration>,
    pub audit: AuditLog,
    /// Draws audit delays and duplicates: a stream of its own, so other draws stay as seeded.
    pub audit_rng: StdRng,
    /// The directory audit log's own limit, per app in this tenant.
    pub audit_windows: HashMap<String, crate::throttle::Window>,
    /// Messages `sendMail` accepted, the latest last.
    pub mail: Vec<Value>,
}

#[derive(Debug)]
pub struct Sim {
    pub config: SimConfig,
    pub auth: Auth,
    pub inner: Mutex<Inner>,
    pub base_url: String,
    /// The directory audit log's limit per app across tenants, shared by a fleet's tenants.
    pub audit_across: std::sync::Arc<Mutex<HashMap<String, crate::throttle::Window>>>,
    /// Azure Arc's outstanding challenge: the key file it named and what the file holds.
    pub arc_key: Mutex<Option<(std::path::PathBuf, String)>>,
}

/// Which list a navigation yields.
enum Listing {
    Devices(Vec<usize>),
    RunStates(ScriptKind, usize),
    /// Directory objects, scripts or apps, already as JSON.
    Objects {
        items: Vec<Value>,
        entity: &'static str,
        filters: Supported,
        need: &'static [&'static str],
    },
}

enum Route {
    List(Listing),
    /// An audit log's events (graph-facts §12).
    Audit(Log),
    /// `auditEvents/getAuditActivityTypes(category='…')`.
    ActivityTypes,
    Get(usize),
    Object {
        item: Value,
        entity: &'static str,
        need: &'static [&'static str],
    },
    GetRunStateDevice(usize),
    Action {
        device: usize,
        action: &'static str,
    },
}

type RouteResult = Result<Route, SimResponse>;

fn not_found(what: &str) -> SimResponse {
    graph_error(404, "ResourceNotFound", &format!("{what} not found"), None)
}

fn no_segment(segment: &str) -> SimResponse {
    graph_error(
        400,
        "BadRequest",
        &format!("Resource not found for the segment '{segment}'."),
        None,
    )
}

impl Sim {
    pub fn new(config: SimConfig, base_url: String) -> Self {
        let mut tenant = Tenant::generate(
            config.devices,
            config.mac_share,
            config.seed,
            SystemTime::now(),
        );
        tenant.shapes = config.shapes;
        if config.shapes.unknown_members == crate::UnknownMembers::Absent {
            for d in &mut tenant.devices {
                d.reports_unknown = false;
            }
        }
        let throttle = Throttle::new(
            config.post_limit,
            config.tenant_post_limit,
            config.any_limit,
            config.throttle_model,
        );
        let mut key_rng = StdRng::seed_from_u64(config.seed ^ 0x5eed_70c3);
        let key: Vec<u8> = (0..32).map(|_| key_rng.random()).collect();
        let auth = Auth::new(&config, key, &base_url);
        let rng = StdRng::seed_from_u64(config.seed.wrapping_mul(31).wrapping_add(7));
        Sim {
            auth,
            inner: Mutex::new(Inner {
                tenant,
                stats: Stats::default(),
                throttle,
                rng,
                late_rng: StdRng::seed_from_u64(config.seed ^ 0x1a7e_0000),
                http_seq: 0,
                pages_served: 0,
                late_by: None,
                audit: AuditLog::default(),
                audit_rng: StdRng::seed_from_u64(config.seed ^ 0xa0d1_7000),
                audit_windows: HashMap::new(),
                mail: Vec::new(),
            }),
            base_url,
            audit_across: Default::default(),
            arc_key: Default::default(),
            config,
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A `Retry-After` header value in the configured style; `None` for the style that sends none.
    pub fn retry_after_value(&self, wait: Duration) -> Option<String> {
        match self.config.retry_after_style {
            RetryAfterStyle::Int => Some(wait.as_secs_f64().ceil().max(1.0).to_string()),
            // Rounded up to the millisecond: a value a hair short would make a punctual client early.
            RetryAfterStyle::Fraction => Some(format!(
                "{:.3}",
                (wait.as_secs_f64() * 1000.0).ceil().max(1.0) / 1000.0
            )),
            RetryAfterStyle::Date => {
                // HTTP-dates have whole seconds: round up so a client never comes back early.
                let at = SystemTime::now() + wait + Duration::from_secs(1);
                Some(httpdate::fmt_http_date(at))
            }
            RetryAfterStyle::Comma => {
                Some(format!("{},{}", wait.as_secs_f64().ceil().max(1.0), 120))
            }
            RetryAfterStyle::None => None,
        }
    }

    /// A 429 as Intune words it; `app` is the caller's app id where known.
    pub fn throttled(&self, wait: Duration, client_request_id: Option<&str>) -> SimResponse {
        self.throttled_app(wait, client_request_id, &self.config.client_id)
    }

    pub fn throttled_app(
        &self,
        wait: Duration,
        client_request_id: Option<&str>,
        app: &str,
    ) -> SimResponse {
        let mut r = graph_error(
            429,
            "TooManyRequests",
            &format!(
                "Too many requests from Identifier:{app}+{tenant} under category:DeviceManagement. Please try again later.",
                tenant = self.config.tenant
            ),
            client_request_id,
        );
        if let Some(v) = self.retry_after_value(wait) {
            r.headers.push(("Retry-After".into(), v));
        }
        r
    }

    /// Handles one Graph request; `http_request` is the HTTP request it arrived in (for penalties).
    pub fn handle(&self, inner: &mut Inner, req: &SimRequest, http_request: u64) -> SimResponse {
        inner.stats.requests += 1;
        let mut resp = self.answer(inner, req, http_request);
        // Every error body echoes the caller's client-request-id, as Graph's do.
        if let (Some(crid), Some(inner_error)) = (
            req.headers.get("client-request-id"),
            resp.body
                .as_mut()
                .and_then(|b| b.pointer_mut("/error/innerError"))
                .and_then(Value::as_object_mut),
        ) {
            inner_error
                .entry("client-request-id")
                .or_insert_with(|| json!(crid));
        }
        inner.stats.count(resp.status);
        resp
    }

    fn answer(&self, inner: &mut Inner, req: &SimRequest, http_request: u64) -> SimResponse {
        let crid = req.headers.get("client-request-id").map(String::as_str);
        let claims = match self
            .auth
            .check(req.headers.get("authorization").map(String::as_str))
        {
            Ok(c) => c,
            Err((code, msg)) => {
                let mut r = graph_error(401, code, &msg, crid);
                // As Graph answers a missing or bad bearer token.
                r.headers.push((
                    "WWW-Authenticate".into(),
                    r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#.into(),
                ));
                return r;
            }
        };
        let details = has_any(&claims, READ_ENTRA_DEVICES);
        let route = match self.route(inner, req, details) {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        let allowed = match &route {
            Route::Action { action, .. } => {
                may_run(&claims, action, self.config.shapes.action_permissions)
                    .map_err(|a| format!("the {a} action"))
            }
            Route::List(Listing::RunStates(..)) => {
                if has_any(&claims, READ_CONFIG) {
                    Ok(())
                } else {
                    Err("reading script run states".into())
                }
            }
            Route::List(Listing::Objects { need, entity, .. }) => {
                if has_any(&claims, need) {
                    Ok(())
                } else {
                    Err(format!("reading {entity}"))
                }
            }
            Route::Object { need, .. } => {
                if has_any(&claims, need) {
                    Ok(())
                } else {
                    Err("reading this object".into())
                }
            }
            Route::Audit(Log::Directory) => {
                match READ_AUDIT.iter().find(|p| !has_any(&claims, &[**p])) {
                    None => Ok(()),
                    Some(p) => Err(format!("reading the directory audit log needs {p}")),
                }
            }
            Route::Audit(Log::Intune) | Route::ActivityTypes => {
                if has_any(&claims, READ_INTUNE_AUDIT) {
                    Ok(())
                } else {
                    Err("reading Intune's audit events".into())
                }
            }
            _ => {
                if has_any(&claims, READ_DEVICES) {
                    Ok(())
                } else {
                    Err("reading managed devices".into())
                }
            }
        };
        if let Err(what) = allowed {
            return graph_error(
                403,
                "Forbidden",
                &format!(
                    "Application is not authorized to perform this operation ({what}). Application must have one of the following scopes: {}",
                    self.required(&route)
                ),
                crid,
            );
        }
        let write = req.method != "GET";
        if matches!(route, Route::Audit(Log::Directory)) {
            // Entra's reports have their own limit, apart from Intune's (graph-facts §12).
            if let Err(wait) = self.audit_admit(inner, &claims.appid) {
                inner.stats.audit_throttled += 1;
                return self.throttled_app(wait, crid, &claims.appid);
            }
        } else {
            match inner
                .throttle
                .check(&claims.appid, write, Instant::now(), http_request)
            {
                Verdict::Admit => {}
                Verdict::Throttle {
                    retry_after,
                    penalised,
                } => {
                    if penalised {
                        inner.stats.penalised += 1;
                    }
                    if write {
                        inner.stats.throttled_writes += 1;
                    }
                    return self.throttled_app(retry_after, crid, &claims.appid);
                }
            }
        }
        if let Some(fault) = self.fault(inner, crid) {
            return fault;
        }
        // A single device that cannot be read, while listings and actions go on: what a look-up
        // meets when the service fails on reads alone.
        if matches!(route, Route::Get(_))
            && self.config.read_p500 > 0.0
            && inner.rng.random_bool(self.config.read_p500.min(1.0))
        {
            return graph_error(
                500,
                "InternalServerError",
                "An internal server error occurred.",
                crid,
            );
        }
        let action = matches!(route, Route::Action { .. });
        if action
            && self.config.ghost_429 > 0.0
            && inner.rng.random_bool(self.config.ghost_429.min(1.0))
        {
            // Carried out, yet answered as throttled (docs/graph-facts.md §8).
            let done = self.execute(inner, req, route, crid, &claims.appid);
            if done.status != 204 {
                return done;
            }
            inner.stats.ghost_429 += 1;
            return self.throttled_app(Duration::from_secs(1), crid, &claims.appid);
        }
        self.execute(inner, req, route, crid, &claims.appid)
    }

    /// The directory audit log's two windows: this app in this tenant, and this app across the
    /// fleet's tenants. A request counts in both only when both have room.
    fn audit_admit(&self, inner: &mut Inner, app: &str) -> Result<(), Duration> {
        let now = Instant::now();
        inner.stats.audit_requests += 1;
        let mine = inner
            .audit_windows
            .entry(app.to_string())
            .or_insert_with(|| crate::throttle::Window::new(self.config.audit_limit));
        if let Some(wait) = mine.wait(now) {
            return Err(wait);
        }
        let mut across = self.audit_across.lock().unwrap_or_else(|p| p.into_inner());
        let all = across
            .entry(app.to_string())
            .or_insert_with(|| crate::throttle::Window::new(self.config.audit_app_limit));
        all.admit(now)?;
        mine.admit(now)
    }

    fn required(&self, route: &Route) -> String {
        match route {
            Route::Action { action: "rotateFileVaultKey", .. } => "DeviceManagementManagedDevices.PrivilegedOperations.All".into(),
            Route::Action { .. } => "DeviceManagementManagedDevices.ReadWrite.All, DeviceManagementManagedDevices.PrivilegedOperations.All".into(),
            Route::List(Listing::RunStates(..)) => READ_CONFIG.join(", "),
            Route::List(Listing::Objects { need, .. }) | Route::Object { need, .. } => need.join(", "),
            Route::Audit(Log::Directory) => READ_AUDIT.join(" and "),
            Route::Audit(Log::Intune) | Route::ActivityTypes => READ_INTUNE_AUDIT.join(", "),
            _ => READ_DEVICES.join(", "),
        }
    }

    /// Seeded item-level faults: 429, 503 (with and without Retry-After), 500, 504.
    fn fault(&self, inner: &mut Inner, crid: Option<&str>) -> Option<SimResponse> {
        let c = &self.config;
        if c.p429 + c.p503 + c.p500 + c.p504 <= 0.0 {
            return None;
        }
        let r: f64 = inner.rng.random();
        if r < c.p429 {
            return Some(self.throttled(Duration::from_secs(1), crid));
        }
        if r < c.p429 + c.p503 {
            let mut resp = graph_error(
                503,
                "ServiceUnavailable",
                "The service is temporarily unavailable.",
                crid,
            );
            if inner.rng.random_bool(0.5) {
                resp.headers.push(("Retry-After".into(), "1".into()));
            }
            return Some(resp);
        }
        if r < c.p429 + c.p503 + c.p500 {
            return Some(graph_error(
                500,
                "InternalServerError",
                "An internal server error occurred.",
                crid,
            ));
        }
        if r < c.p429 + c.p503 + c.p500 + c.p504 {
            return Some(graph_error(
                504,
                "GatewayTimeout",
                "The gateway did not receive a response in time.",
                crid,
            ));
        }
        None
    }

    /// `details`: the token may read device objects' properties (Device.Read.All).
    fn route(&self, inner: &Inner, req: &SimRequest, details: bool) -> RouteResult {
        // Path segments arrive percent-encoded (a UPN's `@` as %40); Graph matches them decoded.
        let decoded: Vec<String> = req
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
        let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        let beta = req.version == "beta";
        let t = &inner.tenant;
        let find = |id: &str| {
            t.index
                .get(&id.to_ascii_lowercase())
                .copied()
                .ok_or_else(|| not_found(&format!("managedDevice {id}")))
        };
        let action = |device: usize, name: &str| -> RouteResult {
            let Some((canonical, _)) = ACTIONS.iter().find(|(a, _)| eq(a, name)) else {
                return Err(no_segment(name));
            };
            if !beta {
                return Err(graph_error(
                    405,
                    "BadRequest",
                    &format!("The action '{canonical}' is only available in the beta version."),
                    None,
                ));
            }
            if req.method != "POST" {
                return Err(graph_error(
                    405,
                    "BadRequest",
                    "The HTTP method is not allowed for this action; use POST.",
                    None,
                ));
            }
            Ok(Route::Action {
                device,
                action: canonical,
            })
        };
        let get_only = |r: Route| -> RouteResult {
            if req.method == "GET" {
                Ok(r)
            } else {
                Err(graph_error(
                    405,
                    "BadRequest",
                    "The HTTP method is not allowed on this resource.",
                    None,
                ))
            }
        };
        match segs.as_slice() {
            [dm, coll]
                if eq(dm, "deviceManagement")
                    && (eq(coll, "managedDevices") || eq(coll, "comanagedDevices")) =>
            {
                let co = eq(coll, "comanagedDevices");
                if co && !beta {
                    return Err(no_segment(coll));
                }
                let list = (0..t.devices.len())
                    .filter(|&i| !co || t.devices[i].comanaged())
                    .collect();
                get_only(Route::List(Listing::Devices(list)))
            }
            [dm, coll, id]
                if eq(dm, "deviceManagement")
                    && (eq(coll, "managedDevices") || eq(coll, "comanagedDevices")) =>
            {
                let i = find(id)?;
                if eq(coll, "comanagedDevices") && !t.devices[i].comanaged() {
                    return Err(not_found(&format!("comanagedDevice {id}")));
                }
                get_only(Route::Get(i))
            }
            [dm, coll, id, act]
                if eq(dm, "deviceManagement")
                    && (eq(coll, "managedDevices") || eq(coll, "comanagedDevices")) =>
            {
                let i = find(id)?;
                if eq(coll, "comanagedDevices") && !t.devices[i].comanaged() {
                    return Err(not_found(&format!("comanagedDevice {id}")));
                }
                action(i, act)
            }
            [dm, coll, sid, runs, rest @ ..]
                if eq(dm, "deviceManagement") && eq(runs, "deviceRunStates") =>
            {
                let kind = ScriptKind::from_collection(coll).ok_or_else(|| no_segment(coll))?;
                let script = t
                    .scripts
                    .iter()
                    .position(|s| s.kind == kind && eq(&s.id, sid))
                    .ok_or_else(|| not_found(&format!("script {sid}")))?;
                match rest {
                    [] => get_only(Route::List(Listing::RunStates(kind, script))),
                    [rid, md, tail @ ..] if eq(md, "managedDevice") => {
                        let rs = t.scripts[script]
                            .run_states
                            .iter()
                            .filter(|r| t.devices[r.device].runs(kind, &t.shapes))
                            .find(|r| eq(&r.id, rid))
                            .ok_or_else(|| not_found(&format!("deviceRunState {rid}")))?;
                        match tail {
                            [] => get_only(Route::GetRunStateDevice(rs.device)),
                            [act] => action(rs.device, act),
                            _ => Err(no_segment(tail[0])),
                        }
                    }
                    _ => Err(no_segment(rest[0])),
                }
            }
            [users, uid, md, rest @ ..] if eq(users, "users") && eq(md, "managedDevices") => {
                let mine: Vec<usize> = (0..t.devices.len())
                    .filter(|&i| eq(&t.devices[i].user_id, uid) || eq(&t.devices[i].upn, uid))
                    .collect();
                if mine.is_empty()
                    && !t
                        .devices
                        .iter()
                        .any(|d| eq(&d.user_id, uid) || eq(&d.upn, uid))
                {
                    return Err(graph_error(
                        404,
                        "Request_ResourceNotFound",
                        &format!(
                            "Resource '{uid}' does not exist or one of its queried reference-property objects are not present."
                        ),
                        None,
                    ));
                }
                match rest {
                    [] => get_only(Route::List(Listing::Devices(mine))),
                    [id, act] => {
                        let i = find(id)?;
                        if !mine.contains(&i) {
                            return Err(not_found(&format!("managedDevice {id}")));
                        }
                        action(i, act)
                    }
                    _ => Err(no_segment(rest[0])),
                }
            }
            [dm, apps, aid, md, rest @ ..]
                if eq(dm, "deviceManagement")
                    && eq(apps, "detectedApps")
                    && eq(md, "managedDevices") =>
            {
                let app = t
                    .apps
                    .iter()
                    .find(|a| eq(&a.id, aid))
                    .ok_or_else(|| not_found(&format!("detectedApp {aid}")))?;
                match rest {
                    [] => get_only(Route::List(Listing::Devices(app.devices.clone()))),
                    [id, act] => {
                        let i = find(id)?;
                        if !app.devices.contains(&i) {
                            return Err(not_found(&format!("managedDevice {id}")));
                        }
                        action(i, act)
                    }
                    _ => Err(no_segment(rest[0])),
                }
            }
            [groups] if eq(groups, "groups") => {
                let dir = &t.directory;
                get_only(Route::List(Listing::Objects {
                    items: (0..dir.groups.len()).map(|g| dir.group_json(g)).collect(),
                    entity: "groups",
                    filters: NAME_FILTERS,
                    need: READ_GROUPS,
                }))
            }
            [groups, gid, rest @ ..] if eq(groups, "groups") => {
                let dir = &t.directory;
                let g = dir.group(gid).ok_or_else(|| {
                    graph_error(
                        404,
                        "Request_ResourceNotFound",
                        &format!("Resource '{gid}' does not exist or one of its queried reference-property objects are not present."),
                        None,
                    )
                })?;
                match rest {
                    [] => get_only(Route::Object {
                        item: dir.group_json(g),
                        entity: "groups",
                        need: READ_GROUPS,
                    }),
                    [members, cast @ ..]
                        if (eq(members, "transitiveMembers") || eq(members, "members"))
                            && cast.len() <= 1 =>
                    {
                        let cast = cast.first().copied();
                        if let Some(c) = cast
                            && !["microsoft.graph.device", "microsoft.graph.user", "microsoft.graph.group"]
                                .iter()
                                .any(|k| eq(k, c))
                        {
                            return Err(no_segment(c));
                        }
                        // A cast is an advanced query (graph-facts §11).
                        if cast.is_some()
                            && self.config.shapes.member_casts == MemberCasts::AdvancedQuery
                            && !(eventual(req) && wants_count(req))
                        {
                            return Err(graph_error(
                                400,
                                "Request_UnsupportedQuery",
                                "Unsupported Query. An OData cast on a member listing is an advanced query: it needs the ConsistencyLevel: eventual header and $count=true.",
                                None,
                            ));
                        }
                        let items = dir
                            .members(g, eq(members, "transitiveMembers"))
                            .into_iter()
                            .filter(|&m| Directory::is_cast(m, cast))
                            .map(|m| dir.member_json(m, details))
                            .collect();
                        get_only(Route::List(Listing::Objects {
                            items,
                            entity: "directoryObjects",
                            filters: NAME_FILTERS,
                            need: READ_GROUPS,
                        }))
                    }
                    _ => Err(no_segment(rest[0])),
                }
            }
            [dm, coll] if eq(dm, "deviceManagement") && ScriptKind::from_collection(coll).is_some() => {
                let kind = ScriptKind::from_collection(coll).expect("checked");
                get_only(Route::List(Listing::Objects {
                    items: t
                        .scripts
                        .iter()
                        .filter(|s| s.kind == kind)
                        .map(|s| json!({"id": s.id, "displayName": s.name, "description": ""}))
                        .collect(),
                    entity: kind.collection(),
                    filters: NAME_FILTERS,
                    need: READ_CONFIG,
                }))
            }
            [dm, states] if eq(dm, "deviceManagement") && eq(states, "managedDeviceEncryptionStates") => {
                if !beta {
                    return Err(no_segment(states));
                }
                // Without `$orderby`, `$select` is applied as each row is built: the listing is
                // built whole for every page, and a run reads it for two properties.
                let selection =
                    Selection::parse(query(req, "$orderby").map_or(query(req, "$select"), |_| None));
                get_only(Route::List(Listing::Objects {
                    items: t
                        .devices
                        .iter()
                        .filter(|d| d.os == "macOS" || d.os == "Windows")
                        .map(|d| encryption_state(d, t.shapes.report_ids, &selection))
                        .collect(),
                    entity: "managedDeviceEncryptionStates",
                    filters: &[],
                    need: READ_CONFIG,
                }))
            }
            [ip, bl, keys] if eq(ip, "informationProtection") && eq(bl, "bitlocker") && eq(keys, "recoveryKeys") => {
                if !req.headers.contains_key("user-agent") {
                    return Err(graph_error(400, "BadRequest", "The User-Agent header is required for this request.", None));
                }
                if query(req, "$top").is_some() {
                    return Err(graph_error(400, "BadRequest", "The query option $top is not supported on recoveryKeys.", None));
                }
                let now = SystemTime::now();
                // `deviceId eq '…'` is answered from that device alone, not by building the
                // tenant's every key (the filter is applied again below all the same).
                let one = query(req, "$filter").and_then(|f| {
                    let (field, value) = f.trim().split_once(" eq ")?;
                    field.trim().eq_ignore_ascii_case("deviceId").then(|| value.trim().trim_matches('\'').to_ascii_lowercase())
                });
                let items = t
                    .devices
                    .iter()
                    .filter(|d| one.as_ref().is_none_or(|id| d.azure_ad_device_id.eq_ignore_ascii_case(id)))
                    .flat_map(|d| {
                        d.recovery_keys
                            .iter()
                            .enumerate()
                            .filter(move |(_, at)| **at <= now)
                            .map(move |(k, at)| json!({
                                "id": crate::tenant::key_id(d, k),
                                "createdDateTime": t.shapes.time(*at),
                                "volumeType": "operatingSystemVolume",
                                "deviceId": d.azure_ad_device_id,
                            }))
                    })
                    .collect();
                get_only(Route::List(Listing::Objects {
                    items,
                    entity: "bitlockerRecoveryKeys",
                    filters: &[("deviceId", Op::Eq)],
                    need: READ_BITLOCKER,
                }))
            }
            [dir, creds, did] if eq(dir, "directory") && eq(creds, "deviceLocalCredentials") => {
                let now = SystemTime::now();
                let latest = |d: &crate::Device| d.laps_backups.iter().copied().filter(|b| *b <= now).max();
                let (d, backup) = t
                    .devices
                    .iter()
                    .filter(|d| eq(&d.azure_ad_device_id, did))
                    .find_map(|d| latest(d).map(|b| (d, b)))
                    .ok_or_else(|| not_found(&format!("deviceLocalCredentialInfo {did}")))?;
                get_only(Route::Object {
                    item: json!({
                        "id": d.azure_ad_device_id,
                        "deviceName": d.name,
                        "lastBackupDateTime": t.shapes.time(backup),
                        "refreshDateTime": t.shapes.time(backup + Duration::from_secs(30 * 86_400)),
                    }),
                    entity: "deviceLocalCredentials",
                    need: READ_LAPS,
                })
            }
            [al, da] if eq(al, "auditLogs") && eq(da, "directoryAudits") => {
                get_only(Route::Audit(Log::Directory))
            }
            [dm, ae] if eq(dm, "deviceManagement") && eq(ae, "auditEvents") => {
                get_only(Route::Audit(Log::Intune))
            }
            [dm, ae, f]
                if eq(dm, "deviceManagement")
                    && eq(ae, "auditEvents")
                    && f.to_ascii_lowercase().starts_with("getauditactivitytypes") =>
            {
                get_only(Route::ActivityTypes)
            }
            [skus] if eq(skus, "subscribedSkus") => get_only(Route::List(Listing::Objects {
                items: self.config.entra_license.subscribed_skus(),
                entity: "subscribedSkus",
                filters: &[],
                need: READ_ORGANIZATION,
            })),
            [devices, oid] if eq(devices, "devices") => {
                let d = t
                    .directory
                    .devices
                    .iter()
                    .find(|d| eq(&d.object_id, oid))
                    .ok_or_else(|| {
                        graph_error(
                            404,
                            "Request_ResourceNotFound",
                            &format!("Resource '{oid}' does not exist or one of its queried reference-property objects are not present."),
                            None,
                        )
                    })?;
                get_only(Route::Object {
                    item: json!({"id": d.object_id, "deviceId": d.device_id, "displayName": d.name, "operatingSystem": d.os}),
                    entity: "devices",
                    need: READ_ENTRA_DEVICES,
                })
            }
            [dm, apps] if eq(dm, "deviceManagement") && eq(apps, "detectedApps") => {
                get_only(Route::List(Listing::Objects {
                    items: t
                        .apps
                        .iter()
                        .map(|a| json!({"id": a.id, "displayName": a.name, "version": a.version, "deviceCount": a.devices.len()}))
                        .collect(),
                    entity: "detectedApps",
                    filters: NAME_FILTERS,
                    need: READ_DEVICES,
                }))
            }
            _ => Err(graph_error(
                400,
                "BadRequest",
                &format!(
                    "Resource not found for the segment '{}'.",
                    segs.first().unwrap_or(&"")
                ),
                None,
            )),
        }
    }

    fn execute(
        &self,
        inner: &mut Inner,
        req: &SimRequest,
        route: Route,
        crid: Option<&str>,
        app: &str,
    ) -> SimResponse {
        let now = SystemTime::now();
        if let Err(refused) = check_options(req, &route) {
            return refused;
        }
        match route {
            Route::Get(i) | Route::GetRunStateDevice(i) => {
                let t = &inner.tenant;
                let v = t.devices[i].selected_json(
                    now,
                    &t.shapes,
                    Answer::Single,
                    &Selection::parse(query(req, "$select")),
                );
                let context = format!(
                    "{}/{}/$metadata#deviceManagement/managedDevices/$entity",
                    self.base_url, req.version
                );
                SimResponse::json(200, self.entity(v, context))
            }
            Route::Object {
                mut item, entity, ..
            } => {
                let context = match entity {
                    "deviceLocalCredentials" => "directory/deviceLocalCredentials/$entity",
                    "groups" => "groups/$entity",
                    _ => "directoryObjects/$entity",
                };
                let context = format!("{}/{}/$metadata#{context}", self.base_url, req.version);
                if entity == "deviceLocalCredentials" {
                    return SimResponse::json(
                        200,
                        self.entity(Selection::parse(query(req, "$select")).keep(item), context),
                    );
                }
                item["@odata.context"] = json!(context);
                SimResponse::json(200, Selection::parse(query(req, "$select")).keep(item))
            }
            Route::Action { device, action } => {
                let (_, platform) = ACTIONS
                    .iter()
                    .find(|(a, _)| *a == action)
                    .expect("route checked the action");
                let d = &inner.tenant.devices[device];
                if d.os != *platform {
                    let doc = json!({"_version": 3, "Message": format!("{action} is not supported on {} devices; it applies to {platform} only - Operation ID (for customer support): {}", d.os, uuid::Uuid::new_v4()), "CustomApiErrorPhrase": "", "RetryAfter": null, "ErrorSourceService": "", "HttpHeaders": "{}"});
                    return graph_error(400, "BadRequest", &doc.to_string(), crid);
                }
                // A device that cannot carry the action out accepts it and fails it later, as
                // Intune reports (docs/eligibility.md).
                let fails = !d.can_carry_out(action)
                    || (self.config.fail_share > 0.0
                        && inner.rng.random_bool(self.config.fail_share.min(1.0)));
                let id = d.id.clone();
                let names = &self.config.action_result_names;
                // A request whose answer is lost late is carried out after a while (`--late`).
                let start = now + inner.late_by.unwrap_or_default();
                // BitLocker's failures carry an HRESULT: the drive not protected, or the
                // recovery password protector missing (both BitLocker's own codes).
                let code = [-2_144_272_384, -2_144_272_339][device % 2];
                let result = |action: &str, fails| {
                    let (action_name, odata_type) = names.of(action);
                    ActionResult {
                        action_name,
                        odata_type,
                        started: start,
                        completes: start + self.config.complete_after,
                        fails,
                        error_code: (fails && action == "rotateBitLockerKeys").then_some(code),
                    }
                };
                // An offline Entra-joined PC fails a LAPS rotation at once: it is never queued.
                let offline = action == "rotateLocalAdminPassword"
                    && now
                        .duration_since(d.last_sync)
                        .is_ok_and(|age| age > Duration::from_secs(30 * 86_400));
                let escrows = !fails && !offline && !d.escrow_broken;
                let mut r = result(action, fails || offline);
                if offline {
                    r.completes = r.started;
                }
                let completes = r.completes;
                let dev = &mut inner.tenant.devices[device];
                dev.action_results.push(r);
                // The second source moves when the device really rotates.
                match action {
                    "rotateBitLockerKeys" if escrows => dev.recovery_keys.push(completes),
                    "rotateLocalAdminPassword" if escrows => dev.laps_backups.push(completes),
                    _ => {}
                }
                // Intune audits the action under the caller's app, as it does every action.
                let activity = crate::audit::action_activity(action);
                let actor = crate::audit::Actor::App {
                    app_id: app.to_string(),
                };
                inner.audit.record(
                    &self.config.audit,
                    &mut inner.audit_rng,
                    Log::Intune,
                    &activity,
                    start,
                    actor,
                    device,
                    None,
                );
                if self.config.decoy_results {
                    // Decoys keep their own names (typed in the typed style), never ours.
                    let next = (device + 1) % inner.tenant.devices.len();
                    for other in ["locateDevice", "getFileVaultKey"] {
                        let decoy = match names {
                            crate::ResultNames::Typed => result(other, false),
                            _ => ActionResult {
                                action_name: other.to_string(),
                                odata_type: None,
                                ..result(other, false)
                            },
                        };
                        inner.tenant.devices[next].action_results.push(decoy);
                    }
                }
                *inner
                    .stats
                    .actions
                    .entry(action.to_string())
                    .or_default()
                    .entry(id)
                    .or_default() += 1;
                SimResponse::no_content()
            }
            Route::List(listing) => self.list(inner, req, listing, now),
            Route::Audit(log) => self.audit(inner, req, log, now),
            Route::ActivityTypes => SimResponse::json(
                200,
                json!({
                    "@odata.context": format!("{}/{}/$metadata#Collection(Edm.String)", self.base_url, req.version),
                    "value": crate::audit::activity_types(&self.config.audit),
                }),
            ),
        }
    }

    /// An audit log's page: the events visible now and within retention, newest first, filtered
    /// only as documented (anything else is refused).
    fn audit(&self, inner: &mut Inner, req: &SimRequest, log: Log, now: SystemTime) -> SimResponse {
        let (supported, retention, entity) = match log {
            Log::Directory => (
                DIRECTORY_AUDIT_FILTERS,
                self.config.entra_license.retention(),
                "auditLogs/directoryAudits",
            ),
            Log::Intune => (
                INTUNE_AUDIT_FILTERS,
                Duration::from_secs(365 * 86_400),
                "deviceManagement/auditEvents",
            ),
        };
        let applied =
            match filter::read(query(req, "$filter"), supported, filter::FilterMode::Refuse) {
                Ok(f) => f,
                Err(message) => return graph_error(400, "BadRequest", &message, None),
            };
        let (top, skip) = match paging(req, 100, 999) {
            Ok(p) => p,
            Err(refused) => return refused,
        };
        let t = &inner.tenant;
        let events: Vec<&crate::audit::AuditEvent> = inner
            .audit
            .visible(log, now, retention)
            .into_iter()
            .filter(|e| applied.matches(|p| crate::audit::field(e, p)))
            .collect();
        let selection = Selection::parse(query(req, "$select"));
        let page = events
            .iter()
            .skip(skip)
            .take(top)
            .map(|e| match log {
                Log::Directory => crate::audit::directory_json(e, t, self.config.audit.laps_target),
                Log::Intune => crate::audit::intune_json(e, t),
            })
            .map(|v| selection.keep(v))
            .collect();
        self.page(req, page, events.len(), skip + top, entity)
    }

    fn list(
        &self,
        inner: &mut Inner,
        req: &SimRequest,
        listing: Listing,
        now: SystemTime,
    ) -> SimResponse {
        if let Some(limit) = self.config.list_fail_after_pages
            && inner.pages_served >= limit
        {
            return graph_error(
                500,
                "InternalServerError",
                "The listing failed (simulated).",
                None,
            );
        }
        inner.pages_served += 1;
        let (top, skip) = match paging(req, 1000, 1000) {
            Ok(p) => p,
            Err(refused) => return refused,
        };
        match listing {
            Listing::Devices(list) => {
                let supported = match self.config.shapes.device_filters {
                    DeviceFilters::Documented => DOCUMENTED_DEVICE_FILTERS,
                    DeviceFilters::Practice => DEVICE_FILTERS,
                };
                let applied = match self.filter(req, supported) {
                    Ok(f) => f,
                    Err(resp) => return resp,
                };
                inner.stats.filter_clauses_ignored += applied.ignored as u64;
                let t = &inner.tenant;
                let mut matching: Vec<_> = list
                    .iter()
                    .map(|&i| &t.devices[i])
                    .filter(|d| applied.matches(|p| d.field(p)))
                    .collect();
                if let Some(order) = query(req, "$orderby") {
                    let keys = match odata::order_by(order, "managedDevices", false) {
                        Ok(k) => k,
                        Err(refused) => return refused,
                    };
                    matching.sort_by(|a, b| {
                        keys.iter()
                            .map(|&(k, desc)| odata::compare(a.field(k), b.field(k), desc))
                            .find(|o| o.is_ne())
                            .unwrap_or(std::cmp::Ordering::Equal)
                    });
                }
                // `$skip` counts from the start of the listing; a skip token already includes it.
                let skip = match (query(req, "$skiptoken"), query(req, "$skip")) {
                    (None, Some(n)) => match n.parse::<usize>() {
                        Ok(n) => n,
                        Err(_) => {
                            return graph_error(
                                400,
                                "BadRequest",
                                "Invalid $skip value: it must be a whole number.",
                                None,
                            );
                        }
                    },
                    _ => skip,
                };
                let selection = Selection::parse(query(req, "$select"));
                let page = matching
                    .iter()
                    .skip(skip)
                    .take(top)
                    .map(|d| d.selected_json(now, &t.shapes, Answer::List, &selection))
                    .collect();
                // As Graph writes it: the navigation path, `deviceManagement/managedDevices`.
                let entity = req.path.trim_start_matches('/').to_string();
                self.page(req, page, matching.len(), skip + top, &entity)
            }
            Listing::RunStates(kind, s) => {
                let t = &inner.tenant;
                let expand =
                    query(req, "$expand").is_some_and(|e| e.eq_ignore_ascii_case("managedDevice"));
                let script = &t.scripts[s];
                let states: Vec<_> = script
                    .run_states
                    .iter()
                    .filter(|rs| t.devices[rs.device].runs(kind, &t.shapes))
                    .collect();
                let v = states
                    .iter()
                    .skip(skip)
                    .take(top)
                    .map(|rs| {
                        let mut v = json!({"id": rs.id, kind.state_field(): rs.state, "lastStateUpdateDateTime": t.shapes.time(now)});
                        if expand {
                            v["managedDevice"] =
                                t.devices[rs.device].to_json(now, &t.shapes, Answer::List);
                        }
                        v
                    })
                    .collect();
                let entity = format!(
                    "deviceManagement/{}('{}')/deviceRunStates",
                    kind.collection(),
                    script.id
                );
                self.page(req, v, states.len(), skip + top, &entity)
            }
            Listing::Objects {
                items,
                entity,
                filters,
                ..
            } => {
                let applied = match self.filter(req, filters) {
                    Ok(f) => f,
                    Err(resp) => return resp,
                };
                inner.stats.filter_clauses_ignored += applied.ignored as u64;
                // `$search="displayName:word"` (directory, advanced query): the word in the name.
                let search = query(req, "$search").map(|q| {
                    let q = q.trim().trim_matches('"');
                    q.split_once(':').map_or(q, |(_, w)| w).to_ascii_lowercase()
                });
                let mut matching: Vec<Value> = items
                    .into_iter()
                    .filter(|v| {
                        applied.matches(|p| v.get(p).and_then(Value::as_str).map(FieldValue::Text))
                    })
                    .filter(|v| {
                        search.as_ref().is_none_or(|w| {
                            v["displayName"]
                                .as_str()
                                .is_some_and(|n| n.to_ascii_lowercase().contains(w.as_str()))
                        })
                    })
                    .collect();
                if let Some(order) = query(req, "$orderby") {
                    let eventual = req
                        .headers
                        .get("consistencylevel")
                        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
                    let keys = match odata::order_by(order, entity, eventual) {
                        Ok(k) => k,
                        Err(refused) => return refused,
                    };
                    matching.sort_by(|a, b| {
                        keys.iter()
                            .map(|&(k, desc)| odata::compare(a[k].as_str(), b[k].as_str(), desc))
                            .find(|o| o.is_ne())
                            .unwrap_or(std::cmp::Ordering::Equal)
                    });
                }
                let total = matching.len();
                let directory = matches!(entity, "groups" | "directoryObjects");
                let eventual = req
                    .headers
                    .get("consistencylevel")
                    .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
                if directory && wants_count(req) && !eventual {
                    // Directory objects count only with ConsistencyLevel: eventual.
                    return graph_error(
                        400,
                        "Request_BadRequest",
                        "$count is not currently supported without the ConsistencyLevel: eventual header.",
                        None,
                    );
                }
                let selection = Selection::parse(query(req, "$select"));
                let page = matching
                    .into_iter()
                    .skip(skip)
                    .take(top)
                    .map(|v| selection.keep(v))
                    .collect();
                self.page(req, page, total, skip + top, entity)
            }
        }
    }

    /// The part of the request's `$filter` the collection applies, or the 400 that refuses it.
    fn filter(
        &self,
        req: &SimRequest,
        supported: Supported,
    ) -> Result<filter::Applied, SimResponse> {
        filter::read(query(req, "$filter"), supported, self.config.filter_mode)
            .map_err(|message| graph_error(400, "BadRequest", &message, None))
    }

    /// A single Intune entity in this tenant's form: wrapped in `value`, or at the top level.
    fn entity(&self, mut v: Value, context: String) -> Value {
        match self.config.shapes.entities {
            EntityForm::Wrapped => {
                let mut wrapped = json!({"@odata.context": context});
                wrapped["value"] = v;
                wrapped
            }
            EntityForm::TopLevel => {
                v["@odata.context"] = json!(context);
                v
            }
        }
    }

    /// One page of a listing of `total` items; the next starts at `next`.
    fn page(
        &self,
        req: &SimRequest,
        value: Vec<Value>,
        total: usize,
        next: usize,
        entity: &str,
    ) -> SimResponse {
        let more = total > next;
        // Moved in, not through `json!`, which would copy every item by serializing it.
        let mut body = json!({
            "@odata.context": format!("{}/{}/$metadata#{entity}", self.base_url, req.version),
        });
        body["value"] = Value::Array(value);
        if wants_count(req) {
            body["@odata.count"] = json!(total);
        }
        if more {
            let mut pairs: Vec<(String, String)> = req
                .query
                .iter()
                .filter(|(k, _)| k != "$skiptoken")
                .cloned()
                .collect();
            pairs.push(("$skiptoken".into(), encode_skip(next)));
            let qs: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
                .collect();
            body["@odata.nextLink"] = json!(format!(
                "{}/{}{}?{}",
                self.base_url,
                req.version,
                req.path,
                qs.join("&")
            ));
        }
        SimResponse::json(200, body)
    }
}

/// A page's size (`$top`, `default` when absent, at most `max`) and where it starts (the
/// `$skiptoken`), or the 400 that refuses them.
fn paging(req: &SimRequest, default: usize, max: usize) -> Result<(usize, usize), SimResponse> {
    let top = match query(req, "$top").map(str::parse::<usize>) {
        None => default,
        Some(Ok(n)) if (1..=max).contains(&n) => n,
        Some(_) => {
            return Err(graph_error(
                400,
                "BadRequest",
                &format!("Invalid $top value: it must be a whole number from 1 to {max}."),
                None,
            ));
        }
    };
    let skip = match query(req, "$skiptoken").map(decode_skip) {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => {
            return Err(graph_error(
                400,
                "BadRequest",
                "The $skiptoken is not valid.",
                None,
            ));
        }
    };
    Ok((top, skip))
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'$' | b',' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn encode_skip(n: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("sim-skip:{n}"))
}

fn decode_skip(tok: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("sim-skip:")?
        .parse()
        .ok()
}

/// Graph's 400 for a query option the route does not take (nothing for actions).
fn check_options(req: &SimRequest, route: &Route) -> Result<(), SimResponse> {
    let keys = |items: &mut dyn Iterator<Item = &Value>| -> Vec<String> {
        let mut keys: Vec<String> = items
            .filter_map(Value::as_object)
            .flat_map(|m| m.keys().cloned())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    };
    let (shape, emitted) = match route {
        Route::Action { .. } | Route::Audit(_) | Route::ActivityTypes => return Ok(()),
        Route::Get(_) | Route::GetRunStateDevice(_) => {
            (Shape::Single("managedDevices"), Vec::new())
        }
        Route::Object { item, entity, .. } => {
            (Shape::Single(entity), keys(&mut std::iter::once(item)))
        }
        Route::List(Listing::Devices(_)) => (Shape::List("managedDevices"), Vec::new()),
        Route::List(Listing::RunStates(..)) => (Shape::List("deviceRunStates"), Vec::new()),
        Route::List(Listing::Objects { items, entity, .. }) => {
            // Members come as users and devices: every kind's properties are the listing's.
            (Shape::List(entity), keys(&mut items.iter()))
        }
    };
    let emitted: Vec<&str> = emitted.iter().map(String::as_str).collect();
    odata::check(req, shape, &emitted)
}

/// `ConsistencyLevel: eventual`, the header of an advanced query.
fn eventual(req: &SimRequest) -> bool {
    req.headers
        .get("consistencylevel")
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
}

/// `$count=true`.
fn wants_count(req: &SimRequest) -> bool {
    query(req, "$count").is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn query<'a>(req: &'a SimRequest, name: &str) -> Option<&'a str> {
    req.query
        .iter()
        .find(|(k, _)| {
            k.eq_ignore_ascii_case(name) || k.eq_ignore_ascii_case(name.trim_start_matches('$'))
        })
        .map(|(_, v)| v.as_str())
}

/// A device's row of the encryption report, with only `fields` (and `id`) when they are given.
fn encryption_state(d: &crate::tenant::Device, ids: ReportIds, selection: &Selection) -> Value {
    let mut m = serde_json::Map::new();
    let id = match ids {
        ReportIds::ManagedDevice => d.id.clone(),
        // A key of its own: the device's id with its halves swapped.
        ReportIds::Own => format!("{}-{}", &d.id[24..], &d.id[..23]),
    };
    m.insert("id".into(), json!(id));
    let mac = d.os == "macOS";
    let rest: [(&str, &dyn Fn() -> Value); 6] = [
        ("deviceName", &|| json!(d.name)),
        ("deviceType", &|| {
            json!(if mac { "macMDM" } else { "windowsRT" })
        }),
        ("osVersion", &|| json!(d.os_version)),
        ("encryptionState", &|| {
            json!(if d.encrypted {
                "encrypted"
            } else {
                "notEncrypted"
            })
        }),
        ("fileVaultStates", &|| {
            json!(if mac { d.filevault_state } else { "success" })
        }),
        ("advancedBitLockerStates", &|| json!("success")),
    ];
    for (k, v) in rest {
        if selection.wants(k) {
            m.insert(k.into(), v());
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_built_under_select_is_what_select_keeps_of_the_whole_device() {
        let now = SystemTime::now();
        let tenant = crate::Tenant::generate(60, 1.0, 7, now);
        let shapes = crate::Shapes::default();
        assert!(tenant.devices.iter().any(|d| !d.action_results.is_empty()));
        for d in &tenant.devices {
            for answer in [Answer::List, Answer::Single] {
                for fields in [
                    "deviceActionResults",
                    "id,deviceActionResults",
                    " DeviceActionResults ",
                    "id",
                    "operatingSystem,isEncrypted,managedDeviceOwnerType,joinType",
                    "deviceName, osVersion, azureADDeviceId",
                ] {
                    assert_eq!(
                        d.selected_json(now, &shapes, answer, &Selection::parse(Some(fields))),
                        Selection::parse(Some(fields)).keep(d.to_json(now, &shapes, answer)),
                        "$select={fields}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_whole_device_has_every_property_the_simulator_models() {
        let now = SystemTime::now();
        let tenant = crate::Tenant::generate(5, 1.0, 7, now);
        let v = tenant.devices[0].to_json(now, &crate::Shapes::default(), Answer::Single);
        let mut names: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "azureADDeviceId",
                "complianceState",
                "deviceActionResults",
                "deviceEnrollmentType",
                "deviceName",
                "enrolledDateTime",
                "id",
                "isEncrypted",
                "isSupervised",
                "joinType",
                "lastSyncDateTime",
                "managedDeviceOwnerType",
                "managementAgent",
                "manufacturer",
                "model",
                "operatingSystem",
                "osVersion",
                "processorArchitecture",
                "serialNumber",
                "userId",
                "userPrincipalName",
            ]
        );
    }

    #[test]
    fn an_encryption_report_row_built_under_select_is_what_select_keeps_of_it() {
        let tenant = crate::Tenant::generate(20, 1.0, 7, SystemTime::now());
        for d in &tenant.devices {
            for ids in [ReportIds::ManagedDevice, ReportIds::Own] {
                for fields in ["id,fileVaultStates", "deviceName, encryptionState", "id"] {
                    assert_eq!(
                        encryption_state(d, ids, &Selection::parse(Some(fields))),
                        Selection::parse(Some(fields)).keep(encryption_state(
                            d,
                            ids,
                            &Selection::default()
                        )),
                        "$select={fields}"
                    );
                }
            }
        }
    }
}
