//! Any bytes as a `$batch` answer: parsing and everything done with the parsed items must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::SystemTime;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = graph_batch::BatchResponse::parse(data) {
        for item in &r.responses {
            let _ = item.classify(SystemTime::now());
            let _ = item.body();
            let _ = item.error().map(|e| e.display_message());
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = graph_batch::parse_retry_after(s, SystemTime::now());
    }
});
