//! The lake's columns: SCHEMA.md's fields with their Parquet types, in NDJSON order. One
//! table serves the Arrow schema the writer uses and the Glue types `template.yaml` must
//! declare (`tests/template.rs` compares them).

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// The time zone the Arrow `time` column carries: UTC as an offset.
pub const UTC_OFFSET: &str = "+00:00";

/// A lake column's type, named by what a query sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text (`string`).
    Text,
    /// A UTC instant with millisecond resolution (`timestamp`); the records' times have
    /// whole seconds.
    Timestamp,
    /// A 32-bit integer (`int`), for `http_status`.
    Int,
    /// A 64-bit integer (`bigint`).
    BigInt,
    /// `boolean`.
    Boolean,
    /// A list of text (`array<string>`).
    TextList,
    /// Text keys to text values (`map<string,string>`).
    TextMap,
}

impl ColumnType {
    /// The type's name in a Glue (Hive) table.
    pub fn glue(self) -> &'static str {
        match self {
            ColumnType::Text => "string",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Int => "int",
            ColumnType::BigInt => "bigint",
            ColumnType::Boolean => "boolean",
            ColumnType::TextList => "array<string>",
            ColumnType::TextMap => "map<string,string>",
        }
    }

    fn arrow(self) -> DataType {
        match self {
            ColumnType::Text => DataType::Utf8,
            // A fixed offset rather than "UTC": Arrow resolves zone names only with an
            // extra time-zone database. Either way the Parquet type is the same: a
            // millisecond timestamp adjusted to UTC.
            ColumnType::Timestamp => {
                DataType::Timestamp(TimeUnit::Millisecond, Some(UTC_OFFSET.into()))
            }
            ColumnType::Int => DataType::Int32,
            ColumnType::BigInt => DataType::Int64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::TextList => {
                DataType::List(Arc::new(Field::new("element", DataType::Utf8, false)))
            }
            ColumnType::TextMap => {
                let entries = Fields::from(vec![
                    Field::new("key", DataType::Utf8, false),
                    Field::new("value", DataType::Utf8, true),
                ]);
                DataType::Map(
                    Arc::new(Field::new("key_value", DataType::Struct(entries), false)),
                    false,
                )
            }
        }
    }
}

/// Every lake column, in the curated records' order (SCHEMA.md). All are nullable:
/// a record's `null` (or an absent optional field) is a Parquet null.
pub const COLUMNS: &[(&str, ColumnType)] = &[
    ("bucket_owner", ColumnType::Text),
    ("bucket", ColumnType::Text),
    ("time", ColumnType::Timestamp),
    ("remote_ip", ColumnType::Text),
    ("requester", ColumnType::Text),
    ("request_id", ColumnType::Text),
    ("operation", ColumnType::Text),
    ("key", ColumnType::Text),
    ("request_uri", ColumnType::Text),
    ("http_status", ColumnType::Int),
    ("error_code", ColumnType::Text),
    ("bytes_sent", ColumnType::BigInt),
    ("object_size", ColumnType::BigInt),
    ("total_time_ms", ColumnType::BigInt),
    ("turn_around_time_ms", ColumnType::BigInt),
    ("referer", ColumnType::Text),
    ("user_agent", ColumnType::Text),
    ("version_id", ColumnType::Text),
    ("host_id", ColumnType::Text),
    ("signature_version", ColumnType::Text),
    ("cipher_suite", ColumnType::Text),
    ("authentication_type", ColumnType::Text),
    ("host_header", ColumnType::Text),
    ("tls_version", ColumnType::Text),
    ("access_point_arn", ColumnType::Text),
    ("acl_required", ColumnType::Boolean),
    ("source_region", ColumnType::Text),
    ("extra_fields", ColumnType::TextList),
    ("unparsed_fields", ColumnType::TextMap),
    ("key_decoded", ColumnType::Text),
    ("request_method", ColumnType::Text),
    ("request_path", ColumnType::Text),
    ("request_query", ColumnType::Text),
    ("http_version", ColumnType::Text),
    ("status_class", ColumnType::Text),
    ("requester_type", ColumnType::Text),
    ("requester_account_id", ColumnType::Text),
    ("user_agent_family", ColumnType::Text),
    ("source_line", ColumnType::BigInt),
    ("source_object", ColumnType::Text),
    ("utf8_lossy", ColumnType::Boolean),
    ("endpoint_region", ColumnType::Text),
    ("client_country", ColumnType::Text),
    ("client_city", ColumnType::Text),
    // Four-byte AS numbers pass i32::MAX.
    ("client_asn", ColumnType::BigInt),
    ("client_as_org", ColumnType::Text),
    ("user_agent_name", ColumnType::Text),
    ("user_agent_version", ColumnType::Text),
    ("user_agent_os", ColumnType::Text),
    ("user_agent_device", ColumnType::Text),
    ("extra_json_fields", ColumnType::TextMap),
];

/// The Arrow schema of a lake file, built from [`COLUMNS`].
pub fn arrow_schema() -> SchemaRef {
    let fields: Vec<Field> = COLUMNS
        .iter()
        .map(|(name, kind)| Field::new(*name, kind.arrow(), true))
        .collect();
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_is_named_once_and_time_is_a_utc_timestamp() {
        let schema = arrow_schema();
        let mut names: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COLUMNS.len());
        assert_eq!(
            schema
                .field_with_name("time")
                .map(|f| f.data_type().clone())
                .ok(),
            Some(DataType::Timestamp(
                TimeUnit::Millisecond,
                Some(UTC_OFFSET.into())
            ))
        );
    }
}
