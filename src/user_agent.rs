//! What a user agent says about the client software: its name, version, operating system
//! and device, for the curated record's `user_agent_name`, `_version`, `_os` and `_device`.
//!
//! Browsers, scanners, curl, Wget and anything unrecognised go through
//! [uap-core](https://github.com/ua-parser/uap-core)'s regexes (vendored in
//! `data/uap-core`, embedded at build time) with the `ua-parser` crate. The AWS clients
//! (CLI, boto3, the SDKs, the S3 console and AWS's internal traffic) follow simple rules of
//! their own instead, documented on [`parse_user_agent`]: uap-core knows little of them, and
//! their user agents are regular `product/version` tokens.
//!
//! Compiling the regexes is costly: about 140 ms of CPU and 30 MiB of memory (measured by
//! `bench/handler.rs`, BENCHMARKS.md). It happens once per process, on the first agent
//! that is not an AWS client's, so a function that only sees the SDKs and the CLI never
//! pays it; it is not done at start-up, which keeps the cold start short. A parse runs
//! three regex sets over the agent, so [`cached_details`] remembers the answer for each
//! distinct agent in a bounded process-wide cache.

use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use hashbrown::HashMap;
use ua_parser::{Extractor, Regexes};

use crate::enrich::UserAgentFamily;

/// What a user agent says about the client software; every field is None when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAgentDetails {
    /// The client: `Chrome`, `Firefox`, `Mobile Safari`, `curl`, `aws-cli`, `Boto3`,
    /// `aws-sdk-java`, ...
    pub name: Option<Box<str>>,
    /// Its version, `major[.minor[.patch[.patch_minor]]]` as far as the agent tells:
    /// `120.0.6099`, `2.13.5`.
    pub version: Option<Box<str>>,
    /// The operating system: `Windows`, `macOS`, `iOS`, `Android`, `Linux`, ...
    pub os: Option<Box<str>>,
    /// The device, as uap-core names it: `iPhone`, `Mac`, `Spider` (a crawler), ...
    pub device: Option<Box<str>>,
}

/// uap-core 0.18.0's regexes, converted by `scripts/update_uap_core.py`.
static REGEXES_JSON: &str = include_str!("../data/uap-core/regexes.json");

/// The compiled regexes, built on first use; `None` if they could not be built, in which
/// case every agent parsed through uap-core has no details (logged once, here).
static EXTRACTOR: LazyLock<Option<Extractor<'static>>> = LazyLock::new(|| {
    // Building should not fail or panic; if the crate ever panicked on these regexes, the
    // function would lose user agent details, not every record.
    std::panic::catch_unwind(build_extractor).unwrap_or_else(|_| {
        tracing::warn!("building the user agent regexes panicked: user agents get no details");
        None
    })
});

fn build_extractor() -> Option<Extractor<'static>> {
    let regexes: Regexes<'static> = match serde_json::from_str(REGEXES_JSON) {
        Ok(regexes) => regexes,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable user agent regexes: user agents get no details");
            return None;
        }
    };
    match Extractor::try_from(regexes) {
        Ok(extractor) => Some(extractor),
        Err(e) => {
            tracing::warn!(error = %e, "user agent regexes not built: user agents get no details");
            None
        }
    }
}

/// Builds the regex extractor now (to measure it); false if it could not be built.
pub fn warm_up() -> bool {
    LazyLock::force(&EXTRACTOR).is_some()
}

