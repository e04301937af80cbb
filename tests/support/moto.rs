//! Test harness for the moto S3 emulator (`moto_server`).
//!
//! `scripts/test` installs moto into `.venv/` and exports
//! `BUCKETLOG_MOTO_SERVER`; without it we fall back to
//! `$CARGO_MANIFEST_DIR/.venv/bin/moto_server`. A missing emulator is a hard
//! failure (panic), never a silent skip.
//!
//! Lifetime: the server is launched through a tiny `sh` wrapper whose stdin is
//! a pipe held by this test process. When the pipe closes, because the
//! `MotoServer` is dropped or because the test process exits for any reason
//! (including a panic abort or SIGKILL), the wrapper kills moto. That is
//! what makes [`shared`] safe even though statics are never dropped.
//!
//! Moto notes (5.2.x): use path-style addressing against `endpoint`; requests
//! need an `Authorization` header (any SigV4-shaped value, signatures are not
//! checked). Anonymous requests get 403 on existing private objects.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `moto_server` as `$1`, on 127.0.0.1 port `$2`, and kills it when
/// stdin reaches EOF. Exits with moto's status if moto dies on its own.
/// (Background jobs get /dev/null as stdin, hence the fd 3 dance.)
/// A moto stopped that way, because its test process is done with it, has its log
/// `$3` removed unless `BUCKETLOG_KEEP_MOTO_LOGS` is set, so runs leave no logs
/// behind; a moto that died on its own keeps its log to be read.
const WRAPPER: &str = r#"
exec 3<&0
"$1" -H 127.0.0.1 -p "$2" </dev/null 3<&- &
pid=$!
(
    read -r _ || true
    [ -n "${BUCKETLOG_KEEP_MOTO_LOGS:-}" ] || rm -f "$3"
    kill "$pid" 2>/dev/null
) <&3 &
watchdog=$!
exec 3<&-
wait "$pid"
status=$?
kill "$watchdog" 2>/dev/null
exit "$status"
"#;

/// A running moto server, stopped on drop.
pub struct MotoServer {
    /// Base URL, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub endpoint: String,
    /// Where moto's stdout/stderr go.
    pub log: PathBuf,
    child: Child,
}

impl MotoServer {
    /// Starts a fresh moto server on a free local port and waits until it
    /// answers HTTP. Panics if moto is not installed or does not come up.
    pub fn start() -> MotoServer {
        let bin = moto_binary();
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "bucketlog-moto-{}-{}.log",
            std::process::id(),
            port
        ));
        let out = File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create moto log {}: {e}", log.display()));
        let err = out.try_clone().expect("clone moto log handle");

        let child = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("bucketlog-moto")
            .arg(&bin)
            .arg(port.to_string())
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", bin.display()));

        let mut server = MotoServer {
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            child,
        };
        server.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
        server
    }

    fn wait_ready(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll moto process") {
                panic!(
                    "moto_server exited early ({status}) before becoming ready; log {}:\n{}",
                    self.log.display(),
                    read_log(&self.log)
                );
            }
            if http_get_ok(addr, "/moto-api/") {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "moto_server not ready on {} after {READY_TIMEOUT:?}; log {}:\n{}",
                    self.endpoint,
                    self.log.display(),
                    read_log(&self.log)
                );
            }
            sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Closing the wrapper's stdin makes it kill moto and exit.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => sleep(Duration::from_millis(20)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One server shared by all tests of the current test binary, started on
/// first use. It is never dropped (statics aren't); it dies when the test
/// process exits because the wrapper sees its stdin pipe close.
/// Use [`unique_bucket`] so tests don't step on each other.
pub fn shared() -> &'static MotoServer {
    static SERVER: OnceLock<MotoServer> = OnceLock::new();
    SERVER.get_or_init(MotoServer::start)
}

/// A valid S3 bucket name (lowercase, 3..=63 chars, no dots) that is unique
/// per call: sanitized `prefix` + pid + counter + clock nanos.
pub fn unique_bucket(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let suffix = format!("{:x}-{n:x}-{nanos:x}", std::process::id());

    let mut p = String::new();
    for c in prefix.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        // No leading '-', and collapse runs of '-' (also rules out the
        // reserved "xn--" prefix).
        if c == '-' && (p.is_empty() || p.ends_with('-')) {
            continue;
        }
        p.push(c);
    }
    if p.starts_with("sthree-") || p.starts_with("amzn-s3-demo-") {
        p.insert_str(0, "t-");
    }
    p.truncate(63 - 1 - suffix.len());
    let p = p.trim_end_matches('-');
    if p.is_empty() {
        format!("t-{suffix}")
    } else {
        format!("{p}-{suffix}")
    }
}

fn moto_binary() -> PathBuf {
    let bin = match std::env::var_os("BUCKETLOG_MOTO_SERVER") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server"),
    };
    if !bin.is_file() {
        panic!(
            "moto_server not found at {} (BUCKETLOG_MOTO_SERVER or .venv/bin/moto_server). \
             Run `scripts/test`, which installs the pinned emulator into .venv/ and \
             runs the whole suite.",
            bin.display()
        );
    }
    bin
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Minimal HTTP/1.0 GET; true iff the status line says 200.
fn http_get_ok(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => got += k,
        }
    }
    let head = String::from_utf8_lossy(&buf[..got]);
    head.starts_with("HTTP/") && head.split_whitespace().nth(1) == Some("200")
}

fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(40).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}
