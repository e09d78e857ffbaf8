//! The command line, as clap types only; the logic lives in `cmd/` and the `rotation` crate.

use crate::env;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "intune-rotate",
    version,
    about = "Rotate a secret (FileVault key, Recovery Lock passcode, BitLocker keys, LAPS password) on every device of an Intune fleet, as one resumable, verifiable job.",
    after_help = "Examples:\n  intune-rotate demo\n  AZURE_CLIENT_SECRET=... intune-rotate rotate --tenant $TENANT --client-id $APP --input macs.csv --ledger run1.jsonl\n  intune-rotate status --ledger run1.jsonl\n  intune-rotate resume --ledger run1.jsonl --yes\n  intune-rotate export --ledger run1.jsonl --out result.csv"
)]
pub struct Cli {
    /// A named profile of the configuration file (docs/configuration.md): tenant, client id,
    /// certificate, cloud, rate, ledger directory. Flags and the environment override it.
    #[arg(
        long,
        global = true,
        env = "INTUNE_ROTATE_PROFILE",
        value_name = "NAME"
    )]
    pub profile: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Rotate the secret on every device of a source, recording each outcome in a ledger.
    #[command(
        after_help = "Example:\n  intune-rotate rotate --action filevault --input devices.csv --ledger run1.jsonl --yes"
    )]
    Rotate(Box<RotateArgs>),
    /// Continue a run from its ledger (after Ctrl-C, a crash or --limit).
    #[command(after_help = "Example:\n  intune-rotate resume --ledger run1.jsonl --yes")]
    Resume(ResumeArgs),
    /// Print how many devices are in each state.
    #[command(after_help = "Example:\n  intune-rotate status --ledger run1.jsonl")]
    Status(LedgerArg),
    /// Write one row per device (CSV or JSON) for reports and other tools.
    #[command(
        after_help = "Example:\n  intune-rotate export --ledger run1.jsonl --format csv --out result.csv"
    )]
    Export(ExportArgs),
    /// Record whether each rotated device actually performed the action (deviceActionResults).
    #[command(
        after_help = "Example:\n  intune-rotate verify --ledger run1.jsonl --watch --timeout 2h --interval 5m"
    )]
    Verify(VerifyArgs),
    /// One self-contained HTML page of a run: outcomes, pace against the limit, errors, devices.
    #[command(
        after_help = "Example:\n  intune-rotate report --ledger run1.jsonl --out report.html\n  intune-rotate report --run-dir runs/nov --out report.html"
    )]
    Report(ReportArgs),
    /// List the devices a source yields, to review and feed back with --input.
    #[command(after_help = "Example:\n  intune-rotate devices --query > macs.csv")]
    Devices(DevicesArgs),
    /// Show who the credentials sign in as, the token's permissions, and which actions they allow.
    #[command(after_help = "Example:\n  intune-rotate whoami --tenant $TENANT --client-id $APP")]
    Whoami(WhoamiArgs),
    /// Before a first run: what whoami shows, then each belief the engine relies on, what the
    /// tenant answered and what the engine will do (read-only; exit 1 when a run would miss
    /// something).
    #[command(after_help = "Example:\n  intune-rotate doctor --tenant $TENANT --client-id $APP")]
    Doctor(DoctorArgs),
    /// Show the effective settings and where each came from (flag, environment, profile, default).
    #[command(after_help = "Example:\n  intune-rotate --profile contoso config show")]
    Config(ConfigArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    #[command(
        after_help = "Example:\n  intune-rotate completions bash > ~/.local/share/bash-completion/completions/intune-rotate"
    )]
    Completions(CompletionsArgs),
    /// Print the manual page (roff).
    #[command(
        after_help = "Example:\n  intune-rotate man > ~/.local/share/man/man1/intune-rotate.1"
    )]
    Man,
    /// Rotate the Macs of a simulated tenant, end to end, in under a minute.
    #[cfg(feature = "demo")]
    #[command(after_help = "Example:\n  intune-rotate demo --devices 3000")]
    Demo(DemoArgs),
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Credentials")]
pub struct Connection {
    /// Directory (tenant) id.
    #[arg(long, env = env::TENANT)]
    pub tenant: Option<String>,
    /// Application (client) id; the secret comes from AZURE_CLIENT_SECRET, never from a flag.
    #[arg(long, env = env::CLIENT_ID)]
    pub client_id: Option<String>,
    /// A file holding the client secret (instead of AZURE_CLIENT_SECRET).
    #[arg(long)]
    pub client_secret_file: Option<PathBuf>,
    /// PEM with the certificate and its RSA private key, for a signed client assertion.
    #[arg(long, env = env::CERTIFICATE)]
    pub certificate: Option<PathBuf>,
    /// Sign the assertion RS256 with `x5t` (SHA-1) instead of PS256 with `x5t#S256`.
    #[arg(long, requires = "certificate")]
    pub assertion_rs256: bool,
    /// A file holding a ready access token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Delegated sign-in: open a URL on any device and enter a code (OAuth 2.0 device code flow).
    #[arg(long)]
    pub device_code: bool,
    /// How to sign in: auto (default) takes the first available of the environment (token file,
    /// certificate, device code, secret), workload identity, managed identity and the Azure CLI;
    /// or one of secret, certificate, workload-identity, managed-identity, azure-cli, device-code,
    /// token-file.
    #[arg(long, value_parser = parse_credential, value_name = "KIND")]
    pub credential: Option<CredentialChoice>,
    /// Workload identity: a file the platform keeps a federated token in.
    #[arg(long, env = env::FEDERATED_TOKEN_FILE)]
    pub federated_token_file: Option<PathBuf>,
    /// Managed identity: a user-assigned identity by its object (principal) id (by client id: --client-id).
    #[arg(long, conflicts_with = "identity_resource_id")]
    pub identity_object_id: Option<String>,
    /// Managed identity: a user-assigned identity by its Azure resource id.
    #[arg(long)]
    pub identity_resource_id: Option<String>,
    /// The national cloud.
    #[arg(long, default_value = "global", value_parser = cloud_parser())]
    pub cloud: graph_client::Cloud,
    /// Override the Graph endpoint (https, or http to loopback only).
    #[arg(long)]
    pub graph_url: Option<String>,
    /// Override the login endpoint (https, or http to loopback only).
    #[arg(long)]
    pub login_url: Option<String>,
}

