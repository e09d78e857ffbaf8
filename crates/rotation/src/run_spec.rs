//! What a run was asked to do, as data: the action, where the devices come from and what the
//! plan leaves alone. A run directory keeps it in its manifest, so `resume --run-dir` plans a
//! tenant that never was with the run's own source and policy, whatever the command line's flags
//! are called by then.

use crate::{
    Action, Eligibility, GraphSource, GroupMembers, MatchBy, Policy, QueryFilter, RotationError,
    ScriptKind,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One run's parameters beside its pacing and credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    #[serde(with = "crate::ledger::as_text")]
    pub action: Action,
    pub source: SourceSpec,
    pub policy: PolicySpec,
    /// The navigation collection the action is posted to.
    pub via: Collection,
    /// Further names of the action's results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub result_names: Vec<String>,
    /// What a listing that fails part-way does to the run.
    #[serde(default)]
    pub partial: PartialSource,
    /// Only the source's devices whose secret was read after their last rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewed: Option<crate::views::ViewedSpec>,
}

/// Intune's two collections of devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Collection {
    #[default]
    #[serde(rename = "managedDevices")]
    ManagedDevices,
    #[serde(rename = "comanagedDevices")]
    ComanagedDevices,
}

impl Collection {
    /// The collection's name in Graph's paths.
    pub fn graph_name(self) -> &'static str {
        match self {
            Collection::ManagedDevices => "managedDevices",
            Collection::ComanagedDevices => "comanagedDevices",
        }
    }

    /// The collection Graph names `name`, if it is one.
    pub fn from_graph_name(name: &str) -> Option<Collection> {
        [Collection::ManagedDevices, Collection::ComanagedDevices]
            .into_iter()
            .find(|c| c.graph_name() == name)
    }
}

/// What a source listing that fails part-way does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartialSource {
    /// The run stops before anything is sent.
    #[default]
    Refuse,
    /// The devices read are planned, with a warning; a check whose listing failed is left undone.
    Keep,
}

/// Whether rows of an input file matched against the tenant must each match one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Matching {
    /// A row without exactly one device is reported and left out.
    #[default]
    Lenient,
    /// A row without exactly one device stops the run before anything is sent.
    Strict,
}

/// Where the devices come from: exactly one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SourceSpec {
    /// A file (CSV, JSON lines, `-` for stdin), its rows the devices or, with `match_by`,
    /// matched against the tenant's devices.
    Input {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        match_by: Option<MatchBy>,
        #[serde(default)]
        matching: Matching,
    },
    /// A collection's devices, with an OData filter (`None`: the action's platform).
    Query {
        collection: Collection,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<String>,
    },
    /// A script's devices (by id or display name), those in `states` where given.
    Script {
        script: ScriptKind,
        id: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        states: Vec<String>,
    },
    /// The managed devices of users (UPN or object id).
    Users { users: Vec<String> },
    /// The devices where an app (by id or display name) was detected.
    DetectedApp { app: String },
    /// The devices of Entra groups' transitive members.
    Groups {
        groups: Vec<String>,
        members: GroupMembers,
    },
}

impl SourceSpec {
    /// The input file, where the source is one.
    pub fn input(&self) -> Option<&str> {
        match self {
            SourceSpec::Input { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The same source reading another input file (a tenant's share of a run's input).
    pub fn with_input(&self, file: String) -> SourceSpec {
        match self {
            SourceSpec::Input {
                match_by, matching, ..
            } => SourceSpec::Input {
                path: file,
                match_by: *match_by,
                matching: *matching,
            },
            other => other.clone(),
        }
    }

    /// The Graph listing of a source that is one, its filter parsed (bad input fails here,
    /// before anything connects); `None` for an input file.
    pub fn graph(&self) -> Result<Option<GraphSource>, RotationError> {
        Ok(Some(match self {
            SourceSpec::Input { .. } => return Ok(None),
            SourceSpec::Query { collection, filter } => GraphSource::Query {
                comanaged: *collection == Collection::ComanagedDevices,
                filter: filter
                    .as_deref()
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(QueryFilter::parse)
                    .transpose()?,
            },
            SourceSpec::Script { script, id, states } => GraphSource::Script {
                kind: *script,
                id: id.clone(),
                states: states.clone(),
            },
            SourceSpec::Users { users } => GraphSource::Users(users.clone()),
            SourceSpec::DetectedApp { app } => GraphSource::DetectedApp(app.clone()),
            SourceSpec::Groups { groups, members } => GraphSource::Groups {
                groups: groups.clone(),
                members: *members,
            },
        }))
    }
}

/// What the plan leaves alone, as given; [`PolicySpec::policy`] reads its exclusions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySpec {
    /// `None`: the action's default (on for FileVault and BitLocker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_encrypted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_after_secs: Option<u64>,
    /// A file of device ids to leave alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<PathBuf>,
    pub eligibility: Eligibility,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_within_secs: Option<u64>,
    pub skip_pending: bool,
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec {
            require_encrypted: None,
            stale_after_secs: None,
            exclude: None,
            eligibility: Eligibility::Strict,
            rotated_within_secs: None,
            skip_pending: true,
        }
    }
}

impl PolicySpec {
    /// The plan's policy for `action`, its exclusion list read (once: every tenant of a run
    /// shares the set).
    pub fn policy(&self, action: Action) -> Result<Policy, RotationError> {
        let mut p = Policy::for_action(action);
        if let Some(r) = self.require_encrypted {
            p.require_encrypted = r;
        }
        p.stale_after = self.stale_after_secs.map(Duration::from_secs);
        p.rotated_within = self.rotated_within_secs.map(Duration::from_secs);
        p.skip_pending = self.skip_pending;
        p.eligibility = self.eligibility;
        if let Some(path) = &self.exclude {
            p.exclude = Arc::new(crate::read_exclusions(path)?);
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RunSpec {
        RunSpec {
            action: Action::FileVault,
            source: SourceSpec::Groups {
                groups: vec!["Finance Macs".into()],
                members: GroupMembers::Devices,
            },
            policy: PolicySpec {
                rotated_within_secs: Some(90 * 86_400),
                ..PolicySpec::default()
            },
            via: Collection::ManagedDevices,
            result_names: vec!["rotateFileVaultKey".into()],
            partial: PartialSource::Refuse,
            viewed: None,
        }
    }

    #[test]
    fn a_spec_reads_back_as_it_was_written() {
        let text = serde_json::to_string(&spec()).unwrap();
        assert_eq!(serde_json::from_str::<RunSpec>(&text).unwrap(), spec());
    }

    #[test]
    fn its_words_on_disk_are_the_ledgers_and_the_services_not_the_flags() {
        let doc = serde_json::to_value(spec()).unwrap();
        assert_eq!(doc["action"], "filevault");
        assert_eq!(doc["source"]["kind"], "groups");
        assert_eq!(doc["source"]["members"], "devices");
        assert_eq!(doc["via"], "managedDevices");
        assert_eq!(doc["policy"]["eligibility"], "strict");
    }

    #[test]
    fn a_bad_filter_is_refused_when_the_source_is_opened() {
        let q = SourceSpec::Query {
            collection: Collection::ManagedDevices,
            filter: Some("operatingSystem eq".into()),
        };
        assert!(q.graph().is_err());
    }
}
