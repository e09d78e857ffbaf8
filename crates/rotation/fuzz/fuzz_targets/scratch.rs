//! One scratch file per fuzzing process: the code under test reads files, so each input is
//! written to it before the run.

use std::path::PathBuf;
use std::sync::OnceLock;

pub fn scratch(name: &str) -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rotation-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir.join(name)
    })
}
