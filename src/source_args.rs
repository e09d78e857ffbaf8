//! Turning the source options into one device list: a file, a match against the tenant, or a
//! Graph listing. Shared by `rotate` and `devices`.

use crate::cli::{GroupMembersArg, MatchByArg, SourceArgs};
use crate::failure::{Failure, usage};
use graph_client::GraphClient;
use rotation::{
    Action, Collection, DeviceList, GroupMembers, MatchBy, Matching, OpenSource, ScriptKind,
    SourceSpec,
};

/// The source options as data: exactly one kind, the users file read, the run-state filter
/// only beside a script. Files are not opened yet ([`OpenSource::open`]).
pub fn spec_of(a: &SourceArgs) -> Result<SourceSpec, Failure> {
    spec_or(a, None)
}

/// [`spec_of`], with the source to read where no option names one.
pub fn spec_or(a: &SourceArgs, fallback: Option<SourceSpec>) -> Result<SourceSpec, Failure> {
    let mut users = a.user.clone();
    if let Some(p) = &a.users_file {
        let text = std::fs::read_to_string(p)
            .map_err(|e| usage(anyhow::anyhow!("{}: {e}", p.display())))?;
        users.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
        if users.is_empty() {
            return Err(usage(anyhow::anyhow!(
                "{}: no users in the file",
                p.display()
            )));
        }
    }
    let script = |script, id: &Option<String>| {
        id.as_ref().map(|id| SourceSpec::Script {
            script,
            id: id.clone(),
            states: a.run_state.clone(),
        })
    };
    let mut kinds: Vec<SourceSpec> = Vec::new();
    if let Some(input) = &a.input {
        kinds.push(SourceSpec::Input {
            path: input.clone(),
            match_by: a.match_by.map(match_by),
            matching: if a.strict {
                Matching::Strict
            } else {
                Matching::Lenient
            },
        });
    }
    if let Some(f) = &a.query {
        kinds.push(SourceSpec::Query {
            collection: Collection::from_graph_name(&a.collection)
                .expect("clap: the collection is one of the two"),
            filter: Some(f.trim().to_string()).filter(|f| !f.is_empty()),
        });
    }
    kinds.extend(script(ScriptKind::Health, &a.health_script));
    kinds.extend(script(ScriptKind::Management, &a.management_script));
    kinds.extend(script(ScriptKind::Compliance, &a.compliance_script));
    kinds.extend(script(ScriptKind::Shell, &a.shell_script));
    kinds.extend(script(
        ScriptKind::CustomAttribute,
        &a.custom_attribute_script,
    ));
    if !users.is_empty() {
        kinds.push(SourceSpec::Users { users });
    }
    if let Some(app) = &a.detected_app {
        kinds.push(SourceSpec::DetectedApp { app: app.clone() });
    }
    if !a.group.is_empty() {
        if let Some(empty) = a.group.iter().position(|g| g.trim().is_empty()) {
            return Err(usage(anyhow::anyhow!(
                "--group #{}: an empty group name",
                empty + 1
            )));
        }
        kinds.push(SourceSpec::Groups {
            groups: a.group.clone(),
            members: match a.group_members {
                GroupMembersArg::Devices => GroupMembers::Devices,
                GroupMembersArg::Users => GroupMembers::Users,
                GroupMembersArg::Both => GroupMembers::Both,
            },
        });
    }
    if !a.run_state.is_empty() && !kinds.iter().any(|k| matches!(k, SourceSpec::Script { .. })) {
        return Err(usage(anyhow::anyhow!(
            "--run-state goes with --health-script, --management-script, --compliance-script, --shell-script or --custom-attribute-script"
        )));
    }
    match kinds.len() {
        1 => Ok(kinds.pop().expect("one")),
        0 if fallback.is_some() => Ok(fallback.expect("checked")),
        0 => Err(usage(anyhow::anyhow!(
            "a device source is required: --input FILE, --query [FILTER], --group NAME|ID, --health-script, --management-script, --compliance-script, --shell-script or --custom-attribute-script ID|NAME, --user UPN, --users-file FILE or --detected-app ID|NAME"
        ))),
        _ => Err(usage(anyhow::anyhow!(
            "give exactly one kind of device source per run"
        ))),
    }
}

/// The source options, opened: a bad path or filter fails here, before any connection.
pub fn open(a: &SourceArgs) -> Result<OpenSource, Failure> {
    Ok(OpenSource::open(&spec_of(a)?)?)
}

/// The device list of an opened source, its notes said on stderr (`devices`).
pub async fn materialize(
    source: OpenSource,
    client: Option<&GraphClient>,
    action: Action,
    allow_partial: bool,
) -> Result<DeviceList, Failure> {
    let got = source.materialize(client, action, allow_partial).await?;
    for note in &got.notes {
        eprintln!("{note}");
    }
    Ok(got.list)
}

fn match_by(a: MatchByArg) -> MatchBy {
    match a {
        MatchByArg::Serial => MatchBy::Serial,
        MatchByArg::Name => MatchBy::Name,
        MatchByArg::EntraId => MatchBy::EntraId,
    }
}
