//! What the engine believes of the tenant's answers, tested on the tenant before a run
//! (graph-facts §11). Every check reads, none writes; a handful of GETs and one `$batch` of
//! reads under the plan's read gate. Each finding says what the engine relies on, what the tenant
//! answered and what the engine will therefore do.

use crate::eligibility::{mac_version, windows_build};
use crate::reads::{Read, read_all};
use crate::{Action, parse_id};
use futures::StreamExt;
use graph_client::{Consistency, GraphClient, GraphClientError, TokenClaims};
use serde::Serialize;
use serde_json::Value;

/// One belief of the engine about what the tenant answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Belief {
    /// Which rotate actions the token may run, by the permission each action's page lists.
    ActionPermissions,
    /// Device listings carry `deviceActionResults` as a single-device GET does.
    ListedActionResults,
    /// The encryption report's ids are managed device ids.
    EncryptionReportJoin,
    /// `osVersion` is read on every Mac (with or without its build) and Windows PC.
    OsVersionForms,
    /// Group member casts are served as advanced queries.
    GroupMemberCasts,
    /// LAPS backups and BitLocker recovery keys are read in whichever shape they come.
    SecondSourceShapes,
    /// Which `$filter` properties device listings apply.
    DeviceFilters,
    /// Which script collections hold Macs.
    MacScripts,
    /// The audit logs a run over views reads are readable, and how long they keep reads.
    AuditLogs,
    /// Which of Intune's audit activities record a FileVault or Recovery Lock view.
    ViewActivities,
}

/// What a finding means for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The belief holds as the simple reading has it.
    Holds,
    /// The tenant answers otherwise, and the engine reads that form.
    Adapted,
    /// Nothing on the tenant to test it with (no Mac, no group, …); said, not assumed.
    Untested,
    /// A planned run would silently miss something here.
    Misses,
}

/// One row of the doctor's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub belief: Belief,
    pub answered: String,
    pub engine: String,
    pub verdict: Verdict,
}

fn finding(belief: Belief, verdict: Verdict, answered: String, engine: &str) -> Finding {
    Finding {
        belief,
        answered,
        engine: engine.to_string(),
        verdict,
    }
}

/// Devices read to test a belief.
const SAMPLE: usize = 20;

/// Tests every belief; `claims` are the token's, where it is a JWT.
pub async fn examine(client: &GraphClient, claims: Option<&TokenClaims>) -> Vec<Finding> {
    let devices = listed(client, "/deviceManagement/managedDevices?$top=999").await;
    vec![
        permissions(claims),
        action_results(client, &devices).await,
        encryption_report(client, &devices).await,
        os_versions(&devices),
        member_casts(client).await,
        second_sources(client, &devices).await,
        device_filters(client).await,
        mac_scripts(client).await,
        audit_logs(client).await,
        view_activities(client).await,
    ]
}

/// The first page of a listing, or the error it answered.
async fn listed(client: &GraphClient, url: &str) -> Result<Vec<Value>, GraphClientError> {
    let mut pages = std::pin::pin!(client.pages(url.to_string()));
    Ok(pages.next().await.transpose()?.unwrap_or_default())
}

fn unread(belief: Belief, e: &GraphClientError) -> Finding {
    finding(
        belief,
        Verdict::Untested,
        format!("could not be read: {e}"),
        "cannot test this belief; the plan reports what it can and cannot check",
    )
}

