//! Why a line is not a record: a small `Copy` error that names the field and the byte column.

use std::fmt;

/// The positional fields of an S3 server access log record, in log order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// Canonical ID of the source bucket's owner.
    BucketOwner,
    /// The bucket the request was made to.
    Bucket,
    /// `[dd/Mon/yyyy:HH:MM:SS ±hhmm]`.
    Time,
    /// The requester's apparent IP address.
    RemoteIp,
    /// Canonical ID, ARN, service name or `-` for anonymous.
    Requester,
    /// The request ID.
    RequestId,
    /// `REST.GET.OBJECT` and friends.
    Operation,
    /// The URL-encoded object key.
    Key,
    /// The quoted request line.
    RequestUri,
    /// The numeric HTTP status.
    HttpStatus,
    /// The S3 error code.
    ErrorCode,
    /// Response bytes sent, excluding protocol overhead.
    BytesSent,
    /// Total size of the object.
    ObjectSize,
    /// Milliseconds the request was in flight.
    TotalTime,
    /// Milliseconds S3 spent before the response started.
    TurnAroundTime,
    /// The quoted `Referer` header.
    Referer,
    /// The quoted `User-Agent` header.
    UserAgent,
    /// The object version ID.
    VersionId,
    /// The `x-amz-id-2` host ID.
    HostId,
    /// `SigV2`, `SigV4` or `-`.
    SignatureVersion,
    /// The TLS cipher suite.
    CipherSuite,
    /// `AuthHeader`, `QueryString` or `-`.
    AuthenticationType,
    /// The endpoint used to connect.
    HostHeader,
    /// The TLS version.
    TlsVersion,
    /// The access point ARN.
    AccessPointArn,
    /// `Yes` when an ACL was required to authorize the request.
    AclRequired,
    /// The AWS Region the request came from (added in 2026).
    SourceRegion,
}

impl Field {
    /// Every known field in log order; the index is the field's position on the line.
    pub const ALL: [Field; 27] = [
        Field::BucketOwner,
        Field::Bucket,
        Field::Time,
        Field::RemoteIp,
        Field::Requester,
        Field::RequestId,
        Field::Operation,
        Field::Key,
        Field::RequestUri,
        Field::HttpStatus,
        Field::ErrorCode,
        Field::BytesSent,
        Field::ObjectSize,
        Field::TotalTime,
        Field::TurnAroundTime,
        Field::Referer,
        Field::UserAgent,
        Field::VersionId,
        Field::HostId,
        Field::SignatureVersion,
        Field::CipherSuite,
        Field::AuthenticationType,
        Field::HostHeader,
        Field::TlsVersion,
        Field::AccessPointArn,
        Field::AclRequired,
        Field::SourceRegion,
    ];

    /// The field's name in the NDJSON output, which is also how errors name it.
    pub fn name(self) -> &'static str {
        match self {
            Field::BucketOwner => "bucket_owner",
            Field::Bucket => "bucket",
            Field::Time => "time",
            Field::RemoteIp => "remote_ip",
            Field::Requester => "requester",
            Field::RequestId => "request_id",
            Field::Operation => "operation",
            Field::Key => "key",
            Field::RequestUri => "request_uri",
            Field::HttpStatus => "http_status",
            Field::ErrorCode => "error_code",
            Field::BytesSent => "bytes_sent",
            Field::ObjectSize => "object_size",
            Field::TotalTime => "total_time_ms",
            Field::TurnAroundTime => "turn_around_time_ms",
            Field::Referer => "referer",
            Field::UserAgent => "user_agent",
            Field::VersionId => "version_id",
            Field::HostId => "host_id",
            Field::SignatureVersion => "signature_version",
            Field::CipherSuite => "cipher_suite",
            Field::AuthenticationType => "authentication_type",
            Field::HostHeader => "host_header",
            Field::TlsVersion => "tls_version",
            Field::AccessPointArn => "access_point_arn",
            Field::AclRequired => "acl_required",
            Field::SourceRegion => "source_region",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong in a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseErrorKind {
    /// The line ended before this field; records need at least 18 fields.
    MissingField,
    /// A quoted field has no closing `"` followed by a space or the end of the line.
    UnterminatedQuote,
    /// The time field has no closing `]`.
    UnterminatedBracket,
    /// The time is not `[dd/Mon/yyyy:HH:MM:SS ±hhmm]`.
    InvalidTime,
    /// A numeric field holds something other than digits or `-`.
    InvalidNumber,
    /// `aclRequired` is neither `Yes` nor `-`. No longer produced: such a line is a record
    /// whose raw value is kept (`LogRecord::acl_required_unparsed`). Kept so that the
    /// names of error kinds, a public contract, stay stable.
    InvalidFlag,
}

impl ParseErrorKind {
    /// A stable, machine-readable code for this kind (used in rejected records).
    pub fn code(self) -> &'static str {
        match self {
            ParseErrorKind::MissingField => "missing_field",
            ParseErrorKind::UnterminatedQuote => "unterminated_quote",
            ParseErrorKind::UnterminatedBracket => "unterminated_bracket",
            ParseErrorKind::InvalidTime => "invalid_time",
            ParseErrorKind::InvalidNumber => "invalid_number",
            ParseErrorKind::InvalidFlag => "invalid_flag",
        }
    }
}

/// A line that is not a record: which field failed, how, and at which byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{} in field `{field}` at byte column {column}", kind.code())]
pub struct ParseError {
    /// How the field failed.
    pub kind: ParseErrorKind,
    /// The field that failed.
    pub field: Field,
    /// 1-based byte column where the failing field starts (or where the line ended).
    pub column: usize,
}
