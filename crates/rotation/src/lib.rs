//! The rotation engine as a library: device sources → plan → rate-gated dispatcher → write-ahead
//! ledger; resume, status and export. Everything the CLI does is callable from here.

mod action;
mod device_facts;
mod device_id;
mod device_list;
mod doctor;
mod eligibility;
mod error;
mod exclude;
mod export;
mod facts;
mod fetch_report;
mod filter;
pub mod fleet;
mod graph_source;
mod group_source;
mod job;
mod ledger;
mod ledger_dir;
mod match_by;
mod named;
mod open_source;
mod ordered;
mod permission;
mod plan;
mod preflight;
mod rate_gate;
mod reads;
mod report;
mod results_read;
mod retry;
mod retry_cause;
mod run;
mod run_dir;
mod run_spec;
mod skip_reason;
mod sliding_window;
mod url;
mod verify;
pub mod views;

pub use action::{Action, MatchRule, Recognised, ResultMatcher};
pub use device_facts::{Facts, FactsWanted, RESULTS_SAMPLE, ResultsTiming, read_facts};
pub use device_id::parse_id;
pub use device_list::{
    DEVICE_COLUMNS, DeviceCsvWriter, DeviceList, KeyColumn, SourceDevice, device_select,
    write_devices_csv, write_devices_json,
};
pub use doctor::{Belief, Finding, Verdict, examine as doctor};
pub use eligibility::{Eligibility, Ineligible};
pub use error::RotationError;
pub use exclude::read_exclusions;
pub use export::{ExportFormat, ExportRow, Tag, export, export_all};
pub use facts::DeviceFacts;
pub use fetch_report::FetchReport;
pub use filter::{Filter, FilterError, PROPERTIES as FILTER_PROPERTIES};
pub use graph_batch::Quota;
pub use graph_client::{Cloud, GraphClientError};
pub use graph_source::{GraphSource, QueryFilter, ScriptKind};
pub use group_source::GroupMembers;
pub use job::{Job, PlannedJob, SignedIn, rotate};
pub use ledger::{
    DeviceState, Evidence, IdHasher, LEDGER_VERSION, Ledger, LedgerState, Outcome, Row, RunHeader,
    Step, VerifiedState, for_each_row as ledger_rows, now_iso, replay_file as ledger_replay,
};
pub use ledger_dir::ClaimedDir;
pub use match_by::{MatchBy, MatchReport, resolve};
pub use open_source::{Materialized, OpenSource};
pub use permission::{Permission, UnknownPermission};
pub use plan::{CheckedSource, Plan, PlanReport, Policy};
pub use preflight::{Allowed, Grant, TokenProblem, check_token};
pub use rate_gate::RateGate;
pub use report::{
    CARD_LIMIT, Card, DeviceRow, FailureGroup, FleetReport, Notice, Page as ReportPage, Report,
    ResumePoint, Tone as NoticeTone, ViewRow, Window, build as build_report,
    build_fleet as build_fleet_report, render as render_report,
    summary_json as report_summary_json,
};
pub use results_read::{ResultsRead, ResultsReason, ResultsSource, SendTimeRules};
pub use retry_cause::RetryCause;
pub use run::{
    Counters, DispatchOptions, InDoubt, LOST_ANSWER_RECHECK, Progress, RotateRequest, RunOutcome,
    RunStop, StopSignal, resume,
};
pub use run_dir::{Manifest, RunDir, TenantEntry, TenantRecord, TenantState, read_tenants};
pub use run_spec::{Collection, Matching, PartialSource, PolicySpec, RunSpec, SourceSpec};
pub use skip_reason::{Property, SkipKind, SkipReason};
pub use verify::{
    SKEW, UnrecognisedName, VerifyBucket, VerifyCounts, VerifyOptions, VerifyReport, verify,
};