/// `--cloud`: the clouds' names, listed in help and completions.
fn cloud_parser() -> impl clap::builder::TypedValueParser<Value = graph_client::Cloud> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(
        graph_client::Cloud::ALL.map(graph_client::Cloud::name),
    )
    .map(|s| {
        s.parse::<graph_client::Cloud>()
            .expect("one of the names listed")
    })
}

/// `--credential`: one kind, or the first available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialChoice {
    Auto,
    Only(graph_client::CredentialKind),
}

pub fn parse_credential(s: &str) -> Result<CredentialChoice, String> {
    if s.eq_ignore_ascii_case("auto") {
        Ok(CredentialChoice::Auto)
    } else {
        s.parse().map(CredentialChoice::Only)
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ActionArg {
    Filevault,
    RecoveryLock,
    Bitlocker,
    Laps,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Pacing")]
pub struct Dispatch {
    /// Quota as COUNT/WINDOW, counted per batch item (Intune's limit: 200 POSTs per 20 s per app).
    #[arg(long, default_value = "200/20s")]
    pub rate: graph_batch::Quota,
    /// Requests per $batch (1-20).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub batch_size: u16,
    /// Batches in flight at once (default: enough for the rate through 5 s of latency; 3 at 200/20s).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: Option<u16>,
    /// Attempts per device before it is recorded as failed.
    #[arg(long, default_value_t = 8, help_heading = "Safety")]
    pub max_attempts: u32,
    /// Stop sending after this long (e.g. 2h); what is left stays pending for `resume`.
    #[arg(long, help_heading = "Safety")]
    pub time_budget: Option<humantime::Duration>,
    /// Rotate only the first N pending devices (a canary); the rest stay pending.
    #[arg(long, help_heading = "Safety")]
    pub limit: Option<usize>,
    /// Skip the confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y', help_heading = "Safety")]
    pub yes: bool,
    /// Write the run's summary as JSON to this file.
    #[arg(long, help_heading = "Run")]
    pub summary_json: Option<PathBuf>,
    /// Post the run's outcome to a Teams Workflows webhook as an Adaptive Card (repeatable).
    #[arg(long, value_name = "URL", help_heading = "Notify")]
    pub notify: Vec<String>,
    /// Mail the run's outcome to these addresses (comma separated) through Graph's sendMail;
    /// needs Mail.Send.
    #[arg(
        long,
        value_name = "TO",
        value_delimiter = ',',
        requires = "notify_from",
        help_heading = "Notify"
    )]
    pub notify_mail: Vec<String>,
    /// The mailbox the mail is sent from: a user principal name or object id.
    #[arg(
        long,
        value_name = "UPN",
        requires = "notify_mail",
        help_heading = "Notify"
    )]
    pub notify_from: Option<String>,
    /// Attach the run's HTML report to the mail.
    #[arg(long, requires = "notify_mail", help_heading = "Notify")]
    pub notify_attach_report: bool,
    /// Another name under which Intune may record this action's results (repeatable): used when
    /// answers were lost. Given to `rotate`, it is kept in the ledger for `resume` and `verify`.
    #[arg(long = "result-name", value_name = "NAME", help_heading = "Run")]
    pub result_names: Vec<String>,
    /// Assume the tenant's window for this app is empty: its whole credit (200 at Intune's
    /// 200/20s) goes at once. The default for a new run; `resume` also counts the sends its ledger
    /// holds from the last window.
    #[arg(long, overrides_with = "no_cold_start")]
    pub cold_start: bool,
    /// The tenant-wide limit all apps share (default: twice --rate, as Intune documents 400/20s
    /// against 200/20s per app). What goes at once leaves other apps room for their own quota.
    #[arg(long, value_name = "COUNT/WINDOW")]
    pub tenant_rate: Option<graph_batch::Quota>,
    /// Pace evenly from the first request, as when another tool used this app a moment ago.
    #[arg(long, overrides_with = "cold_start")]
    pub no_cold_start: bool,
    /// Look a throttled device up in deviceActionResults before sending it again, for every
    /// action (BitLocker always does: a 429 may come for a rotation that ran, and each needless
    /// one adds a key toward Entra's 200).
    #[arg(long, help_heading = "Safety")]
    pub strict_once: bool,
    /// A device whose answer was lost and that shows no action at the first look-up is looked up
    /// again this long after its request left, before it is sent again.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "70s",
        help_heading = "Safety"
    )]
    pub lost_answer_recheck: humantime::Duration,
    /// When a run stops (Ctrl-C, SIGTERM, SIGHUP, the time budget, credentials failing), how long
    /// the answers in flight are awaited; devices still unanswered stay in doubt for `resume`.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        help_heading = "Safety"
    )]
    pub grace: humantime::Duration,
}

