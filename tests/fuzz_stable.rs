//! The cargo-fuzz targets (`fuzz/`), run on the stable toolchain in every `cargo test`.
//!
//! cargo-fuzz needs nightly, which CI does not have, so this is a seeded mutation loop over
//! the same entry points (`fuzz/targets.rs`, shared with the cargo-fuzz binaries). It starts
//! from the golden fixtures and the sample logs, stacks byte- and token-level mutations
//! (bit flips, interesting bytes, inserts, deletes, duplicated and spliced ranges, log
//! tokens, field swaps, long runs), gzips some inputs and corrupts some of those, and stops
//! after a time budget: `BUCKETLOG_FUZZ_SECONDS` per target, else 45 s when `CI=true`,
//! else 2 s. `BUCKETLOG_FUZZ_SEED` fixes the seed (the run prints the one it used).
//!
//! A panic or a broken invariant (`records + rejected + blank == lines`, one JSON object
//! per output line) fails the test; the input is saved under `target/fuzz-crashes/` and
//! its path printed, ready for `cargo +nightly fuzz run <target> <file>` or a regression
//! test. The budget bounds the run; nothing here asserts on timing.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The largest object input the loop builds (`curate`).
const MAX_OBJECT: usize = 64 * 1024;
/// The largest line input (`parse_line`), like libFuzzer's `-max_len`.
const MAX_LINE: usize = 8 * 1024;
/// How many inputs the pool keeps (seeds plus mutants that replaced some).
const POOL: usize = 512;

/// splitmix64: small, fast, and good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

const INTERESTING: &[u8] = b"\x00\xff\x80\xc3\xe2 \"[]-\n\r\t\\%+:/?=09";

/// Tokens of access-log lines and of the providers' dialects.
const TOKENS: &[&str] = &[
    " ",
    "-",
    "\"-\"",
    "\"",
    "\n",
    "\r\n",
    "[06/Feb/2019:00:00:38 +0000]",
    "[31/Dec/9999:23:59:60 -2400]",
    "[00/Xxx/0000:99:99:99 +9999]",
    "\"GET /bucket/key?x=1 HTTP/1.1\"",
    "\"PUT / HTTP/2.0\"",
    "REST.GET.OBJECT",
    "arn:aws:iam::123456789012:user/x",
    "arn:aws:sts::123456789012:assumed-role/r/s",
    "192.0.2.1",
    "2001:db8::1",
    "SigV4",
    "SigV2",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "AuthHeader",
    "QueryString",
    "TLSv1.2",
    "TLSv1",
    "s3.us-east-1.amazonaws.com",
    "%2F",
    "%E2%82%AC",
    "%",
    "%ZZ",
    "+",
    "18446744073709551616",
    "-1",
    "0",
    "99999999999999999999999999",
    "1e309",
    "\u{feff}",
    "\u{1F600}",
    "\\\"",
    "\"\"",
];

fn seed_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root.join("tests/fixtures")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".log") || name.ends_with(".log.gz") {
            files.push(path);
        }
    }
    let mut stack = vec![root.join("events/store")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 8, "too few seeds: {files:?}");
    files
}

/// Whole files (plain and gzip) and, decompressed, their single lines.
fn seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut objects = Vec::new();
    let mut lines = Vec::new();
    for path in seed_files() {
        let bytes = std::fs::read(&path).unwrap();
        let plain = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::MultiGzDecoder::new(&bytes[..]),
                &mut out,
            )
            .unwrap();
            out
        } else {
            bytes.clone()
        };
        lines.extend(plain.split(|b| *b == b'\n').map(<[u8]>::to_vec));
        objects.push(bytes);
    }
    lines.retain(|l| !l.is_empty());
    lines.sort();
    lines.dedup();
    (objects, lines)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A range `start..end` of `data`, possibly empty.
fn range(rng: &mut Rng, len: usize) -> (usize, usize) {
    let start = rng.below(len + 1);
    let span = if rng.chance(4) { 64 } else { 8 };
    (start, (start + rng.below(span) + 1).min(len))
}