/// Parses without any cache (for tests and one-offs).
///
/// `family` is [`UserAgentFamily::classify`]'s answer for `user_agent`; it picks the rules:
///
/// - Scanners, curl, Wget, browsers and other agents: uap-core. Its `Other` (unknown
///   family, OS or device) becomes `None`, and its OS `Mac OS X` becomes `macOS` (what Apple
///   has called it since 2016, and what the AWS rules below say); everything else is kept
///   as uap-core returns it. The version is the major, minor, patch and patch-minor parts
///   that are present, joined by `.`, and `None` without a major.
/// - The AWS families (`aws-cli`, `boto3`, `aws-sdk`, `s3-console`, `aws-internal`): the
///   name and version are those of the product token that identified the family
///   (`aws-cli/2.13.5` gives `aws-cli` and `2.13.5`; boto3's family is `Boto3/...`, else
///   `Botocore/...`; the SDKs' `aws-sdk-java/...`, `aws-sdk-go/...`; `S3Console/0.4`;
///   `aws-internal/3`), the version being `None` unless it starts with a digit. The OS comes
///   from an `os/NAME[#version]` token (the SDKs' user agent 2.0), else from a `Linux/`,
///   `Windows_NT/`, `Windows/` (or other `Windows_...`), `Darwin/` or `Mac_OS_X/` token,
///   else from a parenthesised list such as `(go1.20; linux; amd64)`; `linux` is written
///   `Linux`, `windows...` and `win32` `Windows`, `darwin`, `macos` and `mac_os_x` `macOS`;
///   another `os/` name is kept as written (`os/other` and odd values give `None`).
///   The device is always `None`. For the console and internal traffic, the OS is that of
///   the AWS service which sent the request, not the user's.
pub fn parse_user_agent(user_agent: &str, family: UserAgentFamily) -> UserAgentDetails {
    match family {
        UserAgentFamily::AwsCli
        | UserAgentFamily::Boto3
        | UserAgentFamily::AwsSdk
        | UserAgentFamily::S3Console
        | UserAgentFamily::AwsInternal => aws_details(user_agent, family),
        UserAgentFamily::Scanner
        | UserAgentFamily::Curl
        | UserAgentFamily::Wget
        | UserAgentFamily::Browser
        | UserAgentFamily::Other => uap_details(user_agent),
    }
}

/// At most this many agents are cached; a full cache is cleared, so memory stays bounded
/// whatever the number of distinct agents (a log holds few; a scanner may send many).
const CACHE_MAX_ENTRIES: usize = 4_096;
/// Agents longer than this are parsed every time and never cached, which bounds the
/// cache's bytes too (about 4 MiB of keys at most).
const CACHE_MAX_AGENT_BYTES: usize = 1_024;

/// Distinct user agents and their details, bounded in entries and bytes.
#[derive(Default)]
struct DetailsCache {
    map: Mutex<HashMap<Box<str>, Arc<UserAgentDetails>>>,
}

impl DetailsCache {
    fn details(&self, user_agent: &str, family: UserAgentFamily) -> Arc<UserAgentDetails> {
        if user_agent.len() > CACHE_MAX_AGENT_BYTES {
            return Arc::new(parse_user_agent(user_agent, family));
        }
        if let Some(hit) = self.lock().get(user_agent) {
            return Arc::clone(hit);
        }
        // Parsed without the lock held, so other threads' hits do not wait for it.
        let details = Arc::new(parse_user_agent(user_agent, family));
        let mut map = self.lock();
        if let Some(raced) = map.get(user_agent) {
            return Arc::clone(raced);
        }
        if map.len() >= CACHE_MAX_ENTRIES {
            map.clear();
        }
        map.insert(user_agent.into(), Arc::clone(&details));
        details
    }