impl Dispatch {
    /// `None` when neither flag was given: the engine guesses.
    pub fn cold_start(&self) -> Option<bool> {
        match (self.cold_start, self.no_cold_start) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[arg(long, value_enum, default_value = "filevault")]
    pub action: ActionArg,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub viewed: ViewedArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// The ledger file to create (JSON Lines).
    #[arg(
        long,
        required_unless_present_any = ["run_dir", "ledger_dir"],
        conflicts_with_all = ["run_dir", "ledger_dir"],
        help_heading = "Run"
    )]
    pub ledger: Option<PathBuf>,
    /// A directory of dated ledgers, one per run (`2026-12-01T020000Z-filevault.jsonl`), for
    /// scheduled runs: while another run in it is going, this one exits 5 with nothing sent.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "run_dir",
        help_heading = "Run"
    )]
    pub ledger_dir: Option<PathBuf>,
    #[command(flatten)]
    pub tenants: TenantsArgs,
    /// Plan and print, send nothing.
    #[arg(long, help_heading = "Safety")]
    pub dry_run: bool,
    /// Refuse the plan (exit 2, nothing sent) when it would send more than N devices: the guard
    /// for scheduled runs, whatever the source turns out to hold.
    #[arg(long, value_name = "N", help_heading = "Safety")]
    pub max_devices: Option<usize>,
    /// After the run, verify the rotated devices, watching until done or this long has passed.
    #[arg(long, help_heading = "Safety")]
    pub verify_after: Option<humantime::Duration>,
    /// Collection the action is posted through.
    #[arg(long, default_value = "managedDevices", value_parser = ["managedDevices", "comanagedDevices"], help_heading = "Run")]
    pub via: String,
    #[command(flatten)]
    pub dispatch: Dispatch,
    #[command(flatten)]
    pub connection: Connection,
}