/// One mutation, in place.
fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>], max_len: usize) {
    let len = data.len();
    match rng.below(11) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = INTERESTING[rng.below(INTERESTING.len())];
        }
        2 => {
            let i = rng.below(len + 1);
            let byte = if rng.chance(2) {
                INTERESTING[rng.below(INTERESTING.len())]
            } else {
                rng.next() as u8
            };
            data.insert(i, byte);
        }
        3 if len > 0 => {
            let (start, end) = range(rng, len);
            data.drain(start..end);
        }
        4 if len > 0 => {
            let (start, end) = range(rng, len);
            let copy = data[start..end].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, copy);
        }
        5 => {
            let other = &pool[rng.below(pool.len())];
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        6 => {
            let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
            let at = rng.below(len + 1);
            data.splice(at..at, token.iter().copied());
        }
        7 => {
            // Replace one space-separated field with a token.
            let spaces: Vec<usize> = (0..len).filter(|&i| data[i] == b' ').collect();
            if spaces.len() >= 2 {
                let k = rng.below(spaces.len() - 1);
                let (start, end) = (spaces[k] + 1, spaces[k + 1]);
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                data.splice(start..end, token.iter().copied());
            }
        }
        8 if len > 0 => data.truncate(rng.below(len)),
        9 => {
            // A long run: quote-less fields, giant numbers, lines past the length cap.
            let byte = INTERESTING[rng.below(INTERESTING.len())];
            let count = [16, 300, 5_000, 40_000][rng.below(4)];
            let at = rng.below(len + 1);
            data.splice(at..at, std::iter::repeat_n(byte, count));
        }
        _ => {
            // Swap two fields.
            let spaces: Vec<usize> = (0..len).filter(|&i| data[i] == b' ').collect();
            if spaces.len() >= 3 {
                let a = rng.below(spaces.len() - 1);
                let field = data[spaces[a] + 1..spaces[a + 1]].to_vec();
                let b = rng.below(spaces.len() - 1);
                data.splice(spaces[b] + 1..spaces[b + 1], field);
            }
        }
    }
    data.truncate(max_len);
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>], max_len: usize) {
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, data, pool, max_len);
    }
}

fn budget() -> Duration {
    let seconds = std::env::var("BUCKETLOG_FUZZ_SECONDS")
        .ok()
        .map(|s| {
            s.parse::<f64>()
                .expect("BUCKETLOG_FUZZ_SECONDS is a number")
        })
        .unwrap_or(if std::env::var("CI").as_deref() == Ok("true") {
            45.0
        } else {
            2.0
        });
    Duration::from_secs_f64(seconds)
}

