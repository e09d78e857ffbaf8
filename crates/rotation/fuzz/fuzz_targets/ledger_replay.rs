//! Any bytes as a ledger: replay, the export fold and opening for append (which cuts a torn tail)
//! give a state or an error naming the line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
mod scratch;

/// A valid header and a finished plan, so the fuzzer starts past them (and `open` accepts the
/// ledger) and spends its time on the rows.
const HEADER: &[u8] = br#"{"type":"run","version":2,"tenant":"t","client_id":null,"cloud":"global","action":"filevault","api_version":"beta","via":"managedDevices","source":"f","rate":"200/20s","created_at":"2026-01-01T00:00:00Z"}
{"type":"plan_done","planned":0,"skipped":0,"at":"2026-01-01T00:00:00Z"}
"#;

fuzz_target!(|data: &[u8]| {
    let path = scratch::scratch("run.jsonl");
    // Half the inputs as whole files (the header itself fuzzed), half after a valid header.
    let bytes = if data.first().is_some_and(|b| b & 1 == 1) {
        [HEADER, &data[1..]].concat()
    } else {
        data.to_vec()
    };
    std::fs::write(path, &bytes).expect("scratch file");
    let _ = rotation::ledger_replay(path);
    let mut sink = Vec::new();
    let _ = rotation::export(path, rotation::ExportFormat::Json, &mut sink);
    if let Ok((ledger, state)) = rotation::Ledger::open(path) {
        drop(ledger);
        assert!(state.ids().len() == state.devices().states().count());
    }
});