/// Graph's documented limit per app across all tenants: 130,000 requests per 10 s.
pub const GLOBAL_RATE: graph_batch::Quota =
    graph_batch::Quota::new(130_000, std::time::Duration::from_secs(10));

/// Many tenants in one run, with the same credentials (a multi-tenant app consented in each).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Many tenants")]
pub struct TenantsArgs {
    /// CSV of the tenants: tenant_id, and optionally name and cloud (docs/multi-tenant.md).
    #[arg(long, value_name = "FILE", requires = "run_dir")]
    pub tenants: Option<PathBuf>,
    /// The directory of a many-tenant run: its manifest and one ledger per tenant.
    #[arg(long, value_name = "DIR", requires = "tenants")]
    pub run_dir: Option<PathBuf>,
    /// Tenants in flight at once [default: 2000, fewer where the open-file limit is lower].
    #[arg(long, value_name = "N")]
    pub tenant_concurrency: Option<usize>,
    /// Graph's limit per app across all tenants, shared by every tenant's sending.
    #[arg(long, value_name = "COUNT/WINDOW", default_value_t = GLOBAL_RATE)]
    pub global_rate: graph_batch::Quota,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum InDoubtArg {
    Verify,
    Resend,
    Skip,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    #[arg(long, required_unless_present = "run_dir", conflicts_with = "run_dir")]
    pub ledger: Option<PathBuf>,
    /// A many-tenant run directory: every tenant not done is resumed, or planned if it never was.
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// With --run-dir: tenants in flight at once [default: 2000, fewer where the open-file
    /// limit is lower].
    #[arg(long, value_name = "N")]
    pub tenant_concurrency: Option<usize>,
    /// Devices sent before a crash with no recorded answer: look them up in deviceActionResults
    /// and re-send only those that did not get the action (verify), re-send all, or leave them.
    #[arg(long, value_enum, default_value = "verify")]
    pub in_doubt: InDoubtArg,
    #[command(flatten)]
    pub dispatch: Dispatch,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Args)]
