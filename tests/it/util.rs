//! A small harness: a simulator in this process, the CLI as a child process pointed at it.

use graph_sim::{SimConfig, SimHandle};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

pub struct Env {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
}

/// A fast tenant: limits high enough that tests finish in seconds.
pub fn fast(devices: usize) -> SimConfig {
    let q = |n, s| graph_sim::Quota::new(n, Duration::from_secs(s));
    SimConfig {
        devices,
        post_limit: q(4000, 1),
        tenant_post_limit: q(8000, 1),
        any_limit: q(20000, 1),
        ..SimConfig::default()
    }
}

impl Env {
    pub async fn new(config: SimConfig) -> Env {
        Env {
            sim: graph_sim::start(config).await.expect("simulator starts"),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A simulator serving many tenants, one per config.
    pub async fn fleet(configs: Vec<SimConfig>) -> Env {
        Env {
            sim: graph_sim::start_fleet("127.0.0.1:0".parse().expect("address"), configs)
                .await
                .expect("simulator starts"),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The simulator's tenants as a tenants file (`tenant_id,name`).
    pub fn tenants_csv(&self) -> PathBuf {
        let p = self.path("tenants.csv");
        let mut text = String::from("tenant_id,name\n");
        for (id, name, _) in self.sim.tenants() {
            text.push_str(&format!("{id},{name}\n"));
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Starts `intune-rotate ARGS` (with the connection options) and kills it with SIGKILL once
    /// `at` says so, or at the limit; returns whether it was killed.
    pub async fn run_killed(
        &self,
        args: &[&str],
        at: impl Fn(Duration) -> bool + Send + 'static,
    ) -> bool {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(self.connection_args());
        let secret = self.sim.config().client_secret.clone();
        tokio::task::spawn_blocking(move || {
            let mut child = command(&all, Some(secret)).spawn().expect("binary runs");
            let start = std::time::Instant::now();
            while start.elapsed() < KILL_POINT_LIMIT && !at(start.elapsed()) {
                if child.try_wait().expect("wait").is_some() {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
            true
        })
        .await
        .expect("join")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the simulator's own device export, as an admin would download it.
    pub fn devices_csv(&self) -> PathBuf {
        let p = self.path("devices.csv");
        std::fs::write(&p, self.sim.tenant().devices_csv()).unwrap();
        p
    }

    /// `intune-rotate rotate --input CSV --ledger LEDGER --yes EXTRA...` against the simulator.
    pub async fn rotate(&self, csv: &Path, ledger: &Path, extra: &[&str]) -> Output {
        let (csv, ledger) = (s(csv), s(ledger));
        let mut args = vec!["rotate", "--input", &csv, "--ledger", &ledger, "--yes"];
        args.extend_from_slice(extra);
        self.run(&args).await
    }

    /// [`rotate_tenants_args`], run: a run over many tenants, each tenant's source its own query.
    pub async fn rotate_tenants(&self, tenants: &Path, run_dir: &Path, extra: &[&str]) -> Output {
        let args = rotate_tenants_args(tenants, run_dir, extra);
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .await
    }

    /// `resume --ledger LEDGER --yes` with `extra`.
    pub async fn resume(&self, ledger: &Path, extra: &[&str]) -> Output {
        let ledger = s(ledger);
        let mut args = vec!["resume", "--ledger", &ledger, "--yes"];
        args.extend_from_slice(extra);
        self.run(&args).await
    }

    /// `status --ledger LEDGER --json`, parsed.
    pub async fn status_json(&self, ledger: &Path) -> serde_json::Value {
        let st = self
            .run(&["status", "--ledger", &s(ledger), "--json"])
            .await;
        serde_json::from_slice(&st.stdout).expect("status --json")
    }

    /// Starts `rotate` like [`Env::rotate`] and kills it with SIGKILL after `after` (or lets it finish
    /// first). Returns whether it was killed.
    pub async fn rotate_killed(
        &self,
        csv: &Path,
        ledger: &Path,
        extra: &[&str],
        at: KillAt,
    ) -> bool {
        let (args, secret) = self.rotate_command(csv, ledger, extra);
        let ledger = ledger.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let mut child = command(&args, Some(secret)).spawn().expect("binary runs");
            let start = std::time::Instant::now();
            // Bounded: a run that never reaches the kill point is killed at the limit all the same.
            while start.elapsed() < KILL_POINT_LIMIT && !at.reached(start.elapsed(), &ledger) {
                if child.try_wait().expect("wait").is_some() {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
            true
        })
        .await
        .expect("join")
    }

    /// Starts `rotate` and sends it SIGINT (Ctrl-C) once `at` is reached; returns its output.
    pub async fn rotate_interrupted(
        &self,
        csv: &Path,
        ledger: &Path,
        extra: &[&str],
        at: KillAt,
    ) -> Output {
        self.rotate_signalled(csv, ledger, extra, at, "INT").await
    }

    /// Starts `rotate` and sends it `signal` (`INT`, `TERM`, `HUP`) once `at` is reached; returns
    /// its output.
    pub async fn rotate_signalled(
        &self,
        csv: &Path,
        ledger: &Path,
        extra: &[&str],
        at: KillAt,
        signal: &'static str,
    ) -> Output {
        let (args, secret) = self.rotate_command(csv, ledger, extra);
        let ledger = ledger.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let child = command(&args, Some(secret))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("binary runs");
            let pid = child.id().to_string();
            std::thread::spawn(move || {
                let start = std::time::Instant::now();
                while start.elapsed() < KILL_POINT_LIMIT && !at.reached(start.elapsed(), &ledger) {
                    std::thread::sleep(Duration::from_millis(2));
                }
                let _ = std::process::Command::new("kill")
                    .args([&format!("-{signal}"), &pid])
                    .status();
            });
            wait_bounded(child, Duration::from_secs(120))
        })
        .await
        .expect("join")
    }

    /// The arguments of [`Env::rotate`] with the connection, and the client secret, for a child
    /// started by hand.
    fn rotate_command(&self, csv: &Path, ledger: &Path, extra: &[&str]) -> (Vec<String>, String) {
        let mut args: Vec<String> = [
            "rotate",
            "--input",
            &s(csv),
            "--ledger",
            &s(ledger),
            "--yes",
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        args.extend(self.connection_args());
        (args, self.sim.config().client_secret.clone())
    }

    /// `--tenant`, `--client-id`, `--graph-url`, `--login-url` for the simulator.
    pub fn connection_args(&self) -> Vec<String> {
        let c = self.sim.config();
        let url = &self.sim.base_url;
        [
            "--tenant",
            &c.tenant,
            "--client-id",
            &c.client_id,
            "--graph-url",
            url,
            "--login-url",
            url,
        ]
        .map(String::from)
        .to_vec()
    }

    /// `resume --ledger LEDGER --yes` with the simulator's client secret.
    pub async fn rotate_resume_with_secret(&self, ledger: &Path) -> Output {
        self.run(&["resume", "--ledger", &s(ledger), "--yes"]).await
    }

    /// Runs `intune-rotate ARGS` with connection options for the simulator; bounded by a timeout.
    pub async fn run(&self, args: &[&str]) -> Output {
        let secret = self.sim.config().client_secret.clone();
        self.run_with(args, Some(secret), &[]).await
    }

    /// As [`Env::run`], with `AZURE_CLIENT_SECRET` set to `secret` (or unset) and more variables.
    pub async fn run_with(
        &self,
        args: &[&str],
        secret: Option<String>,
        envs: &[(&str, &str)],
    ) -> Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let talks_to_graph = matches!(
            args.first(),
            Some(&"rotate")
                | Some(&"resume")
                | Some(&"whoami")
                | Some(&"doctor")
                | Some(&"devices")
                | Some(&"verify")
        );
        if talks_to_graph {
            all.extend(self.connection_args());
        }
        let envs = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        run_plain(all, secret, envs).await
    }

    /// Like [`Env::run`], with every file the binary writes limited to `max_file_bytes`: a write
    /// past it fails (EFBIG) as a write to a full disk fails (ENOSPC), through the same error path.
    pub async fn run_with_file_limit(&self, args: &[&str], max_file_bytes: u64) -> Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(self.connection_args());
        // SIGXFSZ ignored (inherited through exec), so the write returns an error instead of
        // killing the process.
        let wrapper = [
            "sh",
            "-c",
            "trap '' XFSZ; exec prlimit --fsize=\"$0\" -- \"$@\"",
            &max_file_bytes.to_string(),
        ]
        .map(String::from)
        .to_vec();
        let secret = Some(self.sim.config().client_secret.clone());
        run_under(wrapper, all, secret, Vec::new()).await
    }
}

pub async fn run_plain(
    args: Vec<String>,
    secret: Option<String>,
    envs: Vec<(String, String)>,
) -> Output {
    run_under(Vec::new(), args, secret, envs).await
}

/// Like [`run_plain`], the binary started through `wrapper` (for example `prlimit`).
pub async fn run_under(
    wrapper: Vec<String>,
    args: Vec<String>,
    secret: Option<String>,
    envs: Vec<(String, String)>,
) -> Output {
    tokio::task::spawn_blocking(move || {
        let child = command_under(&wrapper, &args, secret)
            .envs(envs)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("binary runs");
        wait_bounded(child, Duration::from_secs(240))
    })
    .await
    .expect("join")
}

/// The binary with a clean environment: only the secret given, logs at warn.
fn command(args: &[String], secret: Option<String>) -> std::process::Command {
    command_under(&[], args, secret)
}

/// The binary started through `wrapper` (a program and its arguments, the binary's path after them).
fn command_under(
    wrapper: &[String],
    args: &[String],
    secret: Option<String>,
) -> std::process::Command {
    let bin = env!("CARGO_BIN_EXE_intune-rotate");
    let mut cmd = match wrapper.split_first() {
        None => std::process::Command::new(bin),
        Some((program, rest)) => {
            let mut c = std::process::Command::new(program);
            c.args(rest).arg(bin);
            c
        }
    };
    cmd.args(args)
        .env_remove("GRAPH_ACCESS_TOKEN")
        .env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("INTUNE_ROTATE_PROFILE")
        .env_remove("INTUNE_ROTATE_CONFIG")
        .env("RUST_LOG", "warn");
    // Nothing of the machine's own sign-in reaches a test, and IMDS is never 169.254.169.254:
    // `auto` probes a loopback port nothing listens on instead.
    for var in [
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_FEDERATED_TOKEN_FILE",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "IMDS_ENDPOINT",
        "MSI_ENDPOINT",
        "AZURE_TOKEN_CREDENTIALS",
        "INTUNE_ROTATE_TEST_ARC_KEY_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("INTUNE_ROTATE_TEST_IMDS_URL", CLOSED_IMDS);
    match secret {
        Some(s) => cmd.env("AZURE_CLIENT_SECRET", s),
        None => cmd.env_remove("AZURE_CLIENT_SECRET"),
    };
    cmd.stdin(std::process::Stdio::null());
    cmd
}

/// A loopback address nothing answers on, standing in for IMDS.
pub const CLOSED_IMDS: &str = "http://127.0.0.1:9/metadata/identity/oauth2/token";

/// The longest a kill point is waited for before the signal goes anyway.
const KILL_POINT_LIMIT: Duration = Duration::from_secs(60);

/// When a test stops a run from outside: at a time, or once the ledger shows how far it got.
#[derive(Debug, Clone, Copy)]
pub enum KillAt {
    /// After this much wall time (anywhere: pre-flight, planning, sending).
    After(Duration),
    /// As soon as the ledger holds this many `sent` rows: written ahead, so at least the last of
    /// them is on the wire or about to be, whatever the machine's speed.
    SentRows(usize),
}

impl KillAt {
    fn reached(self, elapsed: Duration, ledger: &Path) -> bool {
        match self {
            KillAt::After(t) => elapsed >= t,
            KillAt::SentRows(n) => std::fs::read(ledger).is_ok_and(|bytes| {
                bytes
                    .split(|&b| b == b'\n')
                    .filter(|l| l.starts_with(br#"{"type":"sent""#))
                    .count()
                    >= n
            }),
        }
    }
}

/// Waits for the child, reading its output as it comes (a full pipe would block it), killing it
/// after `limit`.
fn wait_bounded(child: std::process::Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("output"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("intune-rotate did not finish within {limit:?}");
        }
    }
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Macs a FileVault plan sends to in the simulator's truth.
pub fn eligible_macs(env: &Env) -> Vec<String> {
    env.sim
        .tenant()
        .devices
        .iter()
        .filter(|d| sendable(d, "filevault"))
        .map(|d| d.id.clone())
        .collect()
}

/// Whether a plan for `action` (its CLI name) sends to `d`, worked out here from the simulator's
/// raw properties and the documented rules (docs/eligibility.md), not from the engine's code.
pub fn sendable(d: &graph_sim::Device, action: &str) -> bool {
    let joined = d.join_type == "azureADJoined" || d.join_type == "hybridAzureADJoined";
    let part = |i: usize| -> u32 {
        d.os_version
            .split('.')
            .nth(i)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    };
    // One of our requests from an earlier run (the simulator's seed, hours ago) still pending:
    // skipped by default.
    let now = std::time::SystemTime::now();
    let pending = |graph: &str| {
        d.action_results.iter().any(|r| {
            r.action_name == graph
                && r.completes > now
                && r.started + std::time::Duration::from_secs(3600) < now
        })
    };
    // Graph's `unknown` (join type, ownership) is skipped under strict eligibility.
    let known = !d.reports_unknown;
    match action {
        "filevault" => {
            d.os == "macOS"
                && d.encrypted
                && known
                && d.owner == "company"
                && d.filevault_state == "success"
                && !pending("rotateFileVaultKey")
        }
        "recovery-lock" => {
            d.os == "macOS"
                && d.supervised
                && d.architecture == "arm64"
                && (part(0), part(1)) >= (11, 5)
        }
        "bitlocker" => d.os == "Windows" && d.encrypted && known && joined && part(2) >= 18363,
        "laps" => d.os == "Windows" && known && joined,
        other => panic!("unknown action {other}"),
    }
}

/// `rotate --query --tenants TENANTS --run-dir RUN_DIR --yes EXTRA...`: the command line of a run
/// over many tenants, for [`Env::rotate_tenants`] and for the runs a test kills or times.
pub fn rotate_tenants_args(tenants: &Path, run_dir: &Path, extra: &[&str]) -> Vec<String> {
    let fixed = [
        "rotate",
        "--query",
        "--tenants",
        &s(tenants),
        "--run-dir",
        &s(run_dir),
        "--yes",
    ]
    .map(str::to_string);
    fixed
        .into_iter()
        .chain(extra.iter().map(|a| a.to_string()))
        .collect()
}

pub fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A tenant of the simulator: its own id, name and seed.
pub fn tenant(i: u64, base: SimConfig) -> SimConfig {
    SimConfig {
        tenant: format!("7e0a{i:04x}-5e1f-4c8e-9a61-{i:012x}"),
        tenant_name: format!("Customer {i:02}"),
        seed: 100 + i,
        ..base
    }
}
