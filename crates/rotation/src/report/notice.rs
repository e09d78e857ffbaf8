//! The outcome of a run for people who were not watching: a Teams Adaptive Card and the same facts
//! as a mail's HTML body, made from the report's figures. It holds no device secret (the tool never
//! reads one), and the card is cut to fit Teams' 28 KB limit, saying so.

use super::html::esc as html_escape;
use super::{FleetReport, Report};
use crate::ledger::parse_ms;
use serde_json::{Value, json};

/// Teams refuses a message over 28 KB; the card stays a little under it.
pub const CARD_LIMIT: usize = 28 * 1024 - 512;

/// What the card and the mail say.
#[derive(Debug, Clone)]
pub struct Notice {
    pub title: String,
    /// Good (everything done), warning (something left) or attention (stopped, or nothing done).
    pub tone: Tone,
    pub facts: Vec<(String, String)>,
    /// Titled groups of counts: skips by reason, on-device failures by code, failures by code.
    pub sections: Vec<(String, Vec<(String, String)>)>,
    /// One line per failed device, those that failed on the device first.
    pub failed_devices: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Warning,
    Attention,
}

impl Tone {
    fn card_color(self) -> &'static str {
        match self {
            Tone::Good => "Good",
            Tone::Warning => "Warning",
            Tone::Attention => "Attention",
        }
    }
}

/// A card ready to post, with how many failed devices it lists of how many.
#[derive(Debug, Clone)]
pub struct Card {
    pub envelope: Value,
    pub bytes: usize,
    pub devices_listed: usize,
    pub devices_cut: usize,
}

fn duration(started: Option<&str>, finished: Option<&str>) -> Option<String> {
    let ms = parse_ms(finished?)?.checked_sub(parse_ms(started?)?)?;
    let s = ms / 1000;
    Some(match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    })
}

fn state(r: &Report, name: &str) -> u64 {
    r.states.get(name).copied().unwrap_or(0)
}

fn counted(map: impl IntoIterator<Item = (String, u64)>) -> Vec<(String, String)> {
    map.into_iter().map(|(k, v)| (k, v.to_string())).collect()
}

/// The device lines: on-device failures first, then the others, as the report's table orders them.
fn failed_lines(r: &Report, tenant: Option<&str>) -> Vec<String> {
    r.table
        .iter()
        .filter(|d| d.outcome == "failed" || (d.outcome == "rotated" && d.verified == "failed"))
        .map(|d| {
            let what = if d.outcome == "rotated" {
                "failed on the device".to_string()
            } else {
                d.last_error.chars().take(160).collect()
            };
            let name = if d.name.is_empty() { "-" } else { &d.name };
            match tenant {
                Some(t) => format!("{t}: {name} ({}): {what}", d.id),
                None => format!("{name} ({}): {what}", d.id),
            }
        })
        .collect()
}

impl Notice {
    /// The notice of one tenant's run. `exit_code` is the command's, as the scheduler will see it.
    pub fn of_run(r: &Report, exit_code: u8) -> Notice {
        let action = r.header.action;
        let on_device: u64 = r.on_device_failures.values().sum();
        let (rotated, failed) = (
            state(r, "rotated") - on_device.min(state(r, "rotated")),
            state(r, "failed"),
        );
        let left = state(r, "pending") + state(r, "in_doubt");
        let tone = match (exit_code, failed + on_device + left) {
            (0, _) => Tone::Good,
            (1, _) if rotated > 0 => Tone::Warning,
            _ => Tone::Attention,
        };
        let tenant = match &r.tenant_name {
            Some(n) => format!("{n} ({})", r.header.tenant),
            None => r.header.tenant.clone(),
        };
        let mut facts = vec![
            (
                "Action".into(),
                format!("{} ({})", action.secret(), action.graph_name()),
            ),
            ("Tenant".into(), tenant),
            ("Devices".into(), r.devices.to_string()),
            ("Rotated".into(), rotated.to_string()),
            ("Failed on the device".into(), on_device.to_string()),
            ("Failed".into(), failed.to_string()),
            ("Skipped".into(), state(r, "skipped").to_string()),
            ("Pending".into(), state(r, "pending").to_string()),
            ("In doubt".into(), state(r, "in_doubt").to_string()),
        ];
        if let Some(d) = duration(r.started.as_deref(), r.finished.as_deref()) {
            facts.push(("Duration".into(), d));
        }
        facts.push(("Exit code".into(), exit_code.to_string()));
        facts.push(("Ledger".into(), r.ledger.display().to_string()));
        let mut sections = Vec::new();
        if !r.skip_reasons.is_empty() {
            sections.push(("Skipped, by reason".into(), counted(r.skip_reasons.clone())));
        }
        if on_device > 0 {
            sections.push((
                "Failed on the device, by the device's error code".into(),
                counted(r.on_device_failures.clone()),
            ));
        }
        if !r.failures.is_empty() {
            sections.push((
                "Failed, by Graph's error code".into(),
                r.failures
                    .iter()
                    .map(|f| (f.code.clone(), format!("{} ({})", f.count, f.advice)))
                    .collect(),
            ));
        }
        Notice {
            title: format!(
                "{} rotation: {rotated} rotated, {on_device} failed on the device, {failed} failed, {left} left",
                action.secret()
            ),
            tone,
            facts,
            sections,
            failed_devices: failed_lines(r, None),
        }
    }

