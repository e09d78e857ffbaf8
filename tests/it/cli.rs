//! The conventions of the command line: completions, the manual page, profiles and their
//! precedence, output for scripts, and CSV for Excel.

use crate::util::*;

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn bash_completions_parse_and_the_manual_page_renders() {
    let o = run_plain(vec!["completions".into(), "bash".into()], None, Vec::new()).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("intune-rotate.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(out(&o).contains("rotate") && out(&o).contains("--run-dir"));
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let o = run_plain(vec!["completions".into(), shell.into()], None, Vec::new()).await;
        assert_eq!(code(&o), 0, "{shell}");
        assert!(!o.stdout.is_empty(), "{shell}");
    }
    let m = run_plain(vec!["man".into()], None, Vec::new()).await;
    assert_eq!(code(&m), 0);
    let roff = out(&m);
    assert!(
        roff.contains(".TH intune-rotate"),
        "{}",
        &roff[..200.min(roff.len())]
    );
    let page = dir.path().join("intune-rotate.1");
    std::fs::write(&page, &m.stdout).unwrap();
    // `man -l` where the machine has man; the roff itself is checked above either way.
    if let Ok(r) = std::process::Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .output()
    {
        assert!(
            r.status.success(),
            "man -l: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(String::from_utf8_lossy(&r.stdout).contains("intune-rotate"));
    }
}

fn config_env(dir: &std::path::Path, text: &str) -> Vec<(String, String)> {
    let file = dir.join("config.toml");
    std::fs::write(&file, text).unwrap();
    vec![("INTUNE_ROTATE_CONFIG".into(), file.display().to_string())]
}

#[tokio::test]
async fn a_profile_with_a_secret_is_refused_and_flags_beat_the_environment_beat_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let profile = "[profiles.contoso]\ntenant = \"7e0a0001-5e1f-4c8e-9a61-000000000001\"\nclient_id = \"from-profile\"\ncloud = \"usgov\"\nrate = \"100/20s\"\n";
    let show = |extra: &[&str]| {
        let mut a: Vec<String> = ["--profile", "contoso", "config", "show"]
            .map(String::from)
            .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let o = run_plain(show(&[]), None, config_env(dir.path(), profile)).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = out(&o);
    assert!(
        text.contains("from-profile") && text.contains("(profile contoso)"),
        "{text}"
    );
    assert!(text.contains("100/20s"), "{text}");
    // The environment beats the profile, a flag beats both.
    let mut envs = config_env(dir.path(), profile);
    envs.push(("AZURE_CLIENT_ID".into(), "from-env".into()));
    envs.push((
        "AZURE_TENANT_ID".into(),
        "7e0a0002-5e1f-4c8e-9a61-000000000002".into(),
    ));
    let o = run_plain(
        show(&["--tenant", "7e0a0003-5e1f-4c8e-9a61-000000000003"]),
        None,
        envs,
    )
    .await;
    let text = out(&o);
    let line = |k: &str| {
        text.lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("client_id").contains("from-env") && line("client_id").ends_with("(environment)"),
        "{text}"
    );
    assert!(
        line("tenant").contains("7e0a0003") && line("tenant").ends_with("(flag)"),
        "{text}"
    );
    assert!(line("cloud").ends_with("(profile contoso)"), "{text}");
    // A secret in the file: exit 2, naming the file and line, whatever the command.
    let with_secret = format!("{profile}client_secret = \"s3cr3t-value\"\n");
    let o = run_plain(show(&[]), None, config_env(dir.path(), &with_secret)).await;
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains("line 6") && err.contains("never holds a secret"),
        "{err}"
    );
    assert!(!err.contains("s3cr3t-value"), "the secret is not echoed");
    // An unknown profile names the ones there are.
    let o = run_plain(
        ["--profile", "fabrikam", "config", "show"]
            .map(String::from)
            .to_vec(),
        None,
        config_env(dir.path(), profile),
    )
    .await;
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("contoso"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_get_json_and_excel_gets_a_bom_and_crlf() {
    let env = Env::new(fast(60)).await;
    let (csv, ledger, x) = (
        env.devices_csv(),
        env.path("run.jsonl"),
        env.path("excel.csv"),
    );
    let o = env.rotate(&csv, &ledger, &["--rate", "4000/1s"]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let st = env
        .run(&["status", "--ledger", &s(&ledger), "--format", "json"])
        .await;
    let doc: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    for k in [
        "total", "rotated", "failed", "skipped", "pending", "in_doubt",
    ] {
        assert!(doc[k].is_u64(), "{k}: {doc}");
    }
    let w = env.run(&["whoami", "--format", "json"]).await;
    let who: serde_json::Value =
        serde_json::from_slice(&w.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&w)));
    assert_eq!(who["capabilities"]["filevault"]["allowed"], true, "{who}");
    let e = env
        .run(&[
            "export",
            "--ledger",
            &s(&ledger),
            "--excel",
            "--out",
            &s(&x),
        ])
        .await;
    assert_eq!(code(&e), 0, "{}", stderr(&e));
    let bytes = std::fs::read(&x).unwrap();
    assert!(bytes.starts_with("\u{feff}device_id,".as_bytes()));
    let lf = bytes.iter().filter(|&&b| b == b'\n').count();
    let crlf = bytes.windows(2).filter(|w| w == b"\r\n").count();
    assert!(
        lf > 60 && lf == crlf,
        "every line ends CRLF: {lf} LF, {crlf} CRLF"
    );
    let j = env
        .run(&[
            "export",
            "--ledger",
            &s(&ledger),
            "--excel",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(code(&j), 2, "--excel is CSV");
}

#[tokio::test]
async fn resume_of_a_ledger_that_is_not_there_is_bad_usage_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("lk.jsonl");
    let o = run_plain(
        vec!["resume".into(), "--ledger".into(), s(&missing)],
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("there is no ledger at"), "{err}");
    assert!(err.contains("lk.jsonl"), "{err}");
    assert_eq!(
        err.matches("No such file or directory").count(),
        0,
        "one sentence, not the OS error twice: {err}"
    );
}

#[tokio::test]
async fn rotate_help_groups_its_flags_under_headings() {
    let o = run_plain(vec!["rotate".into(), "--help".into()], None, Vec::new()).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let help = out(&o);
    // Each heading is a line of its own at the margin, ending in a colon; its flags follow it.
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            sections.push((line.trim_end_matches(':').to_string(), String::new()));
        } else if let Some((_, text)) = sections.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    let section = |heading: &str| {
        sections
            .iter()
            .find(|(h, _)| h == heading)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("rotate --help has a {heading:?} heading:\n{help}"))
    };
    for (heading, flag) in [
        ("Source", "--input"),
        ("Selection", "--exclude"),
        ("Many tenants", "--tenants"),
        ("Safety", "--dry-run"),
        ("Safety", "--limit"),
        ("Pacing", "--rate"),
        ("Credentials", "--client-id"),
    ] {
        assert!(
            section(heading).contains(&format!(" {flag} ")),
            "{flag} is under {heading}:\n{help}"
        );
    }
}