fn permissions(claims: Option<&TokenClaims>) -> Finding {
    let belief = Belief::ActionPermissions;
    let Some(claims) = claims else {
        return finding(
            belief,
            Verdict::Untested,
            "the access token is not a JWT".into(),
            "the pre-flight cannot check permissions; a refused action fails with 403",
        );
    };
    let by: Vec<String> = Action::ALL
        .iter()
        .map(|&a| match crate::Allowed::of(claims, a) {
            Some(crate::Allowed::Listed(p)) => format!("{}: {p}", a.cli_name()),
            Some(crate::Allowed::Doubtful(ps)) => {
                format!(
                    "{}: only {} (doubtful)",
                    a.cli_name(),
                    crate::Permission::joined(ps, "+")
                )
            }
            None => format!(
                "{}: missing {}",
                a.cli_name(),
                crate::Permission::joined(a.permissions(), "or")
            ),
        })
        .collect();
    finding(
        belief,
        Verdict::Holds,
        by.join("; "),
        "runs only the actions the token's permissions allow; the others stop with exit 3 before sending",
    )
}

async fn action_results(
    client: &GraphClient,
    devices: &Result<Vec<Value>, GraphClientError>,
) -> Finding {
    let belief = Belief::ListedActionResults;
    let devices = match devices {
        Ok(d) => d,
        Err(e) => return unread(belief, e),
    };
    let sample: Vec<(&Value, uuid::Uuid)> = devices
        .iter()
        .filter_map(|d| Some((d, d.get("id").and_then(Value::as_str).and_then(parse_id)?)))
        .take(SAMPLE)
        .collect();
    if sample.is_empty() {
        return finding(
            belief,
            Verdict::Untested,
            "no managed device to read".into(),
            "reads each device by GET until a listing is shown to carry its results",
        );
    }
    let count = |d: &Value| {
        d.get("deviceActionResults")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    };
    let requests = sample
        .iter()
        .enumerate()
        .map(|(n, (_, id))| (n, crate::device_facts::results_request(id)))
        .collect();
    let gate = crate::reads::plan_reads_gate(None);
    let (mut in_list, mut by_get, mut more) = (0, 0, 0);
    for (n, read) in read_all(client, &gate, requests).await {
        if let Read::Body(body) = read {
            let (listed, got) = (count(sample[n].0), count(&body));
            in_list += listed;
            by_get += got;
            more += usize::from(got > listed);
        }
    }
    let answered = format!(
        "{} device(s): {in_list} result(s) in the listing, {by_get} by single-device GET",
        sample.len()
    );
    if more > 0 {
        finding(
            belief,
            Verdict::Adapted,
            format!("{answered}; the listing leaves results out on {more}"),
            "reads every planned device's results by GET in paced $batches (at most 2,000 per 20 s)",
        )
    } else if by_get == 0 {
        finding(
            belief,
            Verdict::Untested,
            format!("{answered}; none to compare"),
            "reads every planned device's results by GET while the listing shows none",
        )
    } else {
        finding(
            belief,
            Verdict::Holds,
            answered,
            "trusts the listing after a sampled GET agrees with it",
        )
    }
}