fn seed() -> u64 {
    std::env::var("BUCKETLOG_FUZZ_SEED")
        .ok()
        .map(|s| s.parse().expect("BUCKETLOG_FUZZ_SEED is a u64"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// Saves a failing input and fails the test with where it is and what it looks like.
fn crash(target: &str, input: &[u8], why: &str) -> ! {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
    std::fs::create_dir_all(&dir).unwrap();
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{target}-{hash:016x}"));
    std::fs::write(&path, input).unwrap();
    let preview: String = input
        .iter()
        .take(600)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    panic!(
        "fuzz target {target}: {why}\ninput ({} bytes) saved to {}\n{preview}",
        input.len(),
        path.display()
    );
}

/// Runs `target` on every seed, then on mutants until the budget is spent.
fn fuzz(
    name: &str,
    seeds: Vec<Vec<u8>>,
    max_len: usize,
    prepare: impl Fn(&mut Rng, Vec<u8>) -> Vec<u8>,
    target: impl Fn(&[u8]) -> Result<(), String>,
) {
    let budget = budget();
    let seed = seed();
    let mut rng = Rng(seed);
    let run = |input: &[u8]| match catch_unwind(AssertUnwindSafe(|| target(input))) {
        Ok(Ok(())) => {}
        Ok(Err(broken)) => crash(name, input, &broken),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            crash(name, input, &format!("panicked: {message}"))
        }
    };
    for input in &seeds {
        run(input);
    }
    let mut pool = seeds;
    let started = Instant::now();
    let mut execs: u64 = 0;
    while started.elapsed() < budget {
        for _ in 0..64 {
            let mut input = pool[rng.below(pool.len())].clone();
            mutate(&mut rng, &mut input, &pool, max_len);
            let input = prepare(&mut rng, input);
            run(&input);
            execs += 1;
            // No coverage feedback: keep some mutants so mutations can stack over time.
            if rng.chance(8) {
                if pool.len() < POOL {
                    pool.push(input);
                } else {
                    let i = rng.below(pool.len());
                    pool[i] = input;
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz {name}: seed {seed}, {execs} mutated inputs in {seconds:.1} s ({:.0}/s), 0 crashes",
        execs as f64 / seconds
    );
    assert!(execs > 0, "the budget allowed no execution");
}

#[test]
fn fuzz_parse_line() {
    let (_, lines) = seeds();
    fuzz(
        "parse_line",
        lines,
        MAX_LINE,
        |_, input| input,
        |data| {
            targets::parse_line(data);
            Ok(())
        },
    );
}

#[test]
fn fuzz_curate() {
    let (objects, lines) = seeds();
    // Whole objects, and windows of a few lines, so most inputs stay small and fast.
    let mut seeds = objects;
    for window in lines.chunks(7) {
        seeds.push(window.join(&b'\n'));
    }
    fuzz(
        "curate",
        seeds,
        MAX_OBJECT,
        |rng, input| {
            if input.starts_with(&[0x1f, 0x8b]) || !rng.chance(4) {
                return input;
            }
            // Gzip it; sometimes corrupt the stream or append a second member.
            let mut compressed = gzip(&input);
            match rng.below(4) {
                0 => {
                    let i = rng.below(compressed.len());
                    compressed[i] ^= 1 << rng.below(8);
                }
                1 => compressed.truncate(rng.below(compressed.len())),
                2 => compressed.extend(gzip(b"\nextra member line\n")),
                _ => {}
            }
            compressed
        },
        targets::curate,
    );
}

/// The golden fixture passes the target's checks, plain and gzip, and corrupt gzip is a
/// refusal, not a crash: the loop's failures are the target's, not the harness's.
#[test]
fn curate_target_checks_what_it_claims() {
    let good = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aws.log"))
        .unwrap();
    assert_eq!(targets::curate(&good), Ok(()));
    assert_eq!(targets::curate(&gzip(&good)), Ok(()));
    // Corrupt gzip is refused by the decoder, which is not a crash.
    let mut corrupt = gzip(&good);
    corrupt.truncate(corrupt.len() / 2);
    assert_eq!(targets::curate(&corrupt), Ok(()));
}

/// The loop itself must fail on a panic and on a broken invariant, or it proves nothing.
#[test]
fn the_loop_fails_on_a_panic_and_on_a_broken_invariant() {
    let seeds = vec![b"a b c d".to_vec()];
    let panicking = catch_unwind(|| {
        fuzz(
            "self-test-panic",
            seeds.clone(),
            64,
            |_, i| i,
            |data| {
                assert!(!data.contains(&0xff), "0xff");
                Ok(())
            },
        )
    });
    let message = panicking.expect_err("a panicking target must fail the run");
    let message = message.downcast_ref::<String>().expect("a message");
    assert!(
        message.contains("panicked: 0xff") && message.contains("saved to"),
        "{message}"
    );

    let broken = catch_unwind(|| {
        fuzz(
            "self-test-invariant",
            seeds.clone(),
            64,
            |_, i| i,
            |data| {
                if data.len() > 9 {
                    Err("too long".to_string())
                } else {
                    Ok(())
                }
            },
        )
    });
    let message = broken.expect_err("a broken invariant must fail the run");
    let message = message.downcast_ref::<String>().expect("a message");
    assert!(message.contains("too long"), "{message}");
}
