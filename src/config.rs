//! Profiles: an optional TOML file of named settings (tenant, client id, certificate, cloud, rate,
//! ledger directory), at `intune-rotate/config.toml` under the platform's configuration directory
//! (`XDG_CONFIG_HOME` on Linux) or wherever `INTUNE_ROTATE_CONFIG` points. A flag beats the
//! environment, which beats the profile. A profile never holds a secret.

use crate::cli::{Cli, Command, Connection};
use anyhow::{Context, anyhow, bail};
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The variable that names another configuration file.
pub const CONFIG_VAR: &str = "INTUNE_ROTATE_CONFIG";

/// One named set of defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub certificate: Option<PathBuf>,
    /// The credential kind (`managed-identity`, `workload-identity`, …); never a secret.
    pub credential: Option<String>,
    pub cloud: Option<String>,
    pub rate: Option<String>,
    pub ledger_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// Where the configuration file is: the variable's path, or the platform's default.
pub fn path() -> Option<PathBuf> {
    match std::env::var_os(CONFIG_VAR) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => directories::BaseDirs::new()
            .map(|d| d.config_dir().join("intune-rotate").join("config.toml")),
    }
}

/// Line and column of a byte offset, for errors.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Reads the file: `None` when there is none (an explicit `INTUNE_ROTATE_CONFIG` must exist). A
/// secret anywhere in it is refused, naming the line.
pub fn load() -> anyhow::Result<Option<(PathBuf, BTreeMap<String, Profile>)>> {
    let Some(path) = path() else { return Ok(None) };
    let explicit = std::env::var_os(CONFIG_VAR).is_some_and(|p| !p.is_empty());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) => return Err(anyhow!(e)).with_context(|| format!("{}", path.display())),
    };
    refuse_secrets(&path, &text)?;
    let file: File = toml::from_str(&text).map_err(|e| {
        let (line, col) = e.span().map_or((1, 1), |s| line_col(&text, s.start));
        anyhow!(
            "{}: line {line}, column {col}: {}",
            path.display(),
            e.message()
        )
    })?;
    Ok(Some((path, file.profiles)))
}

/// A key that would hold a secret is refused wherever it is: secrets come from the environment, a
/// file of their own, or a certificate, never from a profile.
fn refuse_secrets(path: &Path, text: &str) -> anyhow::Result<()> {
    for (n, line) in text.lines().enumerate() {
        let key = line
            .split('=')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if ["client_secret", "secret", "access_token", "password"]
            .iter()
            .any(|k| key.eq_ignore_ascii_case(k))
        {
            bail!(
                "{}: line {}: `{key}` is refused: a profile never holds a secret; set AZURE_CLIENT_SECRET or pass --client-secret-file",
                path.display(),
                n + 1
            );
        }
    }
    Ok(())
}

/// Where a setting's value came from, for `config show`.
#[derive(Debug, Clone)]
pub enum Origin {
    Flag,
    Environment,
    Profile(String),
    Default,
    Unset,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag => write!(f, "flag"),
            Origin::Environment => write!(f, "environment"),
            Origin::Profile(p) => write!(f, "profile {p}"),
            Origin::Default => write!(f, "default"),
            Origin::Unset => write!(f, "not set"),
        }
    }
}

fn source(m: &ArgMatches, id: &str) -> Option<ValueSource> {
    m.try_get_raw(id).ok().flatten()?;
    m.value_source(id)
}

