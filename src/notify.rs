//! Telling people the outcome: a Teams Workflows webhook (an Adaptive Card) and a mail through
//! Graph's `sendMail`. Notifying never changes a run's outcome or exit code: a failure is printed
//! and recorded in the summary, after one retry of a 429.

use crate::cli::Dispatch;
use crate::connect::Connected;
use crate::exit_status::ExitStatus;
use crate::failure::{Failure, failed, usage};
use anyhow::anyhow;
use graph_client::{ExposeSecret, GraphClient, GraphClientError, TokenClaims};
use rotation::{CARD_LIMIT, Notice};
use serde::Serialize;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// The permission `sendMail` needs.
pub const MAIL_SEND: rotation::Permission = rotation::Permission::MailSend;
/// The longest a 429's Retry-After is waited for before the one retry.
const RETRY_CAP: Duration = Duration::from_secs(60);
/// `sendMail` takes attachments up to 3 MB in the request itself.
const ATTACHMENT_LIMIT: usize = 3 * 1024 * 1024;

/// Whether the mail carries the HTML report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    Report,
    Nothing,
}

#[derive(Debug, Clone)]
struct Mail {
    to: Vec<String>,
    from: String,
    attach: Attach,
}

/// Where the outcome goes, checked before anything is sent.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    webhooks: Vec<url::Url>,
    mail: Option<Mail>,
}

/// One notification's result, as the summary records it.
#[derive(Debug, Clone, Serialize)]
pub struct Notified {
    /// The webhook's host and path (never its query, which holds the signature), or `mail`.
    pub target: String,
    pub ok: bool,
    pub detail: String,
}

impl Targets {
    /// The targets the flags name; a bad URL or address is exit 2, before anything is sent.
    pub fn of(d: &Dispatch) -> Result<Targets, Failure> {
        let mut webhooks = Vec::new();
        for raw in &d.notify {
            let url =
                graph_client::checked_url(raw).map_err(|e| usage(anyhow!("--notify: {e}")))?;
            webhooks.push(url);
        }
        let mail = match &d.notify_from {
            None => None,
            Some(from) => {
                let bad =
                    |what: &str, v: &str| usage(anyhow!("{what} {v:?} is not a mail address"));
                for to in &d.notify_mail {
                    if !address(to) {
                        return Err(bad("--notify-mail", to));
                    }
                }
                let guid = uuid::Uuid::parse_str(from).is_ok();
                if !guid && !address(from) {
                    return Err(bad("--notify-from", from));
                }
                Some(Mail {
                    to: d.notify_mail.clone(),
                    from: from.clone(),
                    attach: if d.notify_attach_report {
                        Attach::Report
                    } else {
                        Attach::Nothing
                    },
                })
            }
        };
        Ok(Targets { webhooks, mail })
    }

    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && self.mail.is_none()
    }

    pub fn wants_mail(&self) -> bool {
        self.mail.is_some()
    }

    /// The delegated permission a mail needs, for a sign-in that asks for its scopes.
    pub fn scopes(&self) -> &'static [rotation::Permission] {
        if self.wants_mail() { &[MAIL_SEND] } else { &[] }
    }

    /// In the pre-flight: a mail needs `Mail.Send` in the token (exit 3 naming it, nothing sent).
    pub async fn check(&self, c: &Connected) -> Result<(), Failure> {
        if !self.wants_mail() {
            return Ok(());
        }
        let token = c
            .client
            .tokens()
            .token()
            .await
            .map_err(|e| Failure(ExitStatus::Auth, e.into()))?;
        let Some(claims) = TokenClaims::decode(token.expose_secret()) else {
            tracing::warn!(
                "the access token is not a JWT: {MAIL_SEND} for --notify-mail is not checked"
            );
            return Ok(());
        };
        if claims.has(MAIL_SEND.name()) {
            Ok(())
        } else {
            Err(Failure(
                ExitStatus::Auth,
                anyhow!(
                    "missing permission {MAIL_SEND} for --notify-mail; grant it (and admin consent), or leave --notify-mail out"
                ),
            ))
        }
    }

    /// Over many tenants, the mail goes through the tenant `--tenant` names (whose mailbox sends
    /// it), checked for Mail.Send before anything is sent.
    pub async fn mail_connection(
        &self,
        conn: &crate::cli::Connection,
    ) -> Result<Option<Connected>, Failure> {
        if !self.wants_mail() {
            return Ok(None);
        }
        if conn.tenant.is_none() {
            return Err(usage(anyhow!(
                "--notify-mail over many tenants needs --tenant: the tenant whose mailbox sends it"
            )));
        }
        let c = crate::connect::client(conn, None, None, &[MAIL_SEND])?;
        self.check(&c).await?;
        Ok(Some(c))
    }

    /// Sends the notice everywhere asked; `report` renders the HTML report for an attachment.
    pub async fn send(
        &self,
        notice: &Notice,
        report: impl FnOnce() -> Option<String>,
        graph: Option<&GraphClient>,
    ) -> Vec<Notified> {
        let mut done = Vec::new();
        if !self.webhooks.is_empty() {
            let card = notice.card(CARD_LIMIT);
            if card.devices_cut > 0 {
                eprintln!(
                    "notify: the card lists {} of {} failed devices, cut to stay under Teams' 28 KB limit",
                    card.devices_listed,
                    card.devices_listed + card.devices_cut
                );
            }
            let http = graph_client::http_client();
            for url in &self.webhooks {
                let target = shown(url);
                let result = match &http {
                    Ok(http) => post_card(http, url, &card.envelope).await,
                    Err(e) => Err(e.to_string()),
                };
                done.push(finish(
                    target,
                    result.map(|s| format!("HTTP {s}, {} bytes", card.bytes)),
                ));
            }
        }
        if let Some(mail) = &self.mail {
            let result = match graph {
                Some(g) => send_mail(g, mail, notice, report).await,
                None => Err("no Graph connection to send the mail with".into()),
            };
            done.push(finish("mail".into(), result));
        }
        done
    }
}

