//! The binary's settings as the engine's data: the flags (and the profile they were filled from)
//! become a [`rotation::RunSpec`], and a run directory of an earlier release, which kept the
//! command line, is read back into one.

use crate::cli::{ActionArg, EligibilityArg, InDoubtArg, PolicyArgs, RotateArgs, SourceArgs};
use crate::failure::{Failure, usage};
use rotation::{Action, InDoubt};
use std::path::Path;

pub fn action_of(a: ActionArg) -> Action {
    match a {
        ActionArg::Filevault => Action::FileVault,
        ActionArg::RecoveryLock => Action::RecoveryLock,
        ActionArg::Bitlocker => Action::BitLocker,
        ActionArg::Laps => Action::Laps,
    }
}

/// The policy options as data.
pub fn policy_spec(a: &PolicyArgs) -> rotation::PolicySpec {
    rotation::PolicySpec {
        require_encrypted: a.require_encrypted,
        stale_after_secs: a
            .stale_after
            .map(|d| std::time::Duration::from(d).as_secs()),
        exclude: a.exclude.clone(),
        eligibility: match a.eligibility {
            EligibilityArg::Strict => rotation::Eligibility::Strict,
            EligibilityArg::Lenient => rotation::Eligibility::Lenient,
            EligibilityArg::Off => rotation::Eligibility::Off,
        },
        rotated_within_secs: a
            .skip_rotated_within
            .map(|d| std::time::Duration::from(d).as_secs()),
        skip_pending: !a.no_skip_pending,
    }
}

/// What `rotate` was asked to do, as data: a run directory keeps it for `resume --run-dir`.
pub fn run_spec(a: &RotateArgs) -> Result<rotation::RunSpec, Failure> {
    let viewed = a.viewed.viewed_since.map(|d| rotation::views::ViewedSpec {
        within_secs: std::time::Duration::from(d).as_secs(),
        activities: a.viewed.audit_activity.clone(),
    });
    if viewed.as_ref().is_some_and(|v| v.within_secs == 0) {
        return Err(usage(anyhow::anyhow!(
            "--viewed-since: the window must be longer than nothing (e.g. 2h)"
        )));
    }
    // Views alone read the action's platform, and narrow it to the devices read.
    let fallback = viewed.as_ref().map(|_| rotation::SourceSpec::Query {
        collection: rotation::Collection::ManagedDevices,
        filter: None,
    });
    Ok(rotation::RunSpec {
        action: action_of(a.action),
        source: crate::source_args::spec_or(&a.source, fallback)?,
        policy: policy_spec(&a.policy),
        via: rotation::Collection::from_graph_name(&a.via).expect("clap: one of the two"),
        result_names: a.dispatch.result_names.clone(),
        partial: if a.source.allow_partial_source {
            rotation::PartialSource::Keep
        } else {
            rotation::PartialSource::Refuse
        },
        viewed,
    })
}

/// The run's spec from a run directory of an earlier release, which kept the `rotate` command
/// line in its manifest: parsed as that release's flags were.
pub fn spec_of_argv(dir: &Path, options: &serde_json::Value) -> Result<rotation::RunSpec, Failure> {
    let argv: Vec<&str> = options["argv"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    match <crate::cli::Cli as clap::Parser>::try_parse_from(&argv) {
        Ok(crate::cli::Cli {
            command: crate::cli::Command::Rotate(r),
            ..
        }) => run_spec(&r),
        _ => Err(usage(anyhow::anyhow!(
            "{}: the manifest does not hold what this run was asked to do",
            dir.join("manifest.json").display()
        ))),
    }
}

impl SourceArgs {
    /// The source as the manifest shows it to people, in this binary's flags.
    pub fn shown(&self) -> String {
        let s = self;
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
}

impl From<InDoubtArg> for InDoubt {
    fn from(a: InDoubtArg) -> Self {
        match a {
            InDoubtArg::Resend => InDoubt::Resend,
            InDoubtArg::Skip => InDoubt::Skip,
            InDoubtArg::Verify => InDoubt::Verify,
        }
    }
}