/// Fills what neither a flag nor the environment gave from the chosen profile; returns where each
/// connection setting came from.
pub fn apply(cli: &mut Cli, matches: &ArgMatches) -> anyhow::Result<Vec<(String, String, Origin)>> {
    let loaded = load()?;
    let sub = matches.subcommand().map(|(_, m)| m);
    let chosen = cli.profile.clone();
    let profile: Option<(String, Profile)> = match (&chosen, &loaded) {
        (None, _) => None,
        (Some(name), Some((path, profiles))) => match profiles.get(name) {
            Some(p) => Some((name.clone(), p.clone())),
            None => bail!(
                "{}: no profile {name:?} (profiles: {})",
                path.display(),
                profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        },
        (Some(name), None) => bail!(
            "--profile {name}: no configuration file ({} or {CONFIG_VAR})",
            path().map(|p| p.display().to_string()).unwrap_or_default()
        ),
    };
    let (conn, rate, ledger): (
        Option<&mut Connection>,
        Option<&mut graph_batch::Quota>,
        Option<&mut Option<PathBuf>>,
    ) = match &mut cli.command {
        Command::Rotate(a) => {
            let a = &mut **a;
            (
                Some(&mut a.connection),
                Some(&mut a.dispatch.rate),
                Some(&mut a.ledger),
            )
        }
        Command::Resume(a) => (Some(&mut a.connection), Some(&mut a.dispatch.rate), None),
        Command::Verify(a) => (Some(&mut a.connection), None, None),
        Command::Whoami(a) => (Some(&mut a.connection), None, None),
        Command::Doctor(a) => (Some(&mut a.connection), None, None),
        Command::Devices(a) => (Some(&mut a.connection), None, None),
        Command::Config(a) => (Some(&mut a.connection), Some(&mut a.rate), None),
        _ => (None, None, None),
    };
    let mut shown = Vec::new();
    let Some(conn) = conn else { return Ok(shown) };
    let m = sub.expect("a subcommand was parsed");
    let p = profile.as_ref().map(|(_, p)| p.clone()).unwrap_or_default();
    let pname = profile.as_ref().map(|(n, _)| n.clone()).unwrap_or_default();
    let origin = |id: &str, from_profile: bool| match source(m, id) {
        Some(ValueSource::CommandLine) => Origin::Flag,
        Some(ValueSource::EnvVariable) => Origin::Environment,
        Some(ValueSource::DefaultValue) if from_profile => Origin::Profile(pname.clone()),
        Some(ValueSource::DefaultValue) => Origin::Default,
        _ if from_profile => Origin::Profile(pname.clone()),
        _ => Origin::Unset,
    };
    let given = |id: &str| {
        matches!(
            source(m, id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let mut take = |id: &str, field: &mut Option<String>, value: &Option<String>| {
        let from_profile = !given(id) && value.is_some();
        if from_profile {
            field.clone_from(value);
        }
        shown.push((
            id.to_string(),
            field.clone().unwrap_or_default(),
            origin(id, from_profile),
        ));
    };
    take("tenant", &mut conn.tenant, &p.tenant);
    take("client_id", &mut conn.client_id, &p.client_id);
    let cert = p.certificate.as_ref().map(|c| c.display().to_string());
    let mut certificate = conn.certificate.as_ref().map(|c| c.display().to_string());
    take("certificate", &mut certificate, &cert);
    conn.certificate = certificate.map(PathBuf::from);
    let from_profile = !given("credential") && p.credential.is_some();
    if let (true, Some(text)) = (from_profile, &p.credential) {
        conn.credential = Some(
            crate::cli::parse_credential(text)
                .map_err(|e| anyhow!("profile {pname}: credential: {e}"))?,
        );
    }
    shown.push((
        "credential".into(),
        match conn.credential {
            None | Some(crate::cli::CredentialChoice::Auto) => "auto".into(),
            Some(crate::cli::CredentialChoice::Only(k)) => k.name().into(),
        },
        origin("credential", from_profile),
    ));
    let from_profile = !given("cloud") && p.cloud.is_some();
    if let (true, Some(text)) = (from_profile, &p.cloud) {
        conn.cloud = text
            .parse()
            .map_err(|e: String| anyhow!("profile {pname}: {e}"))?;
    }
    shown.push((
        "cloud".into(),
        conn.cloud.to_string(),
        origin("cloud", from_profile),
    ));
    if let Some(rate) = rate {
        let from_profile = !given("rate") && p.rate.is_some();
        if from_profile {
            let text = p.rate.clone().unwrap_or_default();
            *rate = text
                .parse()
                .map_err(|e| anyhow!("profile {pname}: rate {text:?}: {e}"))?;
        }
        shown.push((
            "rate".into(),
            rate.to_string(),
            origin("rate", from_profile),
        ));
    }
    if let (Some(ledger), Some(dir)) = (ledger, &p.ledger_dir)
        && let Some(l) = ledger.as_mut()
        && l.is_relative()
    {
        *l = dir.join(&*l);
        shown.push((
            "ledger".into(),
            l.display().to_string(),
            Origin::Profile(pname.clone()),
        ));
    }
    Ok(shown)
}

/// `intune-rotate config show`.
pub fn show(shown: &[(String, String, Origin)]) {
    match path() {
        Some(p) if p.exists() => println!("config file  {}", p.display()),
        Some(p) => println!("config file  {} (none there)", p.display()),
        None => println!("config file  none (no configuration directory)"),
    }
    for (name, value, origin) in shown {
        let value = if value.is_empty() {
            "-"
        } else {
            value.as_str()
        };
        println!("{name:<12} {value:<44} ({origin})");
    }
}
