//! Tiny MaxMind-format databases for the geo tests, built once (see [`databases`]) by
//! `scripts/make_test_mmdb.py` (mmdb-writer, from .venv). What they hold is listed in the
//! script's header: 192.0.2.0/24 is DE, Berlin, AS64500; 198.51.100.0/24 is US, Seattle,
//! AS4200000001; 203.0.113.0/24 is JP with no city and no AS; 2001:db8::/32 is NL,
//! Amsterdam, AS64501; 10.0.0.0/8 is in no network.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The folder holding `test-city.mmdb`, `test-country.mmdb` and `test-asn.mmdb`.
///
/// It is Cargo's scratch folder for integration tests (`target/tmp`), named after the
/// script's own bytes, so test binaries share one build of the databases and a changed
/// script builds new ones. Each build goes to a folder of its own first and is renamed
/// into place, so two test binaries starting together never read a half-written file.
pub fn databases() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make_test_mmdb.py");
        let text = std::fs::read(&script).expect("read make_test_mmdb.py");
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&text, &mut hasher);
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = root.join(format!("mmdb-{:016x}", std::hash::Hasher::finish(&hasher)));
        if dir.is_dir() {
            return dir;
        }
        let building = root.join(format!("mmdb-building-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&building);
        let out = Command::new(super::lake::python())
            .arg(script)
            .arg(&building)
            .output()
            .expect("run make_test_mmdb.py");
        assert!(
            out.status.success(),
            "make_test_mmdb.py failed (is mmdb-writer in .venv? run scripts/test): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if std::fs::rename(&building, &dir).is_err() {
            // Another test binary renamed its build into place first: the same bytes.
            assert!(
                dir.is_dir(),
                "cannot move {} into place",
                building.display()
            );
            let _ = std::fs::remove_dir_all(&building);
        }
        dir
    })
}

/// The path of one test database, as a string for an environment variable.
pub fn database(name: &str) -> String {
    databases().join(name).display().to_string()
}
