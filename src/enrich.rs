//! From a parsed [`LogRecord`] to the curated record: decoded key, split request line,
//! status class, who the requester is, which client they used, and where the line came
//! from. [`Enriched::write_json`] renders the NDJSON contract documented in `SCHEMA.md`.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use crate::access_log::LogRecord;
use crate::geo::ClientNetwork;
use crate::json::{ObjectWriter, key};
use crate::json_record::JsonLeftovers;
use crate::keys::decode_logged_key_in;
pub use crate::keys::{KeyEncoding, KeyScratch, decode_logged_key};
use crate::keys::{Plus, push_decoded};
use crate::recent::RecentAnswers;
use crate::user_agent::{UserAgentDetails, cached_details};

/// Where a line came from: the log object (when known) and the 1-based line number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lineage<'a> {
    /// `s3://bucket/key` of the log object, or a file path; `None` for stdin.
    pub source_object: Option<&'a str>,
    /// 1-based line number within the (decompressed) log object.
    pub source_line: u64,
}

/// The parts of the quoted request line, `METHOD PATH?QUERY HTTP/x.y`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestLine<'a> {
    /// `GET`, `PUT`, ...
    pub method: Option<&'a str>,
    /// The path, without the query string.
    pub path: Option<&'a str>,
    /// The query string without the leading `?`; `None` when there is no `?`.
    pub query: Option<&'a str>,
    /// `HTTP/1.1` and the like.
    pub http_version: Option<&'a str>,
}

impl<'a> RequestLine<'a> {
    /// Splits a request line; a missing request line gives all `None`.
    pub fn split(request_uri: Option<&'a str>) -> Self {
        let Some(uri) = request_uri.map(str::trim).filter(|u| !u.is_empty()) else {
            return Self::default();
        };
        let (method, rest) = match memchr::memchr(b' ', uri.as_bytes()) {
            Some(i) => (Some(&uri[..i]), uri[i + 1..].trim_start()),
            None => (None, uri),
        };
        let (target, http_version) = match memchr::memrchr(b' ', rest.as_bytes()) {
            Some(i) if rest[i + 1..].starts_with("HTTP/") => {
                (rest[..i].trim_end(), Some(&rest[i + 1..]))
            }
            _ if rest.starts_with("HTTP/") && method.is_some() => ("", Some(rest)),
            _ => (rest, None),
        };
        let (path, query) = match memchr::memchr(b'?', target.as_bytes()) {
            Some(i) => (&target[..i], Some(&target[i + 1..])),
            None => (target, None),
        };
        Self {
            method,
            path: (!path.is_empty()).then_some(path),
            query,
            http_version,
        }
    }
}

/// Who made the request, as far as the requester field tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequesterType {
    /// `-`: an unauthenticated request.
    Anonymous,
    /// A 64-hex-digit canonical user ID.
    CanonicalUser,
    /// `arn:aws:iam::ACCOUNT:user/...`.
    IamUser,
    /// `arn:aws:iam::ACCOUNT:root`: the account's root user.
    AccountRoot,
    /// `arn:aws:sts::ACCOUNT:assumed-role/...`.
    AssumedRole,
    /// `arn:aws:sts::ACCOUNT:federated-user/...`.
    FederatedUser,
    /// An AWS service acting on its own: `svc:...`, `AmazonS3`, a `*.amazonaws.com`
    /// principal, or a CloudFront origin access identity.
    AwsService,
    /// Anything else, such as an S3-compatible provider's own user IDs.
    Other,
}

impl RequesterType {
    /// Classifies a requester field (`None` is anonymous).
    pub fn classify(requester: Option<&str>) -> Self {
        Self::classify_with_account(requester).0
    }

