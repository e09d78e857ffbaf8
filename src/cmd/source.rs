//! Turning the source options into one device list: a file, a match against the tenant, or a
//! Graph listing. Shared by `rotate` and `devices`.

use super::{Failure, usage};
use crate::cli::{GroupMembersArg, MatchByArg, SourceArgs};
use graph_client::GraphClient;
use rotation::{Action, DeviceList, GraphSource, GroupMembers, MatchBy, QueryFilter, ScriptKind};

/// A source as given, checked before any connection is made.
pub enum Source {
    File(DeviceList),
    Match(DeviceList, MatchBy, bool),
    Graph(GraphSource),
}

impl Source {
    /// Exactly one kind of source; files are opened now so a bad path fails before connecting.
    pub fn parse(a: &SourceArgs) -> Result<Source, Failure> {
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
        let script = |kind, id: &Option<String>| {
            id.as_ref().map(|id| GraphSource::Script {
                kind,
                id: id.clone(),
                states: a.run_state.clone(),
            })
        };
        let mut kinds: Vec<Source> = Vec::new();
        if let Some(input) = &a.input {
            let csv = DeviceList::open(input)?;
            kinds.push(match a.match_by {
                Some(by) => Source::Match(csv, match_by(by), a.strict),
                None => Source::File(csv),
            });
        }
        if let Some(f) = &a.query {
            let filter = Some(f.trim())
                .filter(|f| !f.is_empty())
                .map(QueryFilter::parse)
                .transpose()?;
            kinds.push(Source::Graph(GraphSource::Query {
                comanaged: a.collection == "comanagedDevices",
                filter,
            }));
        }
        kinds.extend(script(ScriptKind::Health, &a.health_script).map(Source::Graph));
        kinds.extend(script(ScriptKind::Management, &a.management_script).map(Source::Graph));
        kinds.extend(script(ScriptKind::Compliance, &a.compliance_script).map(Source::Graph));
        kinds.extend(script(ScriptKind::Shell, &a.shell_script).map(Source::Graph));
        kinds.extend(
            script(ScriptKind::CustomAttribute, &a.custom_attribute_script).map(Source::Graph),
        );
        if !users.is_empty() {
            kinds.push(Source::Graph(GraphSource::Users(users)));
        }
        if let Some(app) = &a.detected_app {
            kinds.push(Source::Graph(GraphSource::DetectedApp(app.clone())));
        }
        if !a.group.is_empty() {
            if let Some(empty) = a.group.iter().position(|g| g.trim().is_empty()) {
                return Err(usage(anyhow::anyhow!(
                    "--group #{}: an empty group name",
                    empty + 1
                )));
            }
            kinds.push(Source::Graph(GraphSource::Groups {
                groups: a.group.clone(),
                members: match a.group_members {
                    GroupMembersArg::Devices => GroupMembers::Devices,
                    GroupMembersArg::Users => GroupMembers::Users,
                    GroupMembersArg::Both => GroupMembers::Both,
                },
            }));
        }
        if !a.run_state.is_empty()
            && !kinds
                .iter()
                .any(|k| matches!(k, Source::Graph(GraphSource::Script { .. })))
        {
            return Err(usage(anyhow::anyhow!(
                "--run-state goes with --health-script, --management-script, --compliance-script, --shell-script or --custom-attribute-script"
            )));
        }
        match kinds.len() {
            1 => Ok(kinds.pop().expect("one")),
            0 => Err(usage(anyhow::anyhow!(
                "a device source is required: --input FILE, --query [FILTER], --group NAME|ID, --health-script, --management-script, --compliance-script, --shell-script or --custom-attribute-script ID|NAME, --user UPN, --users-file FILE or --detected-app ID|NAME"
            ))),
            _ => Err(usage(anyhow::anyhow!(
                "give exactly one kind of device source per run"
            ))),
        }
    }

    /// Delegated permissions the source reads with beyond the device listing.
    pub fn scopes(&self) -> &'static [&'static str] {
        match self {
            Source::Graph(GraphSource::Groups { .. }) => {
                &["GroupMember.Read.All", "Device.Read.All"]
            }
            Source::Graph(GraphSource::Script { .. }) => {
                &["DeviceManagementConfiguration.Read.All"]
            }
            _ => &[],
        }
    }

    /// Whether the source needs to read devices from Graph (and so the read permission).
    pub fn lists_devices(&self) -> bool {
        !matches!(self, Source::File(_))
    }

    /// The device list to plan from; `client` is needed unless the source is a file.
    pub async fn materialize(
        self,
        client: Option<&GraphClient>,
        action: Action,
        allow_partial: bool,
    ) -> Result<DeviceList, Failure> {
        let need = || {
            client.ok_or_else(|| {
                usage(anyhow::anyhow!(
                    "this source reads devices from Graph: a connection is needed"
                ))
            })
        };
        match self {
            Source::File(csv) => Ok(csv),
            Source::Match(csv, by, strict) => {
                let (list, report) = rotation::resolve(need()?, &csv, by, strict).await?;
                tracing::info!(
                    matched = report.matched,
                    unmatched = report.unmatched.len(),
                    ambiguous = report.ambiguous.len(),
                    "input rows matched to devices"
                );
                Ok(list)
            }
            Source::Graph(g) => {
                let (list, report) = g.fetch(need()?, action, allow_partial).await?;
                for note in &report.notes {
                    eprintln!("{note}");
                }
                if let Some(why) = &report.partial {
                    eprintln!(
                        "warning: the device listing stopped part-way ({why}); {} device(s) read are planned",
                        report.devices
                    );
                }
                Ok(list)
            }
        }
    }
}

fn match_by(a: MatchByArg) -> MatchBy {
    match a {
        MatchByArg::Serial => MatchBy::Serial,
        MatchByArg::Name => MatchBy::Name,
        MatchByArg::EntraId => MatchBy::EntraId,
    }
}
