//! Signing in without a stored secret: workload identity (a token file, GitHub Actions' OIDC
//! endpoint), managed identity (App Service, Arc, IMDS), the Azure CLI, and how `auto` chooses.

use crate::util::*;
use graph_sim::{ExpiresOnForm, IdentityConfig, SimConfig};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A sign-in test's run: the simulator's endpoints, no secret, and only the variables given.
struct SignIn<'e> {
    env: &'e Env,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    tenant_and_app: bool,
}

impl Env {
    fn sign_in<'e>(&'e self, args: &[&str]) -> SignIn<'e> {
        SignIn {
            env: self,
            args: args.iter().map(|a| a.to_string()).collect(),
            envs: Vec::new(),
            tenant_and_app: true,
        }
    }

    /// `rotate` of one Mac (a canary) from the tenant's list.
    fn canary(&self) -> SignIn<'_> {
        let csv = self.devices_csv();
        let ledger = self.path("canary.jsonl");
        let args = [
            "rotate",
            "--input",
            &s(&csv),
            "--ledger",
            &s(&ledger),
            "--yes",
            "--limit",
            "1",
        ];
        self.sign_in(&args)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url)
    }
}

impl SignIn<'_> {
    fn var(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.into(), v.into()));
        self
    }

    /// App Service's managed identity endpoint, with its header.
    fn app_service(self, header: &str) -> Self {
        let url = self.env.url("/_identity/token");
        self.var("IDENTITY_ENDPOINT", &url)
            .var("IDENTITY_HEADER", header)
    }

    fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }

    /// Without `--tenant` and `--client-id`, as a managed identity needs neither.
    fn no_app(mut self) -> Self {
        self.tenant_and_app = false;
        self
    }

    async fn run(self) -> Output {
        let mut all = self.args;
        let c = self.env.sim.config();
        let url = &self.env.sim.base_url;
        all.extend(["--graph-url", url, "--login-url", url].map(String::from));
        if self.tenant_and_app {
            all.extend(["--tenant", &c.tenant, "--client-id", &c.client_id].map(String::from));
        }
        run_plain(all, None, self.envs).await
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn get(url: &str) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// A federated assertion from the simulator's trusted issuer, with the claims in `query`.
async fn assertion(env: &Env, query: &str) -> PathBuf {
    let token = get(&env.url(&format!("/_sim/assertion?{query}"))).await;
    let p = env.path("federated.jwt");
    std::fs::write(&p, token).unwrap();
    p
}

fn rotated(env: &Env) -> usize {
    env.sim.stats().devices_accepted(crate::ACTION)
}

/// A canary signed in and rotated its one Mac; the rest stay pending (exit 1).
fn canary_rotated(o: &Output, env: &Env) {
    assert_eq!(code(o), 1, "the rest stay pending: {}", stderr(o));
    assert!(!stderr(o).contains("error"), "{}", stderr(o));
    assert_eq!(rotated(env), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_token_file_signs_in_and_rotates_a_canary() {
    let env = Env::new(fast(20)).await;
    let file = assertion(&env, "").await;
    let o = env
        .canary()
        .arg("--credential")
        .arg("workload-identity")
        .arg("--federated-token-file")
        .arg(&s(&file))
        .run()
        .await;
    canary_rotated(&o, &env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_federated_token_file_is_read_again_when_the_token_is_refreshed() {
    // Assertions live 4 s and the simulator rewrites the file every 2 s; access tokens live 2 s.
    // A run of several seconds signs in again with an assertion the first one could not be.
    let out_file = tempfile::tempdir().unwrap();
    let file = out_file.path().join("token");
    let config = SimConfig {
        token_lifetime: std::time::Duration::from_secs(2),
        post_limit: graph_sim::Quota::new(100, std::time::Duration::from_secs(1)),
        identity: IdentityConfig {
            federated_lifetime: std::time::Duration::from_secs(4),
            federated_token_out: Some(file.clone()),
            ..IdentityConfig::default()
        },
        ..fast(1000)
    };
    let env = Env::new(config).await;
    while !file.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let first = std::fs::read_to_string(&file).unwrap();
    let csv = env.devices_csv();
    let ledger = env.path("l.jsonl");
    let o = env
        .sign_in(&[
            "rotate",
            "--input",
            &s(&csv),
            "--ledger",
            &s(&ledger),
            "--yes",
            "--rate",
            "100/1s",
        ])
        .var("AZURE_FEDERATED_TOKEN_FILE", &s(&file))
        .run()
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_ne!(
        std::fs::read_to_string(&file).unwrap(),
        first,
        "the file was rewritten during the run"
    );
    assert!(
        env.sim.stats().token_requests >= 3,
        "signed in again: {}",
        env.sim.stats().token_requests
    );
    assert_eq!(rotated(&env), eligible_macs(&env).len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_actions_oidc_signs_in_under_auto() {
    let env = Env::new(fast(20)).await;
    let o = env
        .sign_in(&["whoami"])
        .var(
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            &env.url("/_gha/token?api-version=2.0"),
        )
        .var("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "sim-gha")
        .run()
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        out(&o).contains("credential   workload-identity"),
        "{}",
        out(&o)
    );
    let o = env
        .canary()
        .var(
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            &env.url("/_gha/token?api-version=2.0"),
        )
        .var("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "sim-gha")
        .run()
        .await;
    canary_rotated(&o, &env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_github_request_token_exits_3_naming_the_permission() {
    let env = Env::new(fast(20)).await;
    let o = env
        .canary()
        .var(
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            &env.url("/_gha/token?api-version=2.0"),
        )
        .var("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "not-the-jobs")
        .run()
        .await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("id-token: write"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("not-the-jobs"),
        "the request token is never shown"
    );
    assert_eq!(rotated(&env), 0, "nothing was sent");
}

async fn refused(query: &str, aadsts: &str) {
    let env = Env::new(fast(20)).await;
    let file = assertion(&env, query).await;
    let token = std::fs::read_to_string(&file).unwrap();
    let o = env
        .canary()
        .var("AZURE_FEDERATED_TOKEN_FILE", &s(&file))
        .run()
        .await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(aadsts),
        "names {aadsts}: {}",
        stderr(&o)
    );
    let head = &token[..token.find('.').unwrap() + 10];
    assert!(!stderr(&o).contains(head), "the assertion is never shown");
    assert_eq!(rotated(&env), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_assertion_exits_3_with_entras_code() {
    refused("expires_in=-120", "AADSTS700024").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_audience_exits_3_with_entras_code() {
    refused("aud=api://not-the-exchange", "AADSTS700212").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_subject_exits_3_with_entras_code() {
    refused(
        "sub=repo:example-org/other:ref:refs/heads/main",
        "AADSTS700213",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_service_managed_identity_is_chosen_by_auto_and_rotates() {
    let env = Env::new(fast(20)).await;
    let o = env
        .canary()
        .no_app()
        .app_service("sim-identity-header")
        .run()
        .await;
    canary_rotated(&o, &env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_assigned_identity_is_asked_for_by_client_id_and_an_unknown_one_exits_3() {
    let env = Env::new(fast(20)).await;
    let known = IdentityConfig::default().user_assigned.client_id;
    let run = |id: &str| {
        env.sign_in(&[
            "whoami",
            "--client-id",
            id,
            "--credential",
            "managed-identity",
        ])
        .no_app()
        .app_service("sim-identity-header")
        .run()
    };
    let o = run(&known).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        out(&o).contains(&format!("app          {known}")),
        "{}",
        out(&o)
    );
    let o = run("0b0b0b0b-0000-4000-8000-000000000000").await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("Identity not found"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_identity_header_exits_3_and_is_never_shown() {
    let env = Env::new(fast(20)).await;
    let o = env
        .canary()
        .no_app()
        .app_service("a-header-of-another-app")
        .run()
        .await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("HTTP 401"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("a-header-of-another-app"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arcs_challenge_is_answered_from_the_agents_folder() {
    let keys = tempfile::tempdir().unwrap();
    let config = SimConfig {
        identity: IdentityConfig {
            arc_key_dir: Some(keys.path().to_path_buf()),
            ..IdentityConfig::default()
        },
        ..fast(20)
    };
    let env = Env::new(config).await;
    let arc = |dir: &Path| {
        env.canary()
            .no_app()
            .var("IDENTITY_ENDPOINT", &env.url("/_arc/token"))
            .var("IMDS_ENDPOINT", &env.url("/"))
            .var("INTUNE_ROTATE_TEST_ARC_KEY_DIR", &s(dir))
            .run()
    };
    let elsewhere = tempfile::tempdir().unwrap();
    let o = arc(elsewhere.path()).await;
    assert_eq!(
        code(&o),
        3,
        "a key file outside the agent's folder is refused: {}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("not a .key file in the agent's folder"),
        "{}",
        stderr(&o)
    );
    let o = arc(keys.path()).await;
    canary_rotated(&o, &env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imds_answers_in_each_expiry_form() {
    for form in [
        ExpiresOnForm::Date,
        ExpiresOnForm::Epoch,
        ExpiresOnForm::Absent,
    ] {
        let config = SimConfig {
            identity: IdentityConfig {
                expires_on: form,
                ..IdentityConfig::default()
            },
            ..fast(20)
        };
        let env = Env::new(config).await;
        let o = env
            .sign_in(&["whoami"])
            .no_app()
            .var(
                "INTUNE_ROTATE_TEST_IMDS_URL",
                &env.url("/metadata/identity/oauth2/token"),
            )
            .run()
            .await;
        assert_eq!(code(&o), 0, "{form:?}: {}", stderr(&o));
        let text = out(&o);
        assert!(text.contains("credential   managed-identity"), "{text}");
        let left: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("token left   "))
            .and_then(|l| l.trim_end_matches(" min").parse().ok())
            .unwrap_or_else(|| panic!("{form:?}: {text}"));
        assert!((55..=60).contains(&left), "{form:?}: {left} min left");
        if form == ExpiresOnForm::Date {
            let o = env
                .canary()
                .no_app()
                .var(
                    "INTUNE_ROTATE_TEST_IMDS_URL",
                    &env.url("/metadata/identity/oauth2/token"),
                )
                .run()
                .await;
            canary_rotated(&o, &env);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_identity_endpoint_exits_3_naming_where_it_looked() {
    let env = Env::new(fast(20)).await;
    let o = env
        .canary()
        .no_app()
        .arg("--credential")
        .arg("managed-identity")
        .run()
        .await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no managed identity endpoint answered at http://127.0.0.1:9/"),
        "{}",
        stderr(&o)
    );
}

/// A stand-in `az` on PATH that prints `answer` (or fails as a signed-out CLI does), recording
/// its arguments.
fn stand_in_az(env: &Env, answer: Option<&str>) -> String {
    let bin = env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = match answer {
        Some(json) => {
            std::fs::write(bin.join("answer.json"), json).unwrap();
            "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\ncat \"$(dirname \"$0\")/answer.json\"\n".to_string()
        }
        None => "#!/bin/sh\necho \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n"
            .to_string(),
    };
    let az = bin.join("az");
    std::fs::write(&az, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

async fn user_token(env: &Env) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&get(&env.url("/_sim/user-token")).await).unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_azure_cli_signs_in_last_under_auto_and_says_what_it_passed_over() {
    let env = Env::new(fast(20)).await;
    let token = user_token(&env).await;
    let answer = serde_json::json!({
        "accessToken": token,
        "expiresOn": "2026-12-03 08:18:00.000000",
        "subscription": "00000000-0000-4000-8000-000000000001",
        "tenant": env.sim.config().tenant,
        "tokenType": "Bearer",
    });
    let path = stand_in_az(&env, Some(&answer.to_string()));
    let o = env
        .sign_in(&["whoami"])
        .no_app()
        .var("PATH", &path)
        .run()
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = out(&o);
    assert!(text.contains("credential   azure-cli"), "{text}");
    assert!(text.contains("kind         delegated"), "{text}");
    for kind in [
        "token-file",
        "secret",
        "workload-identity",
        "managed-identity",
    ] {
        assert!(
            text.contains(&format!("passed over {kind}")),
            "{kind}: {text}"
        );
    }
    let args = std::fs::read_to_string(env.path("bin").join("args")).unwrap();
    assert!(
        args.contains(
            "account get-access-token --output json --resource https://graph.microsoft.com"
        ),
        "{args}"
    );
    let o = env.canary().no_app().var("PATH", &path).run().await;
    canary_rotated(&o, &env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_out_azure_cli_exits_3_saying_az_login() {
    let env = Env::new(fast(20)).await;
    let path = stand_in_az(&env, None);
    let o = env.canary().no_app().var("PATH", &path).run().await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("run `az login`"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_takes_the_secret_before_a_managed_identity_unless_narrowed() {
    let env = Env::new(fast(20)).await;
    let secret = env.sim.config().client_secret.clone();
    let both = |narrow: Option<&str>| {
        let mut r = env.sign_in(&["whoami"]);
        if narrow.is_some() {
            // A managed identity takes --client-id as a user-assigned identity's.
            r = r.no_app();
        }
        let mut r = r
            .var("AZURE_CLIENT_SECRET", &secret)
            .app_service("sim-identity-header");
        if let Some(n) = narrow {
            r = r.var("AZURE_TOKEN_CREDENTIALS", n);
        }
        r.run()
    };
    let o = both(None).await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(out(&o).contains("credential   secret"), "{}", out(&o));
    let o = both(Some("ManagedIdentityCredential")).await;
    assert!(
        out(&o).contains("credential   managed-identity"),
        "{} {}",
        out(&o),
        stderr(&o)
    );
    let o = both(Some("prod-ish")).await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("AZURE_TOKEN_CREDENTIALS=\"prod-ish\""),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nothing_to_sign_in_with_auto_exits_2_listing_what_it_tried() {
    let env = Env::new(fast(20)).await;
    let o = env.canary().run().await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    for kind in [
        "secret",
        "workload-identity",
        "managed-identity",
        "azure-cli",
    ] {
        assert!(
            stderr(&o).contains(&format!("  {kind}: ")),
            "{kind}: {}",
            stderr(&o)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_names_the_credential_kind() {
    let env = Env::new(fast(20)).await;
    let config = env.path("config.toml");
    std::fs::write(
        &config,
        "[profiles.fleet]\ncredential = \"managed-identity\"\n",
    )
    .unwrap();
    let o = env
        .sign_in(&["whoami", "--profile", "fleet"])
        .no_app()
        .var("INTUNE_ROTATE_CONFIG", &s(&config))
        .var("AZURE_CLIENT_SECRET", "a-secret-auto-would-take-first")
        .var(
            "INTUNE_ROTATE_TEST_IMDS_URL",
            &env.url("/metadata/identity/oauth2/token"),
        )
        .run()
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        out(&o).contains("credential   managed-identity"),
        "{}",
        out(&o)
    );
    std::fs::write(&config, "[profiles.fleet]\ncredential = \"password\"\n").unwrap();
    let o = env
        .sign_in(&["whoami", "--profile", "fleet"])
        .var("INTUNE_ROTATE_CONFIG", &s(&config))
        .run()
        .await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertions_identity_headers_and_tokens_appear_in_no_output_or_ledger_at_trace_level() {
    let env = Env::new(fast(20)).await;
    let file = assertion(&env, "").await;
    let token = std::fs::read_to_string(&file).unwrap();
    let header = "identity-header-7f3c1e";
    let config = SimConfig {
        identity: IdentityConfig {
            header: header.into(),
            ..IdentityConfig::default()
        },
        ..fast(20)
    };
    let mi = Env::new(config).await;
    let runs = [
        env.canary()
            .var("AZURE_FEDERATED_TOKEN_FILE", &s(&file))
            .var("RUST_LOG", "trace")
            .run()
            .await,
        mi.canary()
            .no_app()
            .app_service(header)
            .var("RUST_LOG", "trace")
            .run()
            .await,
    ];
    let signature = token.rsplit('.').next().unwrap();
    for (o, e) in runs.iter().zip([&env, &mi]) {
        canary_rotated(o, e);
        let ledger = std::fs::read_to_string(e.path("canary.jsonl")).unwrap();
        for text in [stderr(o), out(o), ledger] {
            assert!(!text.contains(signature), "an assertion leaked");
            assert!(!text.contains(header), "the identity header leaked");
            assert!(
                !text.contains("eyJ0eXAiOiJKV1Qi") && !text.contains("eyJhbGciOiJIUzI1NiIs"),
                "a token leaked"
            );
        }
    }
}