    /// Classifies a requester and pulls out its AWS account ID, reading an ARN only once.
    pub fn classify_with_account(requester: Option<&str>) -> (Self, Option<&str>) {
        let Some(r) = requester else {
            return (Self::Anonymous, None);
        };
        if r.starts_with("svc:") || r == "AmazonS3" || r.ends_with(".amazonaws.com") {
            return (Self::AwsService, None);
        }
        if let Some(arn) = Arn::parse(r) {
            let account = (arn.account.len() == 12
                && arn.account.bytes().all(|b| b.is_ascii_digit()))
            .then_some(arn.account);
            let kind = match (arn.service, arn.account, arn.resource) {
                ("iam", "cloudfront", _) | ("iam", "aws", _) => Self::AwsService,
                ("iam", _, "root") => Self::AccountRoot,
                ("iam", _, res) if res.starts_with("user/") => Self::IamUser,
                ("sts", _, res) if res.starts_with("assumed-role/") => Self::AssumedRole,
                ("sts", _, res) if res.starts_with("federated-user/") => Self::FederatedUser,
                _ => Self::Other,
            };
            return (kind, account);
        }
        if r.len() == 64 && r.bytes().all(|b| b.is_ascii_hexdigit()) {
            return (Self::CanonicalUser, None);
        }
        (Self::Other, None)
    }

    /// The value written to `requester_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::CanonicalUser => "canonical_user",
            Self::IamUser => "iam_user",
            Self::AccountRoot => "account_root",
            Self::AssumedRole => "assumed_role",
            Self::FederatedUser => "federated_user",
            Self::AwsService => "aws_service",
            Self::Other => "other",
        }
    }
}

/// The six colon-separated parts of an ARN; the resource may itself contain colons.
struct Arn<'a> {
    service: &'a str,
    account: &'a str,
    resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Splits `arn:partition:service:region:account:resource`.
    fn parse(s: &'a str) -> Option<Self> {
        let rest = s.strip_prefix("arn:")?;
        let mut colons = memchr::memchr_iter(b':', rest.as_bytes());
        let after_partition = colons.next()?;
        let after_service = colons.next()?;
        let after_region = colons.next()?;
        let after_account = colons.next()?;
        Some(Self {
            service: &rest[after_partition + 1..after_service],
            account: &rest[after_region + 1..after_account],
            resource: &rest[after_account + 1..],
        })
    }
}

/// The 12-digit AWS account ID inside an ARN requester, if it has one.
pub fn requester_account_id(requester: Option<&str>) -> Option<&str> {
    RequesterType::classify_with_account(requester).1
}

/// Which kind of client sent the request, from its user agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserAgentFamily {
    /// A known vulnerability or port scanner (sqlmap, nikto, masscan, zgrab, nmap, ...).
    Scanner,
    /// The S3 console in a browser.
    S3Console,
    /// AWS's own internal traffic (`aws-internal/...`): replication, inventory, and so on.
    AwsInternal,
    /// The AWS CLI.
    AwsCli,
    /// Python's boto3 / botocore.
    Boto3,
    /// Any other AWS SDK (`aws-sdk-java`, `aws-sdk-go`, `aws-sdk-js`, `aws-sdk-rust`, ...).
    AwsSdk,
    /// curl.
    Curl,
    /// GNU Wget.
    Wget,
    /// A web browser (`Mozilla/...`).
    Browser,
    /// Anything else.
    Other,
}

/// Case-insensitive needles, each with the family it signals. When several match, the
/// family declared first in [`UserAgentFamily`] wins (a scanner posing as a browser is a
/// scanner; the AWS CLI carries `botocore` but is the CLI).
const USER_AGENT_NEEDLES: &[(&str, UserAgentFamily)] = &[
    ("sqlmap", UserAgentFamily::Scanner),
    ("nikto", UserAgentFamily::Scanner),
    ("masscan", UserAgentFamily::Scanner),
    ("zgrab", UserAgentFamily::Scanner),
    ("nmap", UserAgentFamily::Scanner),
    ("nuclei", UserAgentFamily::Scanner),
    ("gobuster", UserAgentFamily::Scanner),
    ("dirbuster", UserAgentFamily::Scanner),
    ("wpscan", UserAgentFamily::Scanner),
    ("acunetix", UserAgentFamily::Scanner),
    ("nessus", UserAgentFamily::Scanner),
    ("openvas", UserAgentFamily::Scanner),
    ("s3scanner", UserAgentFamily::Scanner),
    ("s3console", UserAgentFamily::S3Console),
    ("aws-internal", UserAgentFamily::AwsInternal),
    ("aws-cli/", UserAgentFamily::AwsCli),
    ("boto3/", UserAgentFamily::Boto3),
    ("botocore/", UserAgentFamily::Boto3),
    ("aws-sdk-", UserAgentFamily::AwsSdk),
    ("curl/", UserAgentFamily::Curl),
    ("wget/", UserAgentFamily::Wget),
    ("mozilla/", UserAgentFamily::Browser),
];

