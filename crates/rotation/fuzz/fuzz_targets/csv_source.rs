//! Any bytes as a device list: both passes (check, then plan) and every key column give rows or
//! an error naming the place, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotation::{DeviceList, KeyColumn, Plan};
mod scratch;

fuzz_target!(|data: &[u8]| {
    let path = scratch::scratch("devices.csv");
    std::fs::write(path, data).expect("scratch file");
    let Ok(source) = DeviceList::open(path.to_str().expect("utf-8 temp path")) else {
        return;
    };
    let _ = Plan::check_source(&source);
    let _ = source.for_each(|_| Ok(()));
    for key in [KeyColumn::Serial, KeyColumn::Name, KeyColumn::EntraId] {
        let _ = source.for_each_keyed(key, |_| Ok(()));
    }
});
