//! Telling people the outcome: the Teams card's envelope, shape and size, its cut failure list,
//! one retry after a 429, a failed notification that leaves the exit code alone, and the mail
//! through Graph's sendMail with its permission checked first.

use crate::util::*;
use graph_sim::SimConfig;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// A loopback stand-in for a Teams Workflows webhook: it answers with `statuses` in turn (the last
/// one from then on) and keeps every body it was sent.
struct Hook {
    url: String,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
    _task: tokio::task::JoinHandle<()>,
}

async fn hook(statuses: &[u16]) -> Hook {
    let got: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let (kept, statuses) = (got.clone(), statuses.to_vec());
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let kept = kept.clone();
        let statuses = statuses.clone();
        async move {
            let mut k = kept.lock().unwrap();
            k.push(body.to_vec());
            let status = statuses[(k.len() - 1).min(statuses.len() - 1)];
            let mut resp = axum::response::Response::new(axum::body::Body::empty());
            *resp.status_mut() = axum::http::StatusCode::from_u16(status).unwrap();
            if status == 429 {
                resp.headers_mut()
                    .insert("Retry-After", "1".parse().unwrap());
            }
            resp
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/workflows/7c1d/triggers/manual/paths/invoke?api-version=1&sig=sample-signature-0f3a",
        listener.local_addr().unwrap()
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Hook {
        url,
        got,
        _task: task,
    }
}

impl Hook {
    fn cards(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect()
    }
}

fn summary(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every text of the card, joined.
fn card_text(card: &Value) -> String {
    let mut out = String::new();
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(card, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_posts_an_adaptive_card_in_teams_envelope_with_its_counts() {
    let env = Env::new(fast(200)).await;
    let hook = hook(&[202]).await;
    let (csv, ledger, sum) = (
        env.devices_csv(),
        env.path("run.jsonl"),
        env.path("summary.json"),
    );
    let o = env
        .rotate(
            &csv,
            &ledger,
            &[
                "--rate",
                "4000/1s",
                "--notify",
                &hook.url,
                "--summary-json",
                &s(&sum),
            ],
        )
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let cards = hook.cards();
    assert_eq!(cards.len(), 1, "one post");
    let card = &cards[0];
    assert_eq!(card["type"], "message");
    let a = &card["attachments"][0];
    assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
    assert!(a["contentUrl"].is_null());
    assert_eq!(a["content"]["type"], "AdaptiveCard");
    assert!(hook.got.lock().unwrap()[0].len() <= 28 * 1024);
    let text = card_text(card);
    let rotated = eligible_macs(&env).len();
    for want in [
        "FileVault recovery key",
        "Rotated",
        &rotated.to_string(),
        &s(&ledger),
        "Exit code",
        "Duration",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    assert!(
        !text.contains(&env.sim.config().client_secret),
        "no secret in the card"
    );
    let doc = summary(&sum);
    assert_eq!(doc["notify"][0]["ok"], true, "{doc}");
    let target = doc["notify"][0]["target"].as_str().unwrap();
    assert!(
        target.ends_with("/workflows/7c1d/triggers/manual/paths/invoke"),
        "{target}"
    );
    assert!(
        !doc.to_string().contains("sample-signature"),
        "the webhook's signature is never written"
    );
    assert!(!stderr(&o).contains("sample-signature"));
}

/// A list of `n` Macs no tenant knows: every one fails with Graph's 404.
fn unknown_macs(env: &Env, n: usize) -> std::path::PathBuf {
    let text = std::fs::read_to_string(env.devices_csv()).unwrap();
    let header = text.lines().next().unwrap().to_string();
    let columns = header.split(',').count();
    let col = |name: &str| header.split(',').position(|h| h == name).unwrap();
    let mut out = format!("{header}\n");
    for i in 0..n {
        let mut row = vec![String::new(); columns];
        row[0] = format!("6d1f0000-0000-4000-8000-{i:012x}");
        row[col("Device name")] = format!("MAC-LAB-{i:05}");
        row[col("OS")] = "macOS".into();
        row[col("Ownership")] = "Corporate".into();
        row[col("Encrypted")] = "Yes".into();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    let p = env.path("unknown.csv");
    std::fs::write(&p, out).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_failure_list_is_cut_to_fit_teams_limit_and_says_so() {
    let env = Env::new(fast(10)).await;
    let hook = hook(&[202]).await;
    let csv = unknown_macs(&env, 1500);
    let o = env
        .rotate(
            &csv,
            &env.path("run.jsonl"),
            &["--rate", "4000/1s", "--notify", &hook.url],
        )
        .await;
    assert_eq!(code(&o), 1, "every device failed: {}", stderr(&o));
    let bytes = hook.got.lock().unwrap()[0].len();
    assert!(bytes <= 28 * 1024, "{bytes} bytes");
    assert!(bytes > 20 * 1024, "the list filled the card: {bytes} bytes");
    let text = card_text(&hook.cards()[0]);
    assert!(
        text.contains("MAC-LAB-00000"),
        "the first failures are listed"
    );
    assert!(
        text.contains("more failed devices, cut to stay under Teams' 28 KB limit"),
        "{text}"
    );
    assert!(
        text.contains("ResourceNotFound") || text.contains("NotFound"),
        "failures by code: {text}"
    );
    assert!(
        stderr(&o).contains("cut to stay under Teams' 28 KB limit"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_from_the_webhook_is_retried_once() {
    let env = Env::new(fast(50)).await;
    let hook = hook(&[429, 202]).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let o = env
        .rotate(&csv, &ledger, &["--rate", "4000/1s", "--notify", &hook.url])
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(hook.cards().len(), 2, "posted again after the 429");
    assert!(stderr(&o).contains("notified "), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_notification_is_recorded_and_leaves_the_exit_code_alone() {
    let env = Env::new(fast(50)).await;
    let hook = hook(&[500]).await;
    let (csv, ledger, sum) = (
        env.devices_csv(),
        env.path("run.jsonl"),
        env.path("summary.json"),
    );
    let o = env
        .rotate(
            &csv,
            &ledger,
            &[
                "--rate",
                "4000/1s",
                "--notify",
                &hook.url,
                "--summary-json",
                &s(&sum),
            ],
        )
        .await;
    assert_eq!(code(&o), 0, "the run's outcome stands: {}", stderr(&o));
    assert!(
        stderr(&o).contains("notifying") && stderr(&o).contains("HTTP 500"),
        "{}",
        stderr(&o)
    );
    let doc = summary(&sum);
    assert_eq!(doc["notify"][0]["ok"], false, "{doc}");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(hook.cards().len(), 1, "a 500 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_webhook_url_is_exit_2_before_anything_is_sent() {
    let env = Env::new(fast(50)).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let o = env
        .rotate(&csv, &ledger, &["--notify", "http://hooks.example/teams"])
        .await;
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("--notify"), "{}", stderr(&o));
    assert_eq!(env.sim.stats().devices_accepted(crate::ACTION), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outcome_is_mailed_through_send_mail_with_the_report_attached() {
    let env = Env::new(fast(100)).await;
    let (csv, ledger, sum) = (
        env.devices_csv(),
        env.path("run.jsonl"),
        env.path("summary.json"),
    );
    let from = env.sim.tenant().directory.users[0].upn.clone();
    let o = env
        .rotate(
            &csv,
            &ledger,
            &[
                "--rate",
                "4000/1s",
                "--notify-mail",
                "secops@example.com,it@example.com",
                "--notify-from",
                &from,
                "--notify-attach-report",
                "--summary-json",
                &s(&sum),
            ],
        )
        .await;
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mail: Value = reqwest::get(format!("{}/_sim/mail", env.sim.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let m = &mail[0]["message"];
    assert_eq!(mail[0]["from_mailbox"], from.as_str());
    assert!(
        m["subject"]
            .as_str()
            .unwrap()
            .contains("FileVault recovery key rotation")
    );
    assert_eq!(m["body"]["contentType"], "HTML");
    assert!(m["body"]["content"].as_str().unwrap().contains("Rotated"));
    assert_eq!(m["toRecipients"].as_array().unwrap().len(), 2);
    assert_eq!(m["attachments"][0]["name"], "intune-rotate-report.html");
    assert_eq!(summary(&sum)["notify"][0]["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_mail_send_a_mailed_run_exits_3_naming_it_and_sends_nothing() {
    let mut roles: Vec<String> = graph_sim::ALL_ROLES.iter().map(|r| r.to_string()).collect();
    roles.retain(|r| r != "Mail.Send");
    let env = Env::new(SimConfig { roles, ..fast(50) }).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let o = env
        .rotate(
            &csv,
            &ledger,
            &[
                "--notify-mail",
                "secops@example.com",
                "--notify-from",
                "user00000@example.com",
            ],
        )
        .await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("Mail.Send"), "{}", stderr(&o));
    assert_eq!(
        env.sim.stats().devices_accepted(crate::ACTION),
        0,
        "nothing sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_sign_in_still_tells_the_webhook_why() {
    let env = Env::new(fast(50)).await;
    let hook = hook(&[202]).await;
    let (csv, ledger) = (env.devices_csv(), env.path("run.jsonl"));
    let args = [
        "rotate",
        "--input",
        &s(&csv),
        "--ledger",
        &s(&ledger),
        "--yes",
        "--notify",
        &hook.url,
    ];
    let o = env
        .run_with(&args, Some("not-the-secret".into()), &[])
        .await;
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let text = card_text(&hook.cards()[0]);
    assert!(text.contains("did not run to its end"), "{text}");
    assert!(text.contains("AADSTS7000215"), "the cause: {text}");
    assert!(!text.contains("not-the-secret"), "never the secret");
}
