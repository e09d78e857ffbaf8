//! Credentials end to end: certificates in both signature styles, device code sign-in, refresh
//! during long runs, ready tokens that expire, endpoints, and secrets kept out of every output.

use crate::util::*;
use graph_sim::{Quota, SimConfig};
use std::time::Duration;

const ACTION: &str = "rotateFileVaultKey";

/// A throwaway RSA key and a self-signed certificate, made fresh for the test: (key PEM, cert PEM).
fn key_and_cert() -> (String, String) {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let pair = rcgen::KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["intune-rotate-test".into()])
        .unwrap()
        .self_signed(&pair)
        .unwrap();
    (pem, cert.pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_sign_in_with_either_signature_style_and_a_wrong_key_exits_3() {
    let (key, cert) = key_and_cert();
    let (other_key, _) = key_and_cert();
    let env = Env::new(SimConfig {
        certificate: Some(cert.clone()),
        ..fast(200)
    })
    .await;
    let csv = env.devices_csv();
    // Key first or certificate first: both are read.
    let good = env.path("app.pem");
    std::fs::write(&good, format!("{key}{cert}")).unwrap();
    let swapped = env.path("swapped.pem");
    std::fs::write(&swapped, format!("{cert}{key}")).unwrap();
    let wrong = env.path("wrong.pem");
    std::fs::write(&wrong, format!("{cert}{other_key}")).unwrap();
    let o = env
        .run_with(
            &[
                "rotate",
                "--input",
                &s(&csv),
                "--ledger",
                &s(&env.path("a.jsonl")),
                "--yes",
                "--rate",
                "4000/1s",
                "--certificate",
                &s(&good),
            ],
            None,
            &[],
        )
        .await;
    assert_eq!(code(&o), 0, "PS256: {}", stderr(&o));
    let o = env
        .run_with(
            &[
                "resume",
                "--ledger",
                &s(&env.path("a.jsonl")),
                "--yes",
                "--certificate",
                &s(&swapped),
                "--assertion-rs256",
            ],
            None,
            &[],
        )
        .await;
    assert_eq!(
        code(&o),
        0,
        "RS256 with the certificate first: {}",
        stderr(&o)
    );
    let before = env.sim.stats().requests;
    let o = env
        .run_with(
            &[
                "rotate",
                "--input",
                &s(&csv),
                "--ledger",
                &s(&env.path("b.jsonl")),
                "--yes",
                "--certificate",
                &s(&wrong),
            ],
            None,
            &[],
        )
        .await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("700027") && stderr(&o).contains("certificate"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        env.sim.stats().requests,
        before,
        "nothing sent with a refused certificate"
    );
    let o = env
        .run_with(
            &[
                "rotate",
                "--input",
                &s(&csv),
                "--ledger",
                &s(&env.path("c.jsonl")),
                "--yes",
                "--certificate",
                &s(&csv),
            ],
            None,
            &[],
        )
        .await;
    assert_eq!(code(&o), 2, "not a PEM: {}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_code_sign_in_prints_the_code_and_rotates() {
    let config = SimConfig {
        device_code_approve_after: Duration::from_millis(1200),
        ..fast(100)
    };
    let env = Env::new(config).await;
    let csv = env.devices_csv();
    let o = env
        .run_with(
            &[
                "rotate",
                "--input",
                &s(&csv),
                "--ledger",
                &s(&env.path("l.jsonl")),
                "--yes",
                "--rate",
                "4000/1s",
                "--device-code",
            ],
            None,
            &[],
        )
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("enter the code"),
        "the admin is told where to sign in: {}",
        stderr(&o)
    );
    assert_eq!(
        env.sim.stats().devices_accepted(ACTION),
        eligible_macs(&env).len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_longer_than_the_token_lifetime_refreshes_and_never_sends_an_expired_token() {
    let env = Env::new(short_lived_tokens()).await;
    let (csv, ledger) = (env.devices_csv(), env.path("l.jsonl"));
    let o = env.rotate(&csv, &ledger, &["--rate", "100/1s"]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let stats = env.sim.stats();
    assert!(
        stats.token_requests >= 2,
        "the token was refreshed mid-run ({} requests)",
        stats.token_requests
    );
    assert_eq!(
        stats.statuses.get(&401),
        None,
        "no request went out with an expired token"
    );
    assert_eq!(stats.devices_accepted(ACTION), eligible_macs(&env).len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_mid_run_is_absorbed_by_one_refresh() {
    // Tokens advertise an hour but are refused two seconds after issue; about five seconds of sending.
    let env = Env::new(SimConfig {
        revoke_tokens_after: Some(Duration::from_secs(2)),
        token_lifetime: Duration::from_secs(3599),
        devices: 1000,
        ..short_lived_tokens()
    })
    .await;
    let (csv, ledger) = (env.devices_csv(), env.path("l.jsonl"));
    let o = env.rotate(&csv, &ledger, &["--rate", "100/1s"]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let stats = env.sim.stats();
    assert!(
        stats.statuses.get(&401).copied().unwrap_or(0) > 0,
        "the service refused a token mid-run: {:?} {}",
        stats.statuses,
        stderr(&o)
    );
    assert_eq!(stats.devices_accepted(ACTION), eligible_macs(&env).len());
    assert_eq!(stats.devices_accepted_twice(ACTION), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_app_or_tenant_exits_3_with_its_own_message() {
    let env = Env::new(fast(10)).await;
    let csv = env.devices_csv();
    let url = env.sim.base_url.clone();
    for (tenant, client, expect) in [
        (env.sim.config().tenant.as_str(), "no-such-app", "700016"),
        (
            "00000000-0000-4000-8000-0000000000aa",
            "sim-client",
            "90002",
        ),
    ] {
        let args = [
            "rotate",
            "--input",
            &s(&csv),
            "--ledger",
            &s(&env.path(&format!("{expect}.jsonl"))),
            "--yes",
            "--tenant",
            tenant,
            "--client-id",
            client,
            "--graph-url",
            &url,
            "--login-url",
            &url,
        ];
        let o = run_plain(
            args.iter().map(|a| a.to_string()).collect(),
            Some("sim-secret".into()),
            Vec::new(),
        )
        .await;
        assert_eq!(code(&o), 3, "{}", stderr(&o));
        assert!(stderr(&o).contains(expect), "{}", stderr(&o));
    }
    assert_eq!(env.sim.stats().requests, 0, "no Graph request at all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_token_that_expires_mid_run_stops_cleanly_and_resume_finishes() {
    let env = Env::new(short_lived_tokens()).await;
    let (csv, ledger) = (env.devices_csv(), env.path("l.jsonl"));
    let token = issue_token(&env).await;
    let token_file = env.path("token.txt");
    std::fs::write(&token_file, &token).unwrap();
    let o = env
        .run_with(
            &[
                "rotate",
                "--input",
                &s(&csv),
                "--ledger",
                &s(&ledger),
                "--yes",
                "--rate",
                "100/1s",
                "--token-file",
                &s(&token_file),
            ],
            None,
            &[],
        )
        .await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("expired"), "{}", stderr(&o));
    let st = env
        .run(&["status", "--ledger", &s(&ledger), "--json"])
        .await;
    let doc: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert!(
        doc["rotated"].as_u64().unwrap() > 0 && doc["pending"].as_u64().unwrap() > 0,
        "{doc}"
    );
    let o = env.rotate_resume_with_secret(&ledger).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let stats = env.sim.stats();
    assert_eq!(stats.devices_accepted(ACTION), eligible_macs(&env).len());
    assert_eq!(stats.devices_accepted_twice(ACTION), 0);
}

/// Tokens that live two seconds, and a pace that makes a run outlast them.
fn short_lived_tokens() -> SimConfig {
    SimConfig {
        token_lifetime: Duration::from_secs(2),
        post_limit: Quota::new(100, Duration::from_secs(1)),
        tenant_post_limit: Quota::new(200, Duration::from_secs(1)),
        ..fast(1000)
    }
}

async fn issue_token(env: &Env) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = env.sim.config();
    let http = reqwest::Client::new();
    let v: serde_json::Value = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            env.sim.base_url, c.tenant
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_a_non_loopback_host_is_refused_before_connecting() {
    let env = Env::new(fast(10)).await;
    let csv = env.devices_csv();
    let args = [
        "rotate",
        "--input",
        &s(&csv),
        "--ledger",
        &s(&env.path("l.jsonl")),
        "--yes",
        "--tenant",
        "t",
        "--client-id",
        "c",
        "--graph-url",
        "http://graph.invalid",
        "--login-url",
        "http://graph.invalid",
    ];
    let o = run_plain(
        args.iter().map(|a| a.to_string()).collect(),
        Some("x".into()),
        Vec::new(),
    )
    .await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("loopback"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_tokens_appear_in_no_output_ledger_or_summary_even_at_trace_level() {
    let env = Env::new(SimConfig {
        client_secret: "s3cr3t-sample-value".into(),
        p429: 0.05,
        ..fast(150)
    })
    .await;
    let (csv, ledger, summary) = (
        env.devices_csv(),
        env.path("l.jsonl"),
        env.path("summary.json"),
    );
    let o = env
        .run_with(
            &[
                "rotate",
                "--input",
                &s(&csv),
                "--ledger",
                &s(&ledger),
                "--yes",
                "--rate",
                "4000/1s",
                "--summary-json",
                &s(&summary),
            ],
            Some("s3cr3t-sample-value".into()),
            &[("RUST_LOG", "trace")],
        )
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let token = issue_token(&env).await;
    let token_head = &token[..token.find('.').unwrap()];
    let everything = [
        String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr(&o),
        std::fs::read_to_string(&ledger).unwrap(),
        std::fs::read_to_string(&summary).unwrap(),
    ];
    assert!(everything[1].len() > 1000, "trace logging was on");
    for (what, text) in ["stdout", "stderr", "ledger", "summary"]
        .iter()
        .zip(&everything)
    {
        assert!(
            !text.contains("s3cr3t-sample-value"),
            "the secret leaked into {what}"
        );
        assert!(!text.contains(token_head), "a token leaked into {what}");
        assert!(
            !text.contains("Bearer "),
            "an Authorization header leaked into {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_lists_the_permissions_and_what_they_allow() {
    let env = Env::new(SimConfig {
        roles: vec!["DeviceManagementManagedDevices.ReadWrite.All".into()],
        ..fast(10)
    })
    .await;
    let o = env.run(&["whoami"]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(
            "filevault      missing DeviceManagementManagedDevices.PrivilegedOperations.All"
        ),
        "{out}"
    );
    assert!(out.contains("bitlocker      allowed"), "{out}");
    assert!(
        out.contains("group members  missing GroupMember.Read.All"),
        "{out}"
    );
    assert!(
        out.contains("group devices  missing Device.Read.All"),
        "{out}"
    );
    assert!(
        out.contains("entra audit    missing AuditLog.Read.All and Directory.Read.All"),
        "{out}"
    );
    assert!(!out.contains("audit log    "), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_says_how_long_entra_keeps_the_reads_of_secrets() {
    let env = Env::new(SimConfig {
        entra_license: graph_sim::EntraLicense::P1,
        ..fast(10)
    })
    .await;
    let o = env.run(&["whoami"]).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("entra audit    allowed"), "{out}");
    assert!(
        out.contains("audit log    Entra keeps 30 days of reads"),
        "{out}"
    );
}
