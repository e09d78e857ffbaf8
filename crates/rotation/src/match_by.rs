//! `--match-by serial|name|entra-id`: admins hold serial numbers (Apple Business Manager, an asset
//! register), device names or Entra ids, not Intune ids. Each input row is resolved to its managed
//! device through one paged listing of the tenant, never one request per row.

use crate::device_list::{DeviceCsvWriter, KeyColumn, SourceDevice, device_select};
use crate::{DeviceList, RotationError};
use futures::StreamExt;
use graph_client::GraphClient;
use std::collections::HashMap;

/// Which column of an input file names the device in the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchBy {
    Serial,
    Name,
    EntraId,
}

impl MatchBy {
    fn key(self) -> KeyColumn {
        match self {
            MatchBy::Serial => KeyColumn::Serial,
            MatchBy::Name => KeyColumn::Name,
            MatchBy::EntraId => KeyColumn::EntraId,
        }
    }

    fn of(self, d: &SourceDevice) -> Option<String> {
        match self {
            MatchBy::Serial => d.serial.clone(),
            MatchBy::Name => d.name.clone(),
            MatchBy::EntraId => d.entra_id.clone(),
        }
        .map(|k| k.trim().to_ascii_lowercase())
        .filter(|k| *k != crate::device_id::NO_ENTRA_DEVICE)
    }

    fn label(self) -> &'static str {
        match self {
            MatchBy::Serial => "serial number",
            MatchBy::Name => "device name",
            MatchBy::EntraId => "Entra device id",
        }
    }
}

/// Rows that matched nothing, or more than one device, by line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchReport {
    pub matched: usize,
    pub unmatched: Vec<(u64, String)>,
    pub ambiguous: Vec<(u64, String, usize)>,
}

impl MatchReport {
    /// One line per problem row, for warnings and errors.
    pub fn problems(&self, by: &str) -> Vec<String> {
        let none = self
            .unmatched
            .iter()
            .map(|(l, k)| format!("line {l}: no device with {by} {k:?}"));
        let many = self
            .ambiguous
            .iter()
            .map(|(l, k, n)| format!("line {l}: {n} devices with {by} {k:?}"));
        none.chain(many).collect()
    }
}

/// Resolves every row of `input` by `by`; with `strict`, any unmatched or ambiguous row is an error
/// (exit 2, nothing sent). Returns a spooled list with Intune ids.
pub async fn resolve(
    client: &GraphClient,
    input: &DeviceList,
    by: MatchBy,
    strict: bool,
) -> Result<(DeviceList, MatchReport), RotationError> {
    let mut wanted: Vec<(u64, String)> = Vec::new();
    input.for_each_keyed(by.key(), |d| {
        let key = d.raw_id.trim().to_ascii_lowercase();
        if !key.is_empty() {
            wanted.push((d.line, key));
        }
        Ok(())
    })?;
    let mut index: HashMap<String, Vec<SourceDevice>> = HashMap::new();
    let url = format!(
        "/deviceManagement/managedDevices?$select={}&$top=1000",
        device_select()
    );
    let mut pages = std::pin::pin!(client.pages(url));
    while let Some(page) = pages.next().await {
        let items = page.map_err(|e| {
            RotationError::Source(format!(
                "listing devices to match by {} failed: {e}; nothing was sent",
                by.label()
            ))
        })?;
        for item in &items {
            let d = SourceDevice::from_graph(item, 0);
            if let Some(k) = by.of(&d) {
                index.entry(k).or_default().push(d);
            }
        }
    }
    let mut report = MatchReport::default();
    let tmp = tempfile::NamedTempFile::new().map_err(|e| RotationError::io("device spool", e))?;
    let mut out = DeviceCsvWriter::new(std::io::BufWriter::new(tmp.as_file()))?;
    for (line, key) in wanted {
        match index.get(&key).map(Vec::as_slice) {
            None | Some([]) => report.unmatched.push((line, key)),
            Some([one]) => {
                out.write(SourceDevice {
                    line,
                    ..one.clone()
                })?;
                report.matched += 1;
            }
            Some(many) => report.ambiguous.push((line, key, many.len())),
        }
    }
    out.finish()?;
    let problems = report.problems(by.label());
    if strict && !problems.is_empty() {
        return Err(RotationError::Unmatched {
            input: input.display().to_string(),
            problems,
        });
    }
    for p in &problems {
        tracing::warn!("{}: {p}; left out", input.display());
    }
    Ok((
        DeviceList::spooled(
            tmp.into_temp_path(),
            format!("{} matched by {}", input.display(), by.label()),
        )?,
        report,
    ))
}