static USER_AGENT_MATCHER: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .build(USER_AGENT_NEEDLES.iter().map(|(needle, _)| needle))
        .ok()
});

impl UserAgentFamily {
    /// Classifies a user agent in one pass over its bytes.
    pub fn classify(user_agent: &str) -> Self {
        let Some(matcher) = USER_AGENT_MATCHER.as_ref() else {
            return Self::Other;
        };
        matcher
            .find_overlapping_iter(user_agent)
            .filter_map(|m| USER_AGENT_NEEDLES.get(m.pattern().as_usize()))
            .map(|&(_, family)| family)
            .min()
            .unwrap_or(Self::Other)
    }

    /// The value written to `user_agent_family`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scanner => "scanner",
            Self::S3Console => "s3-console",
            Self::AwsInternal => "aws-internal",
            Self::AwsCli => "aws-cli",
            Self::Boto3 => "boto3",
            Self::AwsSdk => "aws-sdk",
            Self::Curl => "curl",
            Self::Wget => "wget",
            Self::Browser => "browser",
            Self::Other => "other",
        }
    }
}

/// Remembers the last few user agents it classified. A log object holds few distinct user
/// agents, so this turns most classifications into one length check and one `memcmp`.
/// Its size is fixed: memory does not grow with the number of distinct agents.
#[derive(Debug, Default)]
pub struct UserAgentCache {
    recent: RecentAnswers<(UserAgentFamily, Arc<UserAgentDetails>), USER_AGENT_CACHE_SLOTS>,
}

const USER_AGENT_CACHE_SLOTS: usize = 16;

impl UserAgentCache {
    /// Same answer as [`UserAgentFamily::classify`], usually faster.
    pub fn classify(&mut self, user_agent: &str) -> UserAgentFamily {
        self.agent(user_agent).0
    }

    /// The family and the details (name, version, OS, device) of `user_agent`.
    pub fn agent(&mut self, user_agent: &str) -> (UserAgentFamily, Arc<UserAgentDetails>) {
        if let Some((family, details)) = self.recent.get(user_agent) {
            return (*family, Arc::clone(details));
        }
        let family = UserAgentFamily::classify(user_agent);
        let details = cached_details(user_agent, family);
        self.recent
            .remember(user_agent, (family, Arc::clone(&details)));
        (family, details)
    }
}

/// `"2xx"` for 200..=299 and so on; `None` outside 100..=599.
pub fn status_class(status: Option<u16>) -> Option<&'static str> {
    match status? {
        100..=199 => Some("1xx"),
        200..=299 => Some("2xx"),
        300..=399 => Some("3xx"),
        400..=499 => Some("4xx"),
        500..=599 => Some("5xx"),
        _ => None,
    }
}

/// Percent-decodes a string once, keeping `+` a plus. Invalid escapes are kept as written;
/// decoded bytes that are not UTF-8 become U+FFFD. This is one pass only: the curated
/// `key_decoded` comes from [`decode_logged_key`], which knows how S3 encoded the key field
/// for each operation.
pub fn decode_key(key: &str) -> Cow<'_, str> {
    let mut decoded = Vec::new();
    if !decode_key_into(key, &mut decoded) {
        return Cow::Borrowed(key);
    }
    match String::from_utf8(decoded) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// Percent-decodes `key` into `out` (cleared first); `false`, leaving `out` alone, when the
/// key has no `%` and so decodes to itself.
fn decode_key_into(key: &str, out: &mut Vec<u8>) -> bool {
    if memchr::memchr(b'%', key.as_bytes()).is_none() {
        return false;
    }
    out.clear();
    push_decoded(key.as_bytes(), Plus::Keep, out);
    true
}