    /// The notice of a run that stopped on an error before it had an outcome to report.
    pub fn of_failure(action: Option<crate::Action>, error: &str, exit_code: u8) -> Notice {
        let what = action.map_or("Secret", |a| a.secret());
        Notice {
            title: format!("{what} rotation did not run to its end"),
            tone: Tone::Attention,
            facts: vec![
                ("Error".into(), error.chars().take(2000).collect()),
                ("Exit code".into(), exit_code.to_string()),
            ],
            sections: Vec::new(),
            failed_devices: Vec::new(),
        }
    }

    /// The notice of a run over many tenants: totals, each tenant's line, and the failed devices.
    pub fn of_fleet(f: &FleetReport, exit_code: u8) -> Notice {
        let reports: Vec<&Report> = f.tenants.iter().filter_map(|(_, r)| r.as_ref()).collect();
        let sum = |name: &str| reports.iter().map(|r| state(r, name)).sum::<u64>();
        let on_device: u64 = reports
            .iter()
            .flat_map(|r| r.on_device_failures.values())
            .sum();
        let rotated = sum("rotated").saturating_sub(on_device);
        let action = reports.first().map(|r| r.header.action);
        let mut by_code: std::collections::BTreeMap<String, u64> = Default::default();
        let mut on_device_codes: std::collections::BTreeMap<String, u64> = Default::default();
        let mut skips: std::collections::BTreeMap<String, u64> = Default::default();
        for r in &reports {
            for g in &r.failures {
                *by_code.entry(g.code.clone()).or_default() += g.count;
            }
            for (k, v) in &r.on_device_failures {
                *on_device_codes.entry(k.clone()).or_default() += v;
            }
            for (k, v) in &r.skip_reasons {
                *skips.entry(k.clone()).or_default() += v;
            }
        }
        let started = reports.iter().filter_map(|r| r.started.as_deref()).min();
        let finished = reports.iter().filter_map(|r| r.finished.as_deref()).max();
        let mut facts = vec![
            (
                "Action".into(),
                action.map_or("-".into(), |a| {
                    format!("{} ({})", a.secret(), a.graph_name())
                }),
            ),
            ("Tenants".into(), f.tenants.len().to_string()),
            (
                "Devices".into(),
                reports.iter().map(|r| r.devices).sum::<u64>().to_string(),
            ),
            ("Rotated".into(), rotated.to_string()),
            ("Failed on the device".into(), on_device.to_string()),
            ("Failed".into(), sum("failed").to_string()),
            ("Skipped".into(), sum("skipped").to_string()),
            ("Pending".into(), sum("pending").to_string()),
            ("In doubt".into(), sum("in_doubt").to_string()),
        ];
        if let Some(d) = duration(started, finished) {
            facts.push(("Duration".into(), d));
        }
        facts.push(("Exit code".into(), exit_code.to_string()));
        facts.push(("Run directory".into(), f.dir.display().to_string()));
        let tenants: Vec<(String, String)> = f
            .tenants
            .iter()
            .map(|(t, r)| {
                let line = match r {
                    Some(r) => format!(
                        "{}: rotated {}, failed {}, pending {}",
                        t.state.name(),
                        state(r, "rotated"),
                        state(r, "failed"),
                        state(r, "pending") + state(r, "in_doubt")
                    ),
                    None => format!(
                        "{}: {}",
                        t.state.name(),
                        t.reason.as_deref().unwrap_or("no ledger")
                    ),
                };
                (t.tenant.name.clone(), line)
            })
            .collect();
        let mut sections = vec![("Tenants".to_string(), tenants)];
        if !skips.is_empty() {
            sections.push(("Skipped, by reason".into(), counted(skips)));
        }
        if on_device > 0 {
            sections.push((
                "Failed on the device, by the device's error code".into(),
                counted(on_device_codes),
            ));
        }
        if !by_code.is_empty() {
            sections.push(("Failed, by Graph's error code".into(), counted(by_code)));
        }
        let left = sum("pending") + sum("in_doubt");
        Notice {
            title: format!(
                "{} rotation over {} tenants: {rotated} rotated, {on_device} failed on the device, {} failed, {left} left",
                action.map_or("Secret", |a| a.secret()),
                f.tenants.len(),
                sum("failed")
            ),
            tone: match exit_code {
                0 => Tone::Good,
                1 if rotated > 0 => Tone::Warning,
                _ => Tone::Attention,
            },
            facts,
            sections,
            failed_devices: f
                .tenants
                .iter()
                .filter_map(|(t, r)| Some(failed_lines(r.as_ref()?, Some(&t.tenant.name))))
                .flatten()
                .collect(),
        }
    }

