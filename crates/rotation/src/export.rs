//! Folding the ledger into one row per device, for reports and other tools.

use crate::RotationError;
use crate::ledger::{DeviceState, Row, VerifiedState, for_each_row};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

/// One device's history, folded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExportRow {
    pub device_id: String,
    pub state: DeviceState,
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
    pub verified_state: Option<VerifiedState>,
    pub verified_at: Option<String>,
    pub action_started_at: Option<String>,
    pub device_name: Option<String>,
    pub serial_number: Option<String>,
    pub user_principal_name: Option<String>,
    pub operating_system: Option<String>,
}

impl ExportRow {
    fn planned(id: Uuid) -> Self {
        ExportRow {
            device_id: id.hyphenated().to_string(),
            state: DeviceState::Pending,
            attempts: 0,
            last_status: None,
            error_code: None,
            error_message: None,
            request_id: None,
            client_request_id: None,
            response_date: None,
            first_sent_at: None,
            last_event_at: None,
            skip_reason: None,
            verified_state: None,
            verified_at: None,
            action_started_at: None,
            device_name: None,
            serial_number: None,
            user_principal_name: None,
            operating_system: None,
        }
    }

    /// Folds one row about this device in: the state through [`DeviceState::after`], the rest
    /// as the latest word on each column.
    fn fold(&mut self, row: Row) {
        self.state = self.state.after(row.step());
        match row {
            Row::Planned {
                name,
                serial,
                user,
                os,
                ..
            } => {
                self.device_name = name;
                self.serial_number = serial;
                self.user_principal_name = user;
                self.operating_system = os;
            }
            Row::Skipped { reason, .. } => self.skip_reason = Some(reason),
            Row::Sent { attempt, at, .. } => {
                self.attempts = self.attempts.max(attempt);
                self.first_sent_at.get_or_insert(at.clone());
                self.last_event_at = Some(at);
            }
            Row::Outcome {
                status,
                code,
                message,
                request_id,
                client_request_id,
                date,
                at,
                ..
            } => {
                self.last_status = status.or(self.last_status);
                self.error_code = code;
                self.error_message = message;
                self.request_id = request_id.or(self.request_id.take());
                self.client_request_id = client_request_id.or(self.client_request_id.take());
                self.response_date = date.or(self.response_date.take());
                self.last_event_at = Some(at);
            }
            Row::Verified {
                state,
                action_started_at,
                at,
                ..
            } => {
                self.verified_state = Some(state);
                self.verified_at = Some(at);
                self.action_started_at = action_started_at.or(self.action_started_at.take());
            }
            Row::Run(_) | Row::PlanDone { .. } | Row::Session { .. } => {}
        }
    }
}

/// Writes one row per device in plan order.
pub fn export(
    ledger: &Path,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<usize, RotationError> {
    let mut rows: Vec<ExportRow> = Vec::new();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for_each_row(ledger, |row| {
        let Some(id) = row.device() else { return };
        match (index.get(&id), &row) {
            // A device planned twice keeps its first place and what it was planned with.
            (Some(_), Row::Planned { .. }) => {}
            (Some(&i), _) => rows[i].fold(row),
            (None, Row::Planned { .. }) => {
                index.insert(id, rows.len());
                let mut r = ExportRow::planned(id);
                r.fold(row);
                rows.push(r);
            }
            (None, _) => {}
        }
    })?;
    let io = |e: std::io::Error| RotationError::io(ledger, e);
    match format {
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            for r in &rows {
                w.serialize(r).map_err(|e| RotationError::Output {
                    what: "the export".into(),
                    message: e.to_string(),
                })?;
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