pub struct LedgerArg {
    #[arg(long, required_unless_present = "run_dir", conflicts_with = "run_dir")]
    pub ledger: Option<PathBuf>,
    /// A many-tenant run directory: one line per tenant and the total.
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// The same as --format json (kept for older scripts).
    #[arg(long)]
    pub json: bool,
    /// The counts as text, or one JSON document (docs/scripting.md).
    #[arg(long, value_enum, default_value = "text")]
    pub format: TextOrJson,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, required_unless_present = "run_dir", conflicts_with = "run_dir")]
    pub ledger: Option<PathBuf>,
    /// A many-tenant run directory: one export with tenant_id and tenant_name columns first.
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: FormatArg,
    /// Output file (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// CSV for Excel: a UTF-8 byte order mark and CRLF line ends, so names in any language open
    /// correctly when the file is double-clicked on Windows.
    #[arg(long)]
    pub excel: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[arg(long, required_unless_present = "run_dir", conflicts_with = "run_dir")]
    pub ledger: Option<PathBuf>,
    /// A many-tenant run directory: every tenant's ledger, each with its own sign-in.
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Repeat until every device is done or failed, or the timeout passes.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: give up after this long.
    #[arg(long, default_value = "2h")]
    pub timeout: humantime::Duration,
    /// With --watch: time between passes.
    #[arg(long, default_value = "5m")]
    pub interval: humantime::Duration,
    /// Pace of the reads, per batch item (Intune allows 2000/20s of any request per app).
    #[arg(long, default_value = "1000/20s")]
    pub rate: graph_batch::Quota,
    /// Another name under which Intune may record this action's results (repeatable), beside
    /// those the ledger holds; `verify` lists the names it could not place.
    #[arg(long = "result-name", value_name = "NAME")]
    pub result_names: Vec<String>,
    /// The summary as text, or one JSON document (counts and unrecognised result names).
    #[arg(long, value_enum, default_value = "text")]
    pub format: TextOrJson,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ConfigWhat {
    /// The effective settings and their origins.
    Show,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[arg(value_enum)]
    pub what: ConfigWhat,
    #[arg(long, default_value = "200/20s")]
    pub rate: graph_batch::Quota,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(long, required_unless_present = "run_dir", conflicts_with = "run_dir")]
    pub ledger: Option<PathBuf>,
    /// A many-tenant run directory: a table of tenants and a section per tenant.
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// The HTML file to write (default: report.html; with --format json, only when given).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// json: print the page's figures as one JSON document (docs/report.md).
    #[arg(long, value_enum, default_value = "text")]
    pub format: TextOrJson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TextOrJson {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// The action whose platform a bare --query filters on.
    #[arg(long, value_enum, default_value = "filevault")]
    pub action: ActionArg,
    #[command(flatten)]
    pub source: SourceArgs,
    /// List the devices of every tenant of this CSV (tenant_id[,name][,cloud]); the output gains
    /// tenant_id and tenant_name columns first.
    #[arg(long, value_name = "FILE")]
    pub tenants: Option<PathBuf>,
    /// With --tenants: also keep each tenant's list as DIR/devices/<tenant id>.csv (to review,
    /// edit and feed back per tenant).
    #[arg(long, value_name = "DIR", requires = "tenants")]
    pub run_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: FormatArg,
    /// Output file (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub connection: Connection,
}

/// Where the devices come from: exactly one kind per run.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Source")]
pub struct SourceArgs {
    /// CSV with a header (Intune's device export accepted as is), JSON lines, or - for stdin.
    #[arg(long)]
    pub input: Option<String>,
    /// OData filter on the collection; without a value, the action's platform
    /// (operatingSystem eq 'macOS' or 'Windows'). The whole filter is also evaluated on the
    /// client, so a clause the service ignores cannot widen the run (docs/sources.md).
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    pub query: Option<String>,
    /// The collection --query lists.
    #[arg(long, default_value = "managedDevices", value_parser = ["managedDevices", "comanagedDevices"])]
    pub collection: String,
    /// Devices where this device health script (remediation) ran: its id or display name.
    #[arg(long, value_name = "ID|NAME")]
    pub health_script: Option<String>,
    /// Devices where this device management (platform) script ran: its id or display name.
    #[arg(long, value_name = "ID|NAME")]
    pub management_script: Option<String>,
    /// Devices where this compliance discovery script ran: its id or display name.
    #[arg(long, value_name = "ID|NAME")]
    pub compliance_script: Option<String>,
    /// Macs where this macOS shell script ran (Devices > macOS > Shell scripts): its id or display
    /// name. Health and management scripts are PowerShell and hold Windows devices only.
    #[arg(long, value_name = "ID|NAME")]
    pub shell_script: Option<String>,
    /// Macs where this macOS custom attribute script ran: its id or display name.
    #[arg(long, value_name = "ID|NAME")]
    pub custom_attribute_script: Option<String>,
    /// Only script devices in these states (e.g. fail scriptError).
    #[arg(long, num_args = 1..)]
    pub run_state: Vec<String>,
    /// A user's devices (UPN or object id); repeatable.
    #[arg(long)]
    pub user: Vec<String>,
    /// A file of users, one UPN or id a line.
    #[arg(long)]
    pub users_file: Option<PathBuf>,
    /// Devices where this detected app was found: its id or display name.
    #[arg(long, value_name = "ID|NAME")]
    pub detected_app: Option<String>,
    /// The managed devices of an Entra group's transitive members (nested groups included): its
    /// object id or display name; repeatable.
    #[arg(long, value_name = "ID|NAME")]
    pub group: Vec<String>,
    /// Which --group members bring their devices: Entra device objects, users (all their
    /// managed devices), or both.
    #[arg(long, value_enum, default_value = "both", requires = "group")]
    pub group_members: GroupMembersArg,
    /// The --input rows hold serial numbers, device names or Entra device ids: resolve them to
    /// Intune devices through one listing of the tenant.
    #[arg(long, value_enum, requires = "input")]
    pub match_by: Option<MatchByArg>,
    /// With --match-by: stop (exit 2) when a row matches no device or several.
    #[arg(long, requires = "match_by")]
    pub strict: bool,
    /// Plan what was read when a Graph listing fails part-way (default: stop, nothing sent).
    #[arg(long)]
    pub allow_partial_source: bool,
}