    /// A panic elsewhere while the lock was held leaves the map consistent (every change is
    /// a single call), so a poisoned lock is used as it is.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<UserAgentDetails>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

static CACHE: LazyLock<DetailsCache> = LazyLock::new(DetailsCache::default);

/// Same as parse_user_agent through a process-wide cache bounded in entries and bytes.
///
/// The cache is keyed by the agent alone: `family` must be
/// [`UserAgentFamily::classify`]'s answer for it, as it always is in bucketlog. It holds
/// at most 4,096 agents of at most 1,024 bytes each (longer ones are parsed every time),
/// and is cleared when full, so its memory stays bounded whatever the number of distinct
/// agents. A hit is one hash lookup.
pub fn cached_details(user_agent: &str, family: UserAgentFamily) -> Arc<UserAgentDetails> {
    CACHE.details(user_agent, family)
}

fn uap_details(user_agent: &str) -> UserAgentDetails {
    let Some(extractor) = EXTRACTOR.as_ref() else {
        return UserAgentDetails::default();
    };
    let mut details = UserAgentDetails::default();
    if let Some(ua) = extractor.ua.extract(user_agent) {
        details.name = known(&ua.family);
        if details.name.is_some() {
            details.version = join_version([ua.major, ua.minor, ua.patch, ua.patch_minor]);
        }
    }
    if let Some(os) = extractor.os.extract(user_agent) {
        details.os = match &*os.os {
            "Mac OS X" => Some("macOS".into()),
            other => known(other),
        };
    }
    if let Some(device) = extractor.dev.extract(user_agent) {
        details.device = known(&device.device);
    }
    details
}

/// A uap-core value, `None` for its `Other` (and for an empty one).
fn known(value: &str) -> Option<Box<str>> {
    (!value.is_empty() && value != "Other").then(|| value.into())
}

/// `major[.minor[.patch[.patch_minor]]]`, stopping at the first missing part.
fn join_version(parts: [Option<&str>; 4]) -> Option<Box<str>> {
    let mut version = String::new();
    for part in parts {
        match part {
            Some(part) if !part.is_empty() => {
                if !version.is_empty() {
                    version.push('.');
                }
                version.push_str(part);
            }
            _ => break,
        }
    }
    (!version.is_empty()).then(|| version.into())
}

fn aws_details(user_agent: &str, family: UserAgentFamily) -> UserAgentDetails {
    let product = match family {
        UserAgentFamily::S3Console => product_token(user_agent, "s3console"),
        UserAgentFamily::AwsInternal => product_token(user_agent, "aws-internal"),
        UserAgentFamily::AwsCli => product_token(user_agent, "aws-cli/"),
        UserAgentFamily::Boto3 => {
            product_token(user_agent, "boto3/").or_else(|| product_token(user_agent, "botocore/"))
        }
        UserAgentFamily::AwsSdk => product_token(user_agent, "aws-sdk-"),
        _ => None,
    };
    let (name, version) = match product {
        Some(token) => split_product(token),
        None => (None, None),
    };
    UserAgentDetails {
        name,
        version,
        os: aws_os(user_agent),
        device: None,
    }
}

/// Whitespace, commas, semicolons and parentheses separate an agent's tokens.
fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')')
}

fn tokens(user_agent: &str) -> impl Iterator<Item = &str> {
    user_agent.split(is_separator).filter(|t| !t.is_empty())
}

fn starts_with_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .get(..needle.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The token starting with `needle` (ASCII, any case), else the rest of the first token
/// holding it, as [`UserAgentFamily::classify`] matches anywhere.
fn product_token<'a>(user_agent: &'a str, needle: &str) -> Option<&'a str> {
    if let Some(token) = tokens(user_agent).find(|t| starts_with_ignore_case(t, needle)) {
        return Some(token);
    }
    tokens(user_agent).find_map(|token| {
        let at = token
            .as_bytes()
            .windows(needle.len())
            .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))?;
        // The needle is ASCII, so `at` is on a character boundary.
        token.get(at..)
    })
}

/// `name/version`: the name before the first `/`, and the first `/`-separated part after
/// it that starts with a digit, up to a character that cannot be in a version.
fn split_product(token: &str) -> (Option<Box<str>>, Option<Box<str>>) {
    let mut parts = token.split('/');
    let name = parts.next().filter(|n| !n.is_empty()).map(Box::from);
    let version = parts
        .find(|p| p.starts_with(|c: char| c.is_ascii_digit()))
        .map(|p| {
            let end = p
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+')))
                .unwrap_or(p.len());
            Box::from(&p[..end])
        });
    (name, version)
}

