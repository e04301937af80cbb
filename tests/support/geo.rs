//! Tiny MaxMind-format databases for the geo tests, built once per test binary by
//! `scripts/make_test_mmdb.py` (mmdb-writer, from .venv). What they hold is listed in the
//! script's header: 192.0.2.0/24 is DE, Berlin, AS64500; 198.51.100.0/24 is US, Seattle,
//! AS4200000001; 203.0.113.0/24 is JP with no city and no AS; 2001:db8::/32 is NL,
//! Amsterdam, AS64501; 10.0.0.0/8 is in no network.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The folder holding `test-city.mmdb`, `test-country.mmdb` and `test-asn.mmdb`.
pub fn databases() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bucketlog-mmdb-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make_test_mmdb.py");
        let out = Command::new(super::lake::python())
            .arg(script)
            .arg(&dir)
            .output()
            .expect("run make_test_mmdb.py");
        assert!(
            out.status.success(),
            "make_test_mmdb.py failed (is mmdb-writer in .venv? run scripts/test): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// The path of one test database, as a string for an environment variable.
pub fn database(name: &str) -> String {
    databases().join(name).display().to_string()
}