async fn encryption_report(
    client: &GraphClient,
    devices: &Result<Vec<Value>, GraphClientError>,
) -> Finding {
    let belief = Belief::EncryptionReportJoin;
    let rows = match listed(
        client,
        "/deviceManagement/managedDeviceEncryptionStates?$select=id,fileVaultStates",
    )
    .await
    {
        Ok(rows) => rows,
        Err(e) => return unread(belief, &e),
    };
    let ids: std::collections::HashSet<String> = devices
        .as_ref()
        .map(|d| {
            d.iter()
                .filter_map(|d| d.get("id").and_then(Value::as_str))
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default();
    let matched = rows
        .iter()
        .filter_map(|r| r.get("id").and_then(Value::as_str))
        .filter(|id| ids.contains(&id.to_ascii_lowercase()))
        .count();
    let answered = format!(
        "{matched} of {} report row(s) carry a listed device's id",
        rows.len()
    );
    match (rows.is_empty(), matched) {
        (true, _) => finding(
            belief,
            Verdict::Untested,
            "the report is empty".into(),
            "FileVault escrow states are not checked",
        ),
        (false, 0) => finding(
            belief,
            Verdict::Misses,
            answered,
            "cannot join the report: FileVault escrow checks are off (the plan says so)",
        ),
        _ => finding(
            belief,
            Verdict::Holds,
            answered,
            "skips Macs whose key is not escrowed, by the report",
        ),
    }
}

fn os_versions(devices: &Result<Vec<Value>, GraphClientError>) -> Finding {
    let belief = Belief::OsVersionForms;
    let devices = match devices {
        Ok(d) => d,
        Err(e) => return unread(belief, e),
    };
    let (mut with_build, mut plain, mut unreadable, mut windows, mut windows_unreadable) =
        (0, 0, 0, 0, 0);
    for d in devices {
        let v = d.get("osVersion").and_then(Value::as_str).unwrap_or("");
        match d.get("operatingSystem").and_then(Value::as_str) {
            Some(os) if os.eq_ignore_ascii_case("macOS") => match mac_version(v) {
                None => unreadable += 1,
                Some(_) if v.contains('(') => with_build += 1,
                Some(_) => plain += 1,
            },
            Some(os) if os.eq_ignore_ascii_case("Windows") => {
                windows += 1;
                windows_unreadable += usize::from(windows_build(v).is_none());
            }
            _ => {}
        }
    }
    let answered = format!(
        "Macs: {with_build} with their build (`14.5 (23F79)`), {plain} plain, {unreadable} unreadable; Windows: {windows}, {windows_unreadable} unreadable"
    );
    if with_build + plain + windows == 0 && unreadable == 0 {
        return finding(
            belief,
            Verdict::Untested,
            "no Mac or Windows device listed".into(),
            "reads both forms",
        );
    }
    if unreadable + windows_unreadable > 0 {
        return finding(
            belief,
            Verdict::Adapted,
            answered,
            "skips the unreadable ones as unknown-os-version under strict eligibility (Recovery Lock, BitLocker) and names them",
        );
    }
    finding(
        belief,
        if with_build > 0 {
            Verdict::Adapted
        } else {
            Verdict::Holds
        },
        answered,
        "reads the version before the build; no Mac is skipped for its version's form",
    )
}

async fn member_casts(client: &GraphClient) -> Finding {
    let belief = Belief::GroupMemberCasts;
    let group = match listed(client, "/groups?$select=id,displayName&$top=1").await {
        Ok(g) => g.into_iter().next(),
        Err(e) => return unread(belief, &e),
    };
    let Some(gid) = group
        .as_ref()
        .and_then(|g| g.get("id"))
        .and_then(Value::as_str)
        .and_then(parse_id)
    else {
        return finding(
            belief,
            Verdict::Untested,
            "no group to read".into(),
            "sends casts as advanced queries",
        );
    };
    let path = format!("/groups/{gid}/transitiveMembers/microsoft.graph.device?$select=id&$top=1");
    let plain = client.get_json(&path).await;
    let advanced = client
        .get_json_as(&format!("{path}&$count=true"), Consistency::Eventual)
        .await;
    let status = |r: &Result<Value, GraphClientError>| match r {
        Ok(_) => "200".to_string(),
        Err(GraphClientError::Http { status, error, .. }) => match error {
            Some(e) => format!("{status} {}", e.code),
            None => status.to_string(),
        },
        Err(e) => e.to_string(),
    };
    let answered = format!(
        "a device cast without the advanced-query headers: {}; with ConsistencyLevel: eventual and $count=true: {}",
        status(&plain),
        status(&advanced)
    );
    match (plain.is_ok(), advanced.is_ok()) {
        (_, false) => finding(
            belief,
            Verdict::Misses,
            answered,
            "a group source stops at the member listing, before anything is sent",
        ),
        (true, true) => finding(
            belief,
            Verdict::Holds,
            answered,
            "sends casts as advanced queries",
        ),
        (false, true) => finding(
            belief,
            Verdict::Adapted,
            answered,
            "sends casts as advanced queries, as this tenant requires",
        ),
    }
}

async fn second_sources(
    client: &GraphClient,
    devices: &Result<Vec<Value>, GraphClientError>,
) -> Finding {
    let belief = Belief::SecondSourceShapes;
    let entra: Vec<String> = devices
        .as_ref()
        .map(|d| {
            d.iter()
                .filter(|d| d.get("operatingSystem").and_then(Value::as_str) == Some("Windows"))
                .filter_map(|d| d.get("azureADDeviceId").and_then(Value::as_str))
                .filter_map(parse_id)
                .map(|id| id.to_string())
                .take(SAMPLE)
                .collect()
        })
        .unwrap_or_default();
    if entra.is_empty() {
        return finding(
            belief,
            Verdict::Untested,
            "no Windows device with an Entra id listed".into(),
            "reads LAPS backups wrapped or at the top level, and recovery keys with a User-Agent",
        );
    }
    let requests = entra
        .iter()
        .enumerate()
        .flat_map(|(n, e)| {
            [
                (
                    2 * n,
                    crate::device_facts::second_source_request(Action::Laps, e),
                ),
                (
                    2 * n + 1,
                    crate::device_facts::second_source_request(Action::BitLocker, e),
                ),
            ]
        })
        .collect();
    // Each answer as the engine reads it (a wrapped entity unwrapped).
    let gate = crate::reads::plan_reads_gate(None);
    let (mut laps, mut keys, mut refused) = (0, 0, Vec::new());
    for (n, read) in read_all(client, &gate, requests).await {
        match read {
            Read::Body(body) if n % 2 == 0 => {
                laps += usize::from(body.get("lastBackupDateTime").is_some())
            }
            Read::Body(body) => keys += usize::from(body.get("value").is_some()),
            Read::Refused { status, message } => refused.push(format!("HTTP {status}: {message}")),
            Read::NotFound => {}
        }
    }
    refused.dedup();
    let answered = format!(
        "LAPS backups read for {laps} of {} device(s), recovery key listings for {keys}{}",
        entra.len(),
        if refused.is_empty() {
            String::new()
        } else {
            format!("; refused: {}", refused.join("; "))
        }
    );
    if refused.is_empty() {
        finding(
            belief,
            Verdict::Holds,
            answered,
            "reads a LAPS backup wrapped in `value` or at the top level, and sends a User-Agent on every item",
        )
    } else {
        finding(
            belief,
            Verdict::Misses,
            answered,
            "key age and verify fall back to deviceActionResults alone (and say so)",
        )
    }
}

async fn device_filters(client: &GraphClient) -> Finding {
    let belief = Belief::DeviceFilters;
    let url = "/deviceManagement/managedDevices?$filter=operatingSystem%20eq%20%27macOS%27&$select=id,operatingSystem&$top=50";
    match listed(client, url).await {
        Err(GraphClientError::Http { status: 400, .. }) => finding(
            belief,
            Verdict::Adapted,
            "operatingSystem eq: refused (400)".into(),
            "lists every device and applies the whole filter on the client",
        ),
        Err(e) => unread(belief, &e),
        Ok(items) => {
            let other = items
                .iter()
                .filter(|d| d.get("operatingSystem").and_then(Value::as_str) != Some("macOS"))
                .count();
            if other > 0 {
                finding(
                    belief,
                    Verdict::Adapted,
                    format!(
                        "operatingSystem eq: ignored ({other} of {} not Macs)",
                        items.len()
                    ),
                    "applies the whole filter on the client: a clause the service ignores never widens a run",
                )
            } else {
                finding(
                    belief,
                    Verdict::Holds,
                    format!("operatingSystem eq: applied ({} listed)", items.len()),
                    "sends the filter and checks it on the client all the same",
                )
            }
        }
    }
}

async fn mac_scripts(client: &GraphClient) -> Finding {
    let belief = Belief::MacScripts;
    let mut seen = Vec::new();
    for kind in crate::ScriptKind::ALL {
        let coll = kind.collection();
        let scripts = match listed(
            client,
            &format!("/deviceManagement/{coll}?$select=id,displayName&$top=5"),
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                seen.push(format!("{coll}: not read ({e})"));
                continue;
            }
        };
        let mut macs = 0;
        for s in &scripts {
            let Some(id) = s.get("id").and_then(Value::as_str) else {
                continue;
            };
            let url = format!(
                "/deviceManagement/{coll}/{}/deviceRunStates?$expand=managedDevice&$top=100",
                crate::url::enc(id)
            );
            if let Ok(states) = listed(client, &url).await {
                macs += states
                    .iter()
                    .filter(|r| r["managedDevice"]["operatingSystem"] == "macOS")
                    .count();
            }
        }
        seen.push(format!(
            "{coll}: {} script(s), {macs} Mac run(s)",
            scripts.len()
        ));
    }
    finding(
        belief,
        Verdict::Holds,
        seen.join("; "),
        "lists Macs from shell and custom attribute scripts; a macOS run from a PowerShell script warns that it holds no Mac",
    )
}

async fn audit_logs(client: &GraphClient) -> Finding {
    let belief = Belief::AuditLogs;
    let gate = crate::views::AuditGate::new("");
    let mut seen = Vec::new();
    let mut readable = 0;
    let probes = [
        (
            crate::views::AuditLogKind::Directory,
            "/auditLogs/directoryAudits?$top=1&$filter=activityDisplayName%20eq%20%27Read%20BitLocker%20key%27",
        ),
        (
            crate::views::AuditLogKind::Intune,
            "/deviceManagement/auditEvents?$top=1",
        ),
    ];
    for (log, url) in probes {
        gate.acquire().await;
        match client.get_json_retrying(url).await {
            Ok(_) => {
                readable += 1;
                let kept = match log {
                    crate::views::AuditLogKind::Directory => {
                        crate::views::directory_retention(client).await
                    }
                    crate::views::AuditLogKind::Intune => crate::views::Retention::INTUNE,
                };
                seen.push(format!(
                    "{}: readable, keeps {} days{}",
                    log.name(),
                    kept.days,
                    if kept.known {
                        ""
                    } else {
                        " (assumed: the licence could not be read)"
                    }
                ));
            }
            Err(e) => seen.push(format!(
                "{}: not readable ({e}); it needs {}",
                log.name(),
                crate::Permission::joined(log.permissions(), "and")
            )),
        }
    }
    let verdict = if readable == probes.len() {
        Verdict::Holds
    } else {
        Verdict::Untested
    };
    finding(
        belief,
        verdict,
        seen.join("; "),
        "a view-driven run reads views from these logs, refuses a window longer than a log keeps, and stops (exit 3) where a log cannot be read",
    )
}

async fn view_activities(client: &GraphClient) -> Finding {
    let belief = Belief::ViewActivities;
    let names = match crate::views::activity_types(client).await {
        Ok(names) => names,
        Err(e) => return unread(belief, &e),
    };
    let found = |action| -> Vec<&str> {
        names
            .iter()
            .filter(|n| crate::views::is_view_activity(action, n))
            .map(String::as_str)
            .collect()
    };
    let (filevault, recovery_lock) = (found(Action::FileVault), found(Action::RecoveryLock));
    let shown = |v: &[&str]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let verdict = if filevault.is_empty() || recovery_lock.is_empty() {
        Verdict::Untested
    } else {
        Verdict::Adapted
    };
    finding(
        belief,
        verdict,
        format!(
            "FileVault key views: {}; Recovery Lock passcode views: {} (of {} activity types; these names are not documented)",
            shown(&filevault),
            shown(&recovery_lock),
            names.len()
        ),
        "a view-driven run reads these activities; where none is found, it stops until another activity is named",
    )
}