/// The OS of an AWS client's agent, by the rules on [`parse_user_agent`].
fn aws_os(user_agent: &str) -> Option<Box<str>> {
    // 1. User agent 2.0: `os/linux#5.10`, `os/macos`, `os/windows#10.0`, `os/other`.
    if let Some(token) = tokens(user_agent).find(|t| starts_with_ignore_case(t, "os/")) {
        let value = &token[3..];
        let value = value.split(['#', '/']).next().unwrap_or(value);
        return match normal_os(value) {
            Some(os) => Some(os.into()),
            // Another OS is kept as written if it looks like a name (`freebsd`).
            None if value.len() <= 32
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
                && !value.is_empty()
                && !value.eq_ignore_ascii_case("other")
                && !value.eq_ignore_ascii_case("unknown") =>
            {
                Some(value.into())
            }
            None => None,
        };
    }
    // 2. A product token named after the OS: `Linux/5.10.184`, `Windows/10`,
    //    `Windows_NT/10.0`, `Darwin/22.6.0`, `Mac_OS_X/13.4`, node's `linux/v18.15.0`.
    if let Some(os) = tokens(user_agent)
        .filter_map(|t| t.split_once('/'))
        .find_map(|(name, _)| normal_os(name))
    {
        return Some(os.into());
    }
    // 3. A parenthesised list: aws-sdk-go's `(go1.20; linux; amd64)`.
    let mut rest = user_agent;
    while let Some(open) = rest.find('(') {
        let inside = &rest[open + 1..];
        let close = inside.find(')').unwrap_or(inside.len());
        if let Some(os) = inside[..close].split(';').find_map(|p| normal_os(p.trim())) {
            return Some(os.into());
        }
        rest = &inside[close..];
    }
    None
}