/// A curated record: the parsed fields plus everything derived from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enriched<'a> {
    /// The parsed log fields.
    pub record: LogRecord<'a>,
    /// The object's real key, decoded as S3 encoded it for this operation.
    pub key_decoded: Option<Cow<'a, str>>,
    /// The request line, split.
    pub request: RequestLine<'a>,
    /// `"2xx"` ... `"5xx"`.
    pub status_class: Option<&'static str>,
    /// Who the requester is.
    pub requester_type: RequesterType,
    /// The requester's AWS account, from its ARN.
    pub requester_account_id: Option<&'a str>,
    /// Which client sent the request; `None` when there is no user agent.
    pub user_agent_family: Option<UserAgentFamily>,
    /// Where the line came from.
    pub lineage: Lineage<'a>,
    /// True when the line was not valid UTF-8 and invalid bytes became U+FFFD.
    pub utf8_lossy: bool,
    /// The AWS Region of the endpoint in the host header ([`crate::endpoint`]).
    pub endpoint_region: Option<&'a str>,
    /// Where the client is and whose network it is on ([`crate::geo`]); `None` without
    /// databases or when they know nothing of the address.
    pub client: Option<ClientNetwork>,
    /// The user agent's name, version, OS and device ([`crate::user_agent`]); `None`
    /// without a user agent.
    pub user_agent_details: Option<Arc<UserAgentDetails>>,
    /// What a JSON record held beyond the log fields; `None` for a text line.
    pub json_leftovers: Option<&'a JsonLeftovers>,
}

impl<'a> Enriched<'a> {
    /// Derives the enrichment fields from a parsed record.
    pub fn new(record: LogRecord<'a>, lineage: Lineage<'a>, utf8_lossy: bool) -> Self {
        let request = RequestLine::split(record.request_uri);
        let key_decoded = record
            .key
            .map(|key| decode_logged_key(key, record.operation, record.bucket, request.path));
        let agent = record.user_agent.map(|ua| {
            let family = UserAgentFamily::classify(ua);
            (family, cached_details(ua, family))
        });
        Self::assemble(record, request, lineage, utf8_lossy, key_decoded, agent)
    }

    /// Like [`Enriched::new`], reusing a user-agent cache across records of one stream and
    /// buffers for the decoded key, so enriching a record allocates nothing.
    #[inline(always)]
    pub fn with_cache(
        record: LogRecord<'a>,
        lineage: Lineage<'a>,
        utf8_lossy: bool,
        user_agents: &mut UserAgentCache,
        key_scratch: &'a mut KeyScratch,
    ) -> Self {
        let request = RequestLine::split(record.request_uri);
        let key_decoded = record.key.map(|key| {
            Cow::Borrowed(decode_logged_key_in(
                key,
                record.operation,
                record.bucket,
                request.path,
                key_scratch,
            ))
        });
        let agent = record.user_agent.map(|ua| user_agents.agent(ua));
        Self::assemble(record, request, lineage, utf8_lossy, key_decoded, agent)
    }

    /// A JSON record's enrichment: its key is the real key already (the structured
    /// format does not URL-encode it), and what did not map is rendered with the record.
    pub fn from_json(
        record: LogRecord<'a>,
        leftovers: &'a JsonLeftovers,
        lineage: Lineage<'a>,
        utf8_lossy: bool,
        user_agents: &mut UserAgentCache,
    ) -> Self {
        let request = RequestLine::split(record.request_uri);
        let key_decoded = record.key.map(Cow::Borrowed);
        let agent = record.user_agent.map(|ua| user_agents.agent(ua));
        let mut enriched = Self::assemble(record, request, lineage, utf8_lossy, key_decoded, agent);
        enriched.json_leftovers = Some(leftovers);
        enriched
    }

    #[inline(always)]
    fn assemble(
        record: LogRecord<'a>,
        request: RequestLine<'a>,
        lineage: Lineage<'a>,
        utf8_lossy: bool,
        key_decoded: Option<Cow<'a, str>>,
        agent: Option<(UserAgentFamily, Arc<UserAgentDetails>)>,
    ) -> Self {
        let (requester_type, requester_account_id) =
            RequesterType::classify_with_account(record.requester);
        let (user_agent_family, user_agent_details) = agent.unzip();
        Self {
            key_decoded,
            request,
            status_class: status_class(record.http_status),
            requester_type,
            requester_account_id,
            user_agent_family,
            endpoint_region: record
                .host_header
                .and_then(crate::endpoint::endpoint_region_cached),
            client: None,
            user_agent_details,
            record,
            lineage,
            utf8_lossy,
            json_leftovers: None,
        }
    }