fn address(s: &str) -> bool {
    let Some((user, domain)) = s.split_once('@') else {
        return false;
    };
    !user.is_empty()
        && domain.contains('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@.-_+'".contains(c))
}

/// A webhook as it may be shown: Workflows URLs carry their signature in the query.
fn shown(url: &url::Url) -> String {
    format!("{}{}", url.host_str().unwrap_or_default(), url.path())
}

fn finish(target: String, result: Result<String, String>) -> Notified {
    match result {
        Ok(detail) => {
            eprintln!("notified {target}: {detail}");
            Notified {
                target,
                ok: true,
                detail,
            }
        }
        Err(detail) => {
            eprintln!("warning: notifying {target} failed: {detail}; the run's outcome stands");
            Notified {
                target,
                ok: false,
                detail,
            }
        }
    }
}

/// POSTs the card; a 429 is retried once after its Retry-After.
async fn post_card(
    http: &reqwest::Client,
    url: &url::Url,
    card: &serde_json::Value,
) -> Result<String, String> {
    for attempt in 0..2 {
        let resp = http
            .post(url.clone())
            .json(card)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(status.to_string());
        }
        if status == 429 && attempt == 0 {
            let wait = resp
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| graph_batch::parse_retry_after(v, std::time::SystemTime::now()))
                .unwrap_or(Duration::from_secs(5))
                .min(RETRY_CAP);
            tokio::time::sleep(wait).await;
            continue;
        }
        let text: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        return Err(format!("HTTP {status}: {text}"));
    }
    Err("HTTP 429 twice".into())
}