/// An OS name as AWS clients write it, in the spelling bucketlog reports.
fn normal_os(name: &str) -> Option<&'static str> {
    let is = |s: &str| name.eq_ignore_ascii_case(s);
    if is("linux") {
        Some("Linux")
    } else if starts_with_ignore_case(name, "windows") || is("win32") {
        Some("Windows")
    } else if is("darwin") || is("macos") || is("mac_os_x") || is("osx") {
        Some("macOS")
    } else if is("ios") {
        Some("iOS")
    } else if is("android") {
        Some("Android")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use UserAgentFamily::*;

    /// name, version, os, device.
    type Expected = (
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    );

    fn details(expected: Expected) -> UserAgentDetails {
        let (name, version, os, device) = expected;
        UserAgentDetails {
            name: name.map(Box::from),
            version: version.map(Box::from),
            os: os.map(Box::from),
            device: device.map(Box::from),
        }
    }

    /// Real agents: from tests/fixtures, src/generate.rs, events/ and the AWS
    /// documentation, and as current browsers and tools send them.
    const CASES: &[(&str, UserAgentFamily, Expected)] = &[
        // uap-core.
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
            Browser,
            (Some("Chrome"), Some("123.0.0.0"), Some("Windows"), None),
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
            Browser,
            (Some("Edge"), Some("120.0.2210.91"), Some("Windows"), None),
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            Browser,
            (Some("Firefox"), Some("125.0"), Some("Linux"), None),
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            Browser,
            (
                Some("Mobile Safari"),
                Some("17.4"),
                Some("iOS"),
                Some("iPhone"),
            ),
        ),
        // Chrome's reduced agent says `Android 10; K` whatever the phone: uap-core's device is `K`.
        (
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
            Browser,
            (
                Some("Chrome Mobile"),
                Some("124.0.0.0"),
                Some("Android"),
                Some("K"),
            ),
        ),
        // uap-core's `Mac OS X` is reported as `macOS`.
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
            Browser,
            (Some("Safari"), Some("17.5"), Some("macOS"), Some("Mac")),
        ),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            Browser,
            (Some("Googlebot"), Some("2.1"), None, Some("Spider")),
        ),
        (
            "curl/7.88.1",
            Curl,
            (Some("curl"), Some("7.88.1"), None, None),
        ),
        (
            "curl/8.5.0",
            Curl,
            (Some("curl"), Some("8.5.0"), None, None),
        ),
        (
            "Wget/1.21.4",
            Wget,
            (Some("Wget"), Some("1.21.4"), None, None),
        ),
        // uap-core keeps only major.minor for python-requests.
        (
            "python-requests/2.32.3",
            Other,
            (Some("Python Requests"), Some("2.32"), None, None),
        ),
        (
            "Go-http-client/1.1",
            Other,
            (Some("Go-http-client"), Some("1.1"), None, None),
        ),
        // uap-core knows none of these scanners: every field is uap-core's `Other`.
        (
            "sqlmap/1.8.3#stable (https://sqlmap.org)",
            Scanner,
            (None, None, None, None),
        ),
        (
            "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
            Scanner,
            (None, None, None, None),
        ),
        (
            "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:Port Check)",
            Scanner,
            (None, None, None, None),
        ),
        ("", Other, (None, None, None, None)),
        (
            "\u{1}\u{7f} ;;(( ))// garbage",
            Other,
            (None, None, None, None),
        ),
        ("-", Other, (None, None, None, None)),
        // AWS rules. uap-core would call the first two a `Spider` (for `botocore`).
        (
            "aws-cli/1.11.13 Python/2.7.12 Linux/4.4.0-47-generic botocore/1.4.70",
            AwsCli,
            (Some("aws-cli"), Some("1.11.13"), Some("Linux"), None),
        ),
        (
            "aws-cli/1.24.10 Python/3.6.9 Linux/5.4.0-135-generic botocore/1.26.10",
            AwsCli,
            (Some("aws-cli"), Some("1.24.10"), Some("Linux"), None),
        ),
        (
            "aws-cli/1.18.69 Python/3.8.3 Windows/10 botocore/1.17.0",
            AwsCli,
            (Some("aws-cli"), Some("1.18.69"), Some("Windows"), None),
        ),
        (
            "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79 exe/x86_64.amzn.2023 prompt/off command/s3.cp",
            AwsCli,
            (Some("aws-cli"), Some("2.15.30"), Some("Linux"), None),
        ),
        (
            "aws-cli/2.13.5 Python/3.11.4 Darwin/22.6.0 exe/x86_64 prompt/off command/s3.ls",
            AwsCli,
            (Some("aws-cli"), Some("2.13.5"), Some("macOS"), None),
        ),
        (
            "aws-cli/2.22.0 md/awscrt#0.22.0 ua/2.0 os/windows#10 md/arch#amd64 lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off md/command#s3.cp",
            AwsCli,
            (Some("aws-cli"), Some("2.22.0"), Some("Windows"), None),
        ),
        (
            "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.1 md/arch#x86_64 lang/python#3.12.2 cfg/retry-mode#legacy Botocore/1.34.69",
            Boto3,
            (Some("Boto3"), Some("1.34.69"), Some("Linux"), None),
        ),
        (
            "Boto3/1.34.69 md/Botocore#1.34.69 Botocore/1.34.69",
            Boto3,
            (Some("Boto3"), Some("1.34.69"), None, None),
        ),
        (
            "Botocore/1.31.0 ua/2.0 os/macos#23.5.0 md/arch#arm64 lang/python#3.11.4",
            Boto3,
            (Some("Botocore"), Some("1.31.0"), Some("macOS"), None),
        ),
        (
            "aws-sdk-java/1.10.20 Linux/3.14.48-33.39.amzn1.x86_64 Java_HotSpot(TM)_64-Bit_Server_VM/25.60-b23/1.8.0_60",
            AwsSdk,
            (Some("aws-sdk-java"), Some("1.10.20"), Some("Linux"), None),
        ),
        (
            "aws-sdk-java/1.12.500 Mac_OS_X/13.4.1 OpenJDK_64-Bit_Server_VM/17.0.7+7 java/17.0.7 vendor/Eclipse_Adoptium",
            AwsSdk,
            (Some("aws-sdk-java"), Some("1.12.500"), Some("macOS"), None),
        ),
        (
            "aws-sdk-java/1.12.500 Windows_Server_2019/10.0 OpenJDK_64-Bit_Server_VM/11.0.19+7 java/11.0.19",
            AwsSdk,
            (
                Some("aws-sdk-java"),
                Some("1.12.500"),
                Some("Windows"),
                None,
            ),
        ),
        (
            "aws-sdk-java/2.25.16 Linux/5.10.213 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy",
            AwsSdk,
            (Some("aws-sdk-java"), Some("2.25.16"), Some("Linux"), None),
        ),
        (
            "aws-sdk-go/1.44.0 (go1.20; linux; amd64)",
            AwsSdk,
            (Some("aws-sdk-go"), Some("1.44.0"), Some("Linux"), None),
        ),
        (
            "aws-sdk-go-v2/1.24.0 os/macos lang/go#1.21.5 md/GOOS#darwin md/GOARCH#arm64 api/s3#1.48.0",
            AwsSdk,
            (Some("aws-sdk-go-v2"), Some("1.24.0"), Some("macOS"), None),
        ),
        (
            "aws-sdk-js/3.300.0 ua/2.0 os/darwin#22.1.0 lang/js md/nodejs#18.15.0 api/s3#3.300.0",
            AwsSdk,
            (Some("aws-sdk-js"), Some("3.300.0"), Some("macOS"), None),
        ),
        (
            "aws-sdk-nodejs/2.1354.0 linux/v18.15.0 exec-env/AWS_Lambda_nodejs18.x",
            AwsSdk,
            (
                Some("aws-sdk-nodejs"),
                Some("2.1354.0"),
                Some("Linux"),
                None,
            ),
        ),
        (
            "aws-sdk-rust/1.3.0 os/linux lang/rust/1.95.0",
            AwsSdk,
            (Some("aws-sdk-rust"), Some("1.3.0"), Some("Linux"), None),
        ),
        (
            "aws-sdk-rust/1.3.0 ua/2.0 os/other lang/rust#1.95.0",
            AwsSdk,
            (Some("aws-sdk-rust"), Some("1.3.0"), None, None),
        ),
        // The console and AWS's own traffic: the OS is the AWS service's.
        (
            "S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.488 Linux/5.10.216 OpenJDK_64-Bit_Server_VM/25.372-b08 java/1.8.0_372 vendor/Oracle_Corporation cfg/retry-mode/standard",
            S3Console,
            (Some("S3Console"), Some("0.4"), Some("Linux"), None),
        ),
        (
            "S3Console/0.4",
            S3Console,
            (Some("S3Console"), Some("0.4"), None, None),
        ),
        (
            "aws-internal/3 aws-sdk-java/1.12.690 Linux/5.10.213 OpenJDK_64-Bit_Server_VM/25.402-b08 java/1.8.0_402 kotlin/1.5.31 vendor/Oracle_Corporation cfg/retry-mode/standard",
            AwsInternal,
            (Some("aws-internal"), Some("3"), Some("Linux"), None),
        ),
        (
            "aws-internal",
            AwsInternal,
            (Some("aws-internal"), None, None, None),
        ),
    ];

    #[test]
    fn user_agent_cases() {
        for &(user_agent, family, expected) in CASES {
            assert_eq!(
                UserAgentFamily::classify(user_agent),
                family,
                "family of {user_agent:?}"
            );
            assert_eq!(
                parse_user_agent(user_agent, family),
                details(expected),
                "{user_agent:?}"
            );
        }
    }

    #[test]
    fn user_agent_regexes_build() {
        assert!(warm_up());
        assert!(build_extractor().is_some());
    }

    #[test]
    fn user_agent_aws_tokens() {
        // Any case, as the family is matched; a version must start with a digit.
        let cases: &[(&str, UserAgentFamily, Expected)] = &[
            (
                "boto3/1.28.0 Python/3.11.4 Windows/10 botocore/1.31.0",
                Boto3,
                (Some("boto3"), Some("1.28.0"), Some("Windows"), None),
            ),
            (
                "aws-sdk-java/unknown-version Windows_NT/10.0",
                AwsSdk,
                (Some("aws-sdk-java"), None, Some("Windows"), None),
            ),
            (
                "aws-sdk-js-v3-@aws-sdk/client-s3/3.54.0 os/linux/5.10.102 lang/js md/nodejs/14.19.0",
                AwsSdk,
                (
                    Some("aws-sdk-js-v3-@aws-sdk"),
                    Some("3.54.0"),
                    Some("Linux"),
                    None,
                ),
            ),
            (
                "aws-sdk-go/1.44.0 (go1.20; windows; amd64)",
                AwsSdk,
                (Some("aws-sdk-go"), Some("1.44.0"), Some("Windows"), None),
            ),
            (
                "aws-sdk-go/1.44.0 (go1.20; darwin; arm64)",
                AwsSdk,
                (Some("aws-sdk-go"), Some("1.44.0"), Some("macOS"), None),
            ),
            (
                "aws-sdk-cpp/1.11.200 ua/2.0 os/freebsd#14.0 lang/c++#C++11",
                AwsSdk,
                (Some("aws-sdk-cpp"), Some("1.11.200"), Some("freebsd"), None),
            ),
            (
                "aws-sdk-cpp/1.11.200 ua/2.0 os/<script>alert(1)</script> lang/c++#C++11",
                AwsSdk,
                (Some("aws-sdk-cpp"), Some("1.11.200"), None, None),
            ),
            // Found inside a token, as classify finds it: the name starts at the needle.
            (
                "[aws-cli/2.13.5]",
                AwsCli,
                (Some("aws-cli"), Some("2.13.5"), None, None),
            ),
        ];
        for &(user_agent, family, expected) in cases {
            assert_eq!(
                UserAgentFamily::classify(user_agent),
                family,
                "{user_agent:?}"
            );
            assert_eq!(
                parse_user_agent(user_agent, family),
                details(expected),
                "{user_agent:?}"
            );
        }
    }

    #[test]
    fn user_agent_versions() {
        assert_eq!(join_version([None, Some("1"), None, None]), None);
        assert_eq!(
            join_version([Some("7"), None, None, None]).as_deref(),
            Some("7")
        );
        assert_eq!(
            join_version([Some("7"), Some("88"), Some("1"), Some("2")]).as_deref(),
            Some("7.88.1.2")
        );
        assert_eq!(
            join_version([Some("7"), None, Some("1"), None]).as_deref(),
            Some("7")
        );
        assert_eq!(
            join_version([Some("7"), Some(""), None, None]).as_deref(),
            Some("7")
        );
        assert_eq!(known("Other"), None);
        assert_eq!(known(""), None);
        assert_eq!(known("Mac").as_deref(), Some("Mac"));
    }

    #[test]
    fn user_agent_cache_shares_answers() {
        let ua = "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79 exe/x86_64.amzn.2023 prompt/off command/s3.cp";
        let first = cached_details(ua, AwsCli);
        let second = cached_details(ua, AwsCli);
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(*first, parse_user_agent(ua, AwsCli));
        assert_eq!(first.name.as_deref(), Some("aws-cli"));

        let cache = DetailsCache::default();
        let ua = "curl/8.5.0";
        let first = cache.details(ua, Curl);
        assert!(Arc::ptr_eq(&first, &cache.details(ua, Curl)));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn user_agent_cache_is_bounded() {
        let cache = DetailsCache::default();
        for i in 0..5_000 {
            let ua = format!("curl/8.{i}.0");
            let details = cache.details(&ua, Curl);
            assert_eq!(details.version.as_deref(), Some(&*format!("8.{i}.0")));
            assert!(cache.len() <= CACHE_MAX_ENTRIES);
        }
        assert!(cache.len() <= CACHE_MAX_ENTRIES);
        assert_eq!(cache.len(), 5_000 - CACHE_MAX_ENTRIES);

        // Longer agents are parsed, never cached.
        let cache = DetailsCache::default();
        let long = format!("curl/8.5.0 {}", "x".repeat(CACHE_MAX_AGENT_BYTES));
        let first = cache.details(&long, Curl);
        assert_eq!(first.name.as_deref(), Some("curl"));
        assert!(!Arc::ptr_eq(&first, &cache.details(&long, Curl)));
        assert_eq!(cache.len(), 0);
        let limit = "x".repeat(CACHE_MAX_AGENT_BYTES);
        cache.details(&limit, Other);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn user_agent_cache_survives_a_poisoned_lock() {
        let cache = DetailsCache::default();
        cache.details("Wget/1.21.4", Wget);
        let poisoner = std::thread::scope(|s| {
            s.spawn(|| {
                let _guard = cache.lock();
                panic!("poisons the cache's lock");
            })
            .join()
        });
        assert!(poisoner.is_err());
        assert!(cache.map.is_poisoned());
        let details = cache.details("Wget/1.21.4", Wget);
        assert_eq!(details.name.as_deref(), Some("Wget"));
        assert_eq!(cache.len(), 1);
    }
}