    /// The Teams Workflows message: the documented envelope around an Adaptive Card, with as many
    /// failed devices as fit under `limit` bytes, and a line saying how many were cut.
    pub fn card(&self, limit: usize) -> Card {
        let fact_set = |facts: &[(String, String)]| json!({"type": "FactSet", "facts": facts.iter().map(|(t, v)| json!({"title": t, "value": v})).collect::<Vec<_>>()});
        let mut body = vec![
            json!({"type": "TextBlock", "text": self.title, "size": "Medium", "weight": "Bolder", "wrap": true, "color": self.tone.card_color()}),
            fact_set(&self.facts),
        ];
        for (title, facts) in &self.sections {
            body.push(json!({"type": "TextBlock", "text": title, "weight": "Bolder", "wrap": true, "spacing": "Medium"}));
            body.push(fact_set(facts));
        }
        let envelope = |body: &[Value]| {
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "msteams": {"width": "Full"},
                        "body": body,
                    }
                }]
            })
        };
        let size = |v: &Value| serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
        let total = self.failed_devices.len();
        let line = |text: String, subtle: bool| json!({"type": "TextBlock", "text": text, "wrap": true, "isSubtle": subtle, "spacing": "None"});
        if total > 0 {
            body.push(json!({"type": "TextBlock", "text": "Failed devices", "weight": "Bolder", "spacing": "Medium"}));
        }
        // Room is kept for the line that says how many were cut.
        let cut_note = |n: usize| {
            line(
                format!(
                    "… and {n} more failed devices, cut to stay under Teams' 28 KB limit: the ledger and the report list them all"
                ),
                true,
            )
        };
        let mut listed = 0;
        for d in &self.failed_devices {
            body.push(line(escape_markdown(d), false));
            let mut probe = body.clone();
            probe.push(cut_note(total));
            if size(&envelope(&probe)) > limit {
                body.pop();
                break;
            }
            listed += 1;
        }
        if listed < total {
            body.push(cut_note(total - listed));
        }
        let envelope = envelope(&body);
        Card {
            bytes: size(&envelope),
            envelope,
            devices_listed: listed,
            devices_cut: total - listed,
        }
    }

    /// The mail's subject.
    pub fn subject(&self) -> String {
        format!("intune-rotate: {}", self.title)
    }

    /// The same facts as a small HTML page, for a mail's body; every device listed.
    pub fn html(&self) -> String {
        let mut h = String::from(
            "<html><body style=\"font-family:Segoe UI,Helvetica,Arial,sans-serif\">\n",
        );
        h.push_str(&format!("<h2>{}</h2>\n", html_escape(&self.title)));
        let table = |h: &mut String, facts: &[(String, String)]| {
            h.push_str("<table cellpadding=\"4\" style=\"border-collapse:collapse\">\n");
            for (t, v) in facts {
                h.push_str(&format!(
                    "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
                    html_escape(t),
                    html_escape(v)
                ));
            }
            h.push_str("</table>\n");
        };
        table(&mut h, &self.facts);
        for (title, facts) in &self.sections {
            h.push_str(&format!("<h3>{}</h3>\n", html_escape(title)));
            table(&mut h, facts);
        }
        if !self.failed_devices.is_empty() {
            h.push_str("<h3>Failed devices</h3>\n<ul>\n");
            for d in &self.failed_devices {
                h.push_str(&format!("<li>{}</li>\n", html_escape(d)));
            }
            h.push_str("</ul>\n");
        }
        h.push_str("</body></html>\n");
        h
    }
}

/// Device names are the admin's data; a card's TextBlock reads Markdown, so its marks are escaped.
fn escape_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '_' | '[' | ']' | '`' | '#' | '>' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(failed: usize) -> Notice {
        Notice {
            title: "FileVault recovery key rotation".into(),
            tone: Tone::Warning,
            facts: vec![("Rotated".into(), "12".into())],
            sections: Vec::new(),
            failed_devices: (0..failed)
                .map(|i| format!("MAC-{i:05} (6d1f0000-0000-4000-8000-{i:012x}): ResourceNotFound"))
                .collect(),
        }
    }

    fn text(c: &Card) -> String {
        serde_json::to_string(&c.envelope).unwrap()
    }

    #[test]
    fn a_short_failure_list_fits_whole() {
        let c = notice(3).card(CARD_LIMIT);
        assert_eq!((c.devices_listed, c.devices_cut), (3, 0));
        assert!(!text(&c).contains("cut to stay"));
    }

    #[test]
    fn a_long_failure_list_is_cut_under_the_limit_and_says_how_many_were_left_out() {
        let c = notice(5000).card(CARD_LIMIT);
        assert!(c.bytes <= CARD_LIMIT, "{} bytes", c.bytes);
        assert_eq!(c.devices_listed + c.devices_cut, 5000);
        assert!(c.devices_listed > 50 && c.devices_cut > 0);
        assert!(text(&c).contains(&format!("and {} more failed devices", c.devices_cut)));
    }

    #[test]
    fn device_names_cannot_format_the_card_or_the_mail() {
        assert_eq!(escape_markdown("a*b_[c]"), "a\\*b\\_\\[c\\]");
        let mut n = notice(0);
        n.failed_devices = vec!["<img src=x>".into()];
        assert!(n.html().contains("&lt;img src=x&gt;"));
    }
}
