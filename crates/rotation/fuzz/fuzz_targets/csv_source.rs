//! Any bytes as a device list: both passes (check, then plan) and every key column give rows or
//! an error naming the place, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotation::{CsvSource, KeyColumn, Plan};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The source reads a file twice (check, then plan), so each input is written to one scratch file.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rotation-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir.join("devices.csv")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(path, data).expect("scratch file");
    let Ok(source) = CsvSource::open(path.to_str().expect("utf-8 temp path")) else {
        return;
    };
    let _ = Plan::check_source(&source);
    let _ = source.for_each(|_| Ok(()));
    for key in [KeyColumn::Serial, KeyColumn::Name, KeyColumn::EntraId] {
        let _ = source.for_each_keyed(key, |_| Ok(()));
    }
});