    /// Appends this record as one JSON object (no newline) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.write_json_trusting(out, false, None);
    }

    /// Like [`Enriched::write_json`]; `line_is_clean` promises that no field sliced from
    /// the line needs JSON escaping (no `\\`, no control byte, and every `"` on the line
    /// was a field delimiter), which skips the per-field escape checks.
    /// `source_object_json`, when given, is the `source_object` field already rendered
    /// (by `json::render_field`) from this record's `lineage.source_object`.
    pub(crate) fn write_json_trusting(
        &self,
        out: &mut Vec<u8>,
        line_is_clean: bool,
        source_object_json: Option<&[u8]>,
    ) {
        let r = &self.record;
        let mut o = ObjectWriter::trusting(out, line_is_clean);
        o.str(key!("bucket_owner"), r.bucket_owner);
        o.str(key!("bucket"), r.bucket);
        o.str(key!("time"), Some(r.time.rfc3339().as_str()));
        o.str(key!("remote_ip"), r.remote_ip);
        o.str(key!("requester"), r.requester);
        o.str(key!("request_id"), r.request_id);
        o.str(key!("operation"), r.operation);
        o.str(key!("key"), r.key);
        o.str(key!("request_uri"), r.request_uri);
        o.u64(key!("http_status"), r.http_status.map(u64::from));
        o.str(key!("error_code"), r.error_code);
        o.u64(key!("bytes_sent"), r.bytes_sent);
        o.u64(key!("object_size"), r.object_size);
        o.u64(key!("total_time_ms"), r.total_time_ms);
        o.u64(key!("turn_around_time_ms"), r.turn_around_time_ms);
        o.str(key!("referer"), r.referer);
        o.str(key!("user_agent"), r.user_agent);
        o.str(key!("version_id"), r.version_id);
        o.str(key!("host_id"), r.host_id);
        o.str(key!("signature_version"), r.signature_version);
        o.str(key!("cipher_suite"), r.cipher_suite);
        o.str(key!("authentication_type"), r.authentication_type);
        o.str(key!("host_header"), r.host_header);
        o.str(key!("tls_version"), r.tls_version);
        o.str(key!("access_point_arn"), r.access_point_arn);
        o.bool(key!("acl_required"), r.acl_required);
        o.str(key!("source_region"), r.source_region);
        if !r.extra.is_empty() {
            o.str_array(key!("extra_fields"), r.extra_fields());
        }
        let json_unparsed = self.json_leftovers.map_or(&[][..], |l| &l.unparsed[..]);
        if r.acl_required_unparsed.is_some() || !json_unparsed.is_empty() {
            let from_json = json_unparsed
                .iter()
                .map(|(name, raw)| (*name, raw.as_str()));
            let from_line = r.acl_required_unparsed.map(|raw| ("acl_required", raw));
            o.str_map(
                key!("unparsed_fields"),
                from_line.into_iter().chain(from_json),
            );
        }
        // A key that decodes to itself is a slice of the line; anything decoded may hold
        // quotes or control characters (`%22`, `%0A`) and is always checked.
        match self.key_decoded.as_deref() {
            Some(key) if Some(key) == r.key => o.str(key!("key_decoded"), Some(key)),
            decoded => o.untrusted_str(key!("key_decoded"), decoded),
        }
        o.str(key!("request_method"), self.request.method);
        o.str(key!("request_path"), self.request.path);
        o.str(key!("request_query"), self.request.query);
        o.str(key!("http_version"), self.request.http_version);
        o.str(key!("status_class"), self.status_class);
        o.str(key!("requester_type"), Some(self.requester_type.as_str()));
        o.str(key!("requester_account_id"), self.requester_account_id);
        o.str(
            key!("user_agent_family"),
            self.user_agent_family.map(UserAgentFamily::as_str),
        );
        o.u64(key!("source_line"), Some(self.lineage.source_line));
        match (source_object_json, self.lineage.source_object) {
            (Some(rendered), Some(_)) => o.rendered(rendered),
            (_, Some(source)) => o.untrusted_str(key!("source_object"), Some(source)),
            (_, None) => {}
        }
        if self.utf8_lossy {
            o.bool(key!("utf8_lossy"), Some(true));
        }
        // Client and endpoint context (issue 13) comes last, so older fields keep their
        // places.
        o.str(key!("endpoint_region"), self.endpoint_region);
        self.write_client_context(&mut o);
        if let Some(unknown) = self.json_leftovers.map(|l| &l.unknown)
            && !unknown.is_empty()
        {
            o.escaped_map(
                key!("extra_json_fields"),
                unknown.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            );
        }
        o.finish();
    }

    /// The client's network and software: database values and names taken from a user
    /// agent may hold anything, so each is escaped as needed.
    fn write_client_context(&self, o: &mut ObjectWriter<'_>) {
        let client = self.client.as_ref();
        o.untrusted_str(
            key!("client_country"),
            client.and_then(ClientNetwork::country),
        );
        o.untrusted_str(key!("client_city"), client.and_then(ClientNetwork::city));
        o.u64(
            key!("client_asn"),
            client.and_then(ClientNetwork::asn).map(u64::from),
        );
        o.untrusted_str(
            key!("client_as_org"),
            client.and_then(ClientNetwork::as_org),
        );
        let agent = self.user_agent_details.as_deref();
        o.untrusted_str(
            key!("user_agent_name"),
            agent.and_then(|a| a.name.as_deref()),
        );
        o.untrusted_str(
            key!("user_agent_version"),
            agent.and_then(|a| a.version.as_deref()),
        );
        o.untrusted_str(key!("user_agent_os"), agent.and_then(|a| a.os.as_deref()));
        o.untrusted_str(
            key!("user_agent_device"),
            agent.and_then(|a| a.device.as_deref()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! classifies {
        ($name:ident, $f:expr, $input:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!($f($input), $expected);
            }
        };
    }

    use RequesterType as R;
    classifies!(dash_is_anonymous, R::classify, None, R::Anonymous);
    classifies!(
        canonical_id,
        R::classify,
        Some("79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"),
        R::CanonicalUser
    );
    classifies!(
        iam_user,
        R::classify,
        Some("arn:aws:iam::123456789012:user/alice"),
        R::IamUser
    );
    classifies!(
        gov_cloud_iam_user,
        R::classify,
        Some("arn:aws-us-gov:iam::123456789012:user/bob"),
        R::IamUser
    );
    classifies!(
        account_root,
        R::classify,
        Some("arn:aws:iam::123456789012:root"),
        R::AccountRoot
    );
    classifies!(
        assumed_role,
        R::classify,
        Some("arn:aws:sts::123456789012:assumed-role/Admin/session"),
        R::AssumedRole
    );
    classifies!(
        federated_user,
        R::classify,
        Some("arn:aws:sts::123456789012:federated-user/carol"),
        R::FederatedUser
    );
    classifies!(
        svc_prefix,
        R::classify,
        Some("svc:s3.amazonaws.com"),
        R::AwsService
    );
    classifies!(amazon_s3, R::classify, Some("AmazonS3"), R::AwsService);
    classifies!(
        service_principal,
        R::classify,
        Some("delivery.logs.amazonaws.com"),
        R::AwsService
    );
    classifies!(
        cloudfront_oai,
        R::classify,
        Some("arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity E2QWRUHAPOMQZL"),
        R::AwsService
    );
    classifies!(
        ovh_user_is_other,
        R::classify,
        Some("1542319462669586:user-5hwhM25pPT6f"),
        R::Other
    );

    classifies!(
        account_from_role,
        requester_account_id,
        Some("arn:aws:sts::123456789012:assumed-role/A/b"),
        Some("123456789012")
    );
    classifies!(
        no_account_for_cloudfront,
        requester_account_id,
        Some("arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity E2"),
        None
    );
    classifies!(
        no_account_for_canonical,
        requester_account_id,
        Some("79a59df900b949e5"),
        None
    );

    use UserAgentFamily as U;
    classifies!(
        aws_cli,
        U::classify,
        "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.amzn.2 prompt/off command/s3.cp",
        U::AwsCli
    );
    classifies!(
        aws_cli_v1_with_botocore,
        U::classify,
        "aws-cli/1.24.10 Python/3.6.9 Linux/5.4.0-135-generic botocore/1.26.10",
        U::AwsCli
    );
    classifies!(
        boto3,
        U::classify,
        "Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#6.1 lang/python#3.12.1 Botocore/1.34.0",
        U::Boto3
    );
    classifies!(
        java_sdk,
        U::classify,
        "aws-sdk-java/2.20.0 Linux/5.10 OpenJDK_64-Bit_Server_VM/17",
        U::AwsSdk
    );
    classifies!(
        rust_sdk,
        U::classify,
        "aws-sdk-rust/1.3.0 os/linux lang/rust/1.95.0",
        U::AwsSdk
    );
    classifies!(
        console,
        U::classify,
        "S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.488",
        U::S3Console
    );
    classifies!(
        internal,
        U::classify,
        "aws-internal/3 aws-sdk-java/1.12.488 Linux/5.10",
        U::AwsInternal
    );
    classifies!(
        firefox,
        U::classify,
        "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        U::Browser
    );
    classifies!(curl, U::classify, "curl/8.4.0", U::Curl);
    classifies!(wget, U::classify, "Wget/1.21.3", U::Wget);
    classifies!(
        nmap_posing_as_browser,
        U::classify,
        "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
        U::Scanner
    );
    classifies!(
        sqlmap,
        U::classify,
        "sqlmap/1.7.2#stable (https://sqlmap.org)",
        U::Scanner
    );
    classifies!(zgrab, U::classify, "Mozilla/5.0 zgrab/0.x", U::Scanner);
    classifies!(unknown_agent, U::classify, "Go-http-client/1.1", U::Other);

    macro_rules! splits_request {
        ($name:ident, $input:expr, $m:expr, $p:expr, $q:expr, $v:expr) => {
            #[test]
            fn $name() {
                let r = RequestLine::split($input);
                assert_eq!(
                    (r.method, r.path, r.query, r.http_version),
                    ($m, $p, $q, $v)
                );
            }
        };
    }
    splits_request!(
        get_with_query,
        Some("GET /b/k?versionId=3 HTTP/1.1"),
        Some("GET"),
        Some("/b/k"),
        Some("versionId=3"),
        Some("HTTP/1.1")
    );
    splits_request!(
        no_query,
        Some("PUT /b/a%20b HTTP/1.0"),
        Some("PUT"),
        Some("/b/a%20b"),
        None,
        Some("HTTP/1.0")
    );
    splits_request!(
        empty_query,
        Some("GET /?logging HTTP/1.0"),
        Some("GET"),
        Some("/"),
        Some("logging"),
        Some("HTTP/1.0")
    );
    splits_request!(
        unencoded_space_in_path,
        Some("GET /b/a b HTTP/1.1"),
        Some("GET"),
        Some("/b/a b"),
        None,
        Some("HTTP/1.1")
    );
    splits_request!(
        no_version,
        Some("GET /b/k"),
        Some("GET"),
        Some("/b/k"),
        None,
        None
    );
    splits_request!(missing, None, None, None, None, None);

    macro_rules! decodes_key {
        ($name:ident, $input:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(decode_key($input), $expected);
            }
        };
    }
    decodes_key!(plain_key_is_borrowed, "a/b.txt", "a/b.txt");
    decodes_key!(space, "my%20file.txt", "my file.txt");
    decodes_key!(plus_is_a_plus, "noog+nork", "noog+nork");
    decodes_key!(encoded_plus, "a%2Bb", "a+b");
    decodes_key!(utf8_multibyte, "caf%C3%A9", "café");
    decodes_key!(invalid_escape_kept, "100%zz", "100%zz");
    decodes_key!(truncated_escape_kept, "abc%4", "abc%4");
    decodes_key!(invalid_utf8_replaced, "%FF", "\u{FFFD}");

    #[test]
    fn cache_agrees_with_classify_and_stays_bounded() {
        let mut cache = UserAgentCache::default();
        for round in 0..3 {
            for i in 0..40 {
                let ua = if i % 2 == 0 {
                    format!("curl/{i}")
                } else {
                    format!("sqlmap/{i}")
                };
                assert_eq!(
                    cache.classify(&ua),
                    UserAgentFamily::classify(&ua),
                    "round {round}"
                );
            }
        }
        assert_eq!(cache.recent.len(), USER_AGENT_CACHE_SLOTS);
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(Some(204)), Some("2xx"));
        assert_eq!(status_class(Some(403)), Some("4xx"));
        assert_eq!(status_class(Some(503)), Some("5xx"));
        assert_eq!(status_class(Some(99)), None);
        assert_eq!(status_class(None), None);
    }
}
