//! Writing device lists: the `devices` command's output and the spool of Graph sources.

use super::{DEVICE_COLUMNS, DeviceList, SourceDevice};
use crate::RotationError;
use serde_json::Value;

/// Writes device rows in [`DEVICE_COLUMNS`] order as they come, after a header.
pub struct DeviceCsvWriter<W: std::io::Write> {
    w: csv::Writer<W>,
    rows: usize,
}

impl<W: std::io::Write> std::fmt::Debug for DeviceCsvWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCsvWriter")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

fn write_err(e: csv::Error) -> RotationError {
    RotationError::Output {
        what: "the device list".into(),
        message: e.to_string(),
    }
}

impl<W: std::io::Write> DeviceCsvWriter<W> {
    pub fn new(out: W) -> Result<Self, RotationError> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(DEVICE_COLUMNS).map_err(write_err)?;
        Ok(DeviceCsvWriter { w, rows: 0 })
    }

    pub fn write(&mut self, d: SourceDevice) -> Result<(), RotationError> {
        let fields = d.to_values().map(|v| match v {
            Value::Null => String::new(),
            Value::String(s) => s,
            other => other.to_string(),
        });
        self.w.write_record(&fields).map_err(write_err)?;
        self.rows += 1;
        Ok(())
    }

    /// Flushes and returns how many rows were written.
    pub fn finish(mut self) -> Result<usize, RotationError> {
        self.w
            .flush()
            .map_err(|e| RotationError::io("devices output", e))?;
        Ok(self.rows)
    }
}

/// Writes a device list in [`DEVICE_COLUMNS`] order, with a header, row by row as it is read.
pub fn write_devices_csv<W: std::io::Write>(
    out: W,
    devices: &DeviceList,
) -> Result<usize, RotationError> {
    let mut w = DeviceCsvWriter::new(out)?;
    devices.for_each(|d| w.write(d))?;
    w.finish()
}

/// Writes a device list as a JSON array of objects with [`DEVICE_COLUMNS`] keys, element by
/// element as it is read (a fleet's list is never held in memory whole).
pub fn write_devices_json<W: std::io::Write>(
    mut out: W,
    devices: &DeviceList,
) -> Result<usize, RotationError> {
    use serde::ser::{SerializeSeq, Serializer};
    let io = |e: serde_json::Error| RotationError::io("devices output", e.into());
    let mut rows = 0;
    let mut ser = serde_json::Serializer::pretty(&mut out);
    let mut seq = ser.serialize_seq(None).map_err(io)?;
    devices.for_each(|d| {
        rows += 1;
        let object: serde_json::Map<String, Value> = DEVICE_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .zip(d.to_values())
            .collect();
        seq.serialize_element(&object).map_err(io)
    })?;
    seq.end().map_err(io)?;
    out.write_all(b"\n")
        .map_err(|e| RotationError::io("devices output", e))?;
    Ok(rows)
}