/// Devices whose secret someone read, from the audit logs (docs/viewed-secrets.md).
#[derive(Debug, Args)]
#[command(next_help_heading = "Source")]
pub struct ViewedArgs {
    /// Only devices whose secret was read in this window (e.g. 2h, 24h) after their last
    /// rotation, by the audit logs: BitLocker keys and LAPS passwords in Entra's (7 days on
    /// Free, 30 on P1/P2), FileVault and Recovery Lock in Intune's (a year). Alone it reads the
    /// action's platform; beside another source it narrows that one.
    #[arg(long, value_name = "DURATION")]
    pub viewed_since: Option<humantime::Duration>,
    /// An Intune audit activity that records a view, beyond those the tool finds in the
    /// tenant's activity types (their names are not documented); repeatable.
    #[arg(long, value_name = "NAME", requires = "viewed_since")]
    pub audit_activity: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum GroupMembersArg {
    Devices,
    Users,
    Both,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum MatchByArg {
    Serial,
    Name,
    EntraId,
}

/// What the plan leaves alone; each skip is recorded with its reason.
#[derive(Debug, Args)]
#[command(next_help_heading = "Selection")]
pub struct PolicyArgs {
    /// Skip devices reported unencrypted (default: true for filevault and bitlocker).
    #[arg(long)]
    pub require_encrypted: Option<bool>,
    /// Skip devices that have not checked in for this long (e.g. 30d).
    #[arg(long)]
    pub stale_after: Option<humantime::Duration>,
    /// A file of device ids to leave alone (one a line, or a CSV with an id column).
    #[arg(long)]
    pub exclude: Option<PathBuf>,
    /// Skip devices that cannot carry the action out (ownership, OS version, supervision,
    /// architecture, join type; docs/eligibility.md): strict skips a device whose source does not
    /// say, lenient counts that as eligible, off turns these rules off.
    #[arg(long, value_enum, default_value = "strict")]
    pub eligibility: EligibilityArg,
    /// Skip devices rotated more recently than this (e.g. 90d): FileVault and Recovery Lock by
    /// their last done action, BitLocker by their newest recovery key, LAPS by their last backup.
    #[arg(long, value_name = "DURATION")]
    pub skip_rotated_within: Option<humantime::Duration>,
    /// Send even where one of this action's requests is still pending or active on the device
    /// (by default such devices are skipped).
    #[arg(long)]
    pub no_skip_pending: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EligibilityArg {
    Strict,
    Lenient,
    Off,
}

#[derive(Debug, Args)]
pub struct WhoamiArgs {
    /// The identity and what it allows as text, or one JSON document (docs/scripting.md).
    #[arg(long, value_enum, default_value = "text")]
    pub format: TextOrJson,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The table as text, or one JSON document with the identity and every finding.
    #[arg(long, value_enum, default_value = "text")]
    pub format: TextOrJson,
    #[command(flatten)]
    pub connection: Connection,
}

#[cfg(feature = "demo")]
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Devices in the simulated tenant.
    #[arg(long, default_value_t = 3000)]
    pub devices: usize,
    /// Where the ledger and the export go.
    #[arg(long, default_value = "demo-out")]
    pub out_dir: PathBuf,
}