async fn send_mail(
    g: &GraphClient,
    mail: &Mail,
    notice: &Notice,
    report: impl FnOnce() -> Option<String>,
) -> Result<String, String> {
    let mut message = json!({
        "subject": notice.subject(),
        "body": {"contentType": "HTML", "content": notice.html()},
        "toRecipients": mail.to.iter().map(|a| json!({"emailAddress": {"address": a}})).collect::<Vec<_>>(),
    });
    let mut note = String::new();
    if mail.attach == Attach::Report {
        match report() {
            Some(page) if page.len() <= ATTACHMENT_LIMIT => {
                use base64::Engine;
                message["attachments"] = json!([{
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "name": "intune-rotate-report.html",
                    "contentType": "text/html",
                    "contentBytes": base64::engine::general_purpose::STANDARD.encode(page),
                }]);
                note = ", the report attached".into();
            }
            Some(page) => {
                note = format!(
                    ", the report ({} KB) left out: sendMail takes 3 MB",
                    page.len() / 1024
                );
            }
            None => note = ", the report could not be made".into(),
        }
    }
    let path = format!(
        "/users/{}/sendMail",
        percent_encoding::utf8_percent_encode(&mail.from, percent_encoding::NON_ALPHANUMERIC)
    );
    let body = json!({"message": message, "saveToSentItems": false});
    for attempt in 0..2 {
        match g.post_json(&path, &body).await {
            Ok(meta) => {
                return Ok(format!(
                    "HTTP {} to {}{note}",
                    meta.status,
                    mail.to.join(", ")
                ));
            }
            Err(e @ GraphClientError::Http { status: 429, .. }) if attempt == 0 => {
                tokio::time::sleep(
                    e.retry_after()
                        .unwrap_or(Duration::from_secs(5))
                        .min(RETRY_CAP),
                )
                .await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("HTTP 429 twice".into())
}

impl Targets {
    /// A run that ended in an error before its outcome could be reported: the webhooks are told
    /// what stopped it (a mail needs the Graph connection the error may be about).
    pub async fn after_failure(
        &self,
        action: Option<rotation::Action>,
        error: &str,
        code: ExitStatus,
    ) {
        if self.webhooks.is_empty() {
            return;
        }
        let notice = Notice::of_failure(action, error, code.code());
        let only_hooks = Targets {
            webhooks: self.webhooks.clone(),
            mail: None,
        };
        only_hooks.send(&notice, || None, None).await;
    }
}

/// Adds the notifications to the summary file a run wrote.
pub fn record(summary_json: Option<&Path>, notified: &[Notified]) -> Result<(), Failure> {
    let Some(path) = summary_json else {
        return Ok(());
    };
    if notified.is_empty() {
        return Ok(());
    }
    let mut doc: serde_json::Value = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({}));
    doc["notify"] = json!(notified);
    std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap_or_default())
        .map_err(|e| failed(anyhow!("{}: {e}", path.display())))
}

/// A notice (with its report page for an attachment) or why none could be made.
type Made<'a> = Result<(Notice, Box<dyn FnOnce() -> Option<String> + Send + 'a>), String>;

/// Sends what was made and records it in the summary.
async fn tell(
    targets: &Targets,
    made: Made<'_>,
    graph: Option<&GraphClient>,
    summary_json: Option<&Path>,
) -> Result<(), Failure> {
    let notified = match made {
        Ok((notice, page)) => targets.send(&notice, page, graph).await,
        Err(why) => vec![finish("every target".into(), Err(why))],
    };
    record(summary_json, &notified)
}

/// After one tenant's run: the notice from its ledger, sent, and recorded.
pub async fn after_run(
    targets: &Targets,
    ledger: &Path,
    code: ExitStatus,
    graph: Option<&GraphClient>,
    summary_json: Option<&Path>,
) -> Result<(), Failure> {
    if targets.is_empty() {
        return Ok(());
    }
    let report = rotation::build_report(ledger);
    let made: Made<'_> = match &report {
        Ok(r) => Ok((
            Notice::of_run(r, code.code()),
            Box::new(move || {
                Some(rotation::render_report(
                    rotation::ReportPage::One(r),
                    VERSION,
                ))
            }),
        )),
        Err(e) => Err(format!("the ledger could not be read for the notice: {e}")),
    };
    tell(targets, made, graph, summary_json).await
}

/// After a run over many tenants: the notice from its run directory.
pub async fn after_fleet(
    targets: &Targets,
    dir: &Path,
    code: ExitStatus,
    graph: Option<&GraphClient>,
    summary_json: Option<&Path>,
) -> Result<(), Failure> {
    if targets.is_empty() {
        return Ok(());
    }
    let report = rotation::build_fleet_report(dir);
    let made: Made<'_> = match &report {
        Ok(r) => Ok((
            Notice::of_fleet(r, code.code()),
            Box::new(move || {
                Some(rotation::render_report(
                    rotation::ReportPage::Fleet(r),
                    VERSION,
                ))
            }),
        )),
        Err(e) => Err(format!(
            "the run directory could not be read for the notice: {e}"
        )),
    };
    tell(targets, made, graph, summary_json).await
}

const VERSION: &str = env!("CARGO_PKG_VERSION");
