//! Folding the ledger into one row per device, for reports and other tools.

use crate::RotationError;
use crate::ledger::{Outcome, Row, for_each_row};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

/// One device's history, folded.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ExportRow {
    pub device_id: String,
    pub state: &'static str,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub request_id: Option<String>,
    pub client_request_id: Option<String>,
    pub response_date: Option<String>,
    pub first_sent_at: Option<String>,
    pub last_event_at: Option<String>,
    pub skip_reason: Option<String>,
    /// What `verify` last found in `deviceActionResults`.
    pub verified_state: Option<String>,
    pub verified_at: Option<String>,
    pub action_started_at: Option<String>,
    pub device_name: Option<String>,
    pub serial_number: Option<String>,
    pub user_principal_name: Option<String>,
    pub operating_system: Option<String>,
}

/// Writes one row per device in plan order.
pub fn export(
    ledger: &Path,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<usize, RotationError> {
    let mut rows: Vec<ExportRow> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for_each_row(ledger, |row| {
        let at = |id: &str| -> Option<usize> { index.get(id).copied() };
        match row {
            Row::Planned {
                id,
                name,
                serial,
                user,
                os,
                ..
            } => {
                if !index.contains_key(&id) {
                    index.insert(id.clone(), rows.len());
                    rows.push(ExportRow {
                        device_id: id,
                        state: "pending",
                        device_name: name,
                        serial_number: serial,
                        user_principal_name: user,
                        operating_system: os,
                        ..Default::default()
                    });
                }
            }
            Row::Skipped { id, reason } => {
                if let Some(i) = at(&id) {
                    rows[i].state = "skipped";
                    rows[i].skip_reason = Some(reason);
                }
            }
            Row::Sent {
                id,
                attempt,
                at: when,
                ..
            } => {
                if let Some(i) = at(&id) {
                    let r = &mut rows[i];
                    r.state = "in_doubt";
                    r.attempts = r.attempts.max(attempt);
                    r.first_sent_at.get_or_insert(when.clone());
                    r.last_event_at = Some(when);
                }
            }
            Row::Outcome {
                id,
                result,
                status,
                code,
                message,
                request_id,
                client_request_id,
                date,
                at: when,
            } => {
                if let Some(i) = at(&id) {
                    let r = &mut rows[i];
                    r.state = match result {
                        Outcome::Rotated => "rotated",
                        Outcome::Failed | Outcome::Abandoned => "failed",
                        Outcome::Retry => "pending",
                    };
                    r.last_status = status.or(r.last_status);
                    r.error_code = code;
                    r.error_message = message;
                    r.request_id = request_id.or(r.request_id.take());
                    r.client_request_id = client_request_id.or(r.client_request_id.take());
                    r.response_date = date.or(r.response_date.take());
                    r.last_event_at = Some(when);
                }
            }
            Row::Verified {
                id,
                state,
                action_started_at,
                at: when,
            } => {
                if let Some(i) = at(&id) {
                    let r = &mut rows[i];
                    r.verified_state = Some(state);
                    r.verified_at = Some(when);
                    r.action_started_at = action_started_at.or(r.action_started_at.take());
                }
            }
            Row::Run(_) | Row::PlanDone { .. } | Row::Session { .. } => {}
        }
    })?;
    let io = |e: std::io::Error| RotationError::io(ledger, e);
    match format {
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            for r in &rows {
                w.serialize(r)
                    .map_err(|e| RotationError::Input(format!("export: {e}")))?;
            }
            w.flush().map_err(io)?;
        }
        ExportFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &rows).map_err(|e| io(e.into()))?;
            out.write_all(b"\n").map_err(io)?;
        }
    }
    Ok(rows.len())
}
