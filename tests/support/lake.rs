//! Reading a lake back with independent readers: copies of the lake and the curated
//! records in a folder, and `scripts/lake_readback.py` (pyarrow and DuckDB, from .venv).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_s3::Client;
use serde_json::Value;

use super::s3;

/// The Python that has pyarrow and DuckDB: `.venv/bin/python`, which `scripts/test`
/// installs. A missing one fails the test (it is never skipped).
pub fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.is_file(),
        "{} not found: run scripts/test, which installs pyarrow and DuckDB into .venv/",
        venv.display()
    );
    venv
}

/// Runs the readback check over local copies of the lake and the curated records;
/// returns its summary, or the checker's complaint.
pub fn try_readback(lake: &Path, curated: &Path) -> Result<Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lake_readback.py");
    let out = Command::new(python())
        .arg(script)
        .arg("--lake")
        .arg(lake)
        .arg("--curated")
        .arg(curated)
        .output()
        .expect("run lake_readback.py");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("readback summary"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// [`try_readback`], which must succeed.
pub fn readback(lake: &Path, curated: &Path) -> Value {
    try_readback(lake, curated).unwrap_or_else(|e| panic!("lake readback failed:\n{e}"))
}

/// Copies every object under `prefix` in `bucket` into `dir`, keeping the key below
/// `prefix` as the path.
pub async fn download(client: &Client, bucket: &str, prefix: &str, dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create download dir");
    for (key, _) in s3::list(client, bucket, prefix).await {
        let path = dir.join(&key[prefix.len()..]);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
        std::fs::write(&path, s3::get(client, bucket, &key).await).expect("write copy");
    }
}

/// Downloads `lake/` and `curated/` of `bucket` under `dir` and reads them back.
pub async fn readback_s3(client: &Client, bucket: &str, dir: &Path) -> Value {
    let (lake, curated) = (dir.join("lake"), dir.join("curated"));
    download(client, bucket, "lake/", &lake).await;
    download(client, bucket, "curated/", &curated).await;
    readback(&lake, &curated)
}
