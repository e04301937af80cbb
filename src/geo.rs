//! Where a client is and whose network it is on, from MaxMind-format databases the user
//! supplies: `GEOIP_DB` (a City or Country database: GeoLite2, GeoIP2, DB-IP Lite) and
//! `ASN_DB` (an ASN database). No data ships with bucketlog.
//!
//! Databases are memory-mapped, not read into the heap: their pages are file-backed, so
//! the kernel can drop and re-read them under memory pressure, and the function's own
//! memory does not grow with a 60 MB City database.
//!
//! Two bounded caches keep lookups cheap. A database record is shared by many networks
//! (one city record serves every network in that city), so [`ClientLookups`] decodes each
//! record once and keeps it by its offset in the database, for the life of the process.
//! A log object repeats few addresses many times, so a per-object [`NetworkCache`] keeps
//! each address's answer and skips even the walk down the database's tree.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use maxminddb::Reader;
use serde::Deserialize;

use crate::event::ObjectRef;
use crate::ports::ObjectStore;

/// Which of the two databases a file is meant to be, and so which variable names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseRole {
    /// `GEOIP_DB`: a City or Country database.
    Geo,
    /// `ASN_DB`: an autonomous-system database.
    Asn,
}

impl DatabaseRole {
    /// The environment variable that configures it, named in every error.
    pub fn variable(self) -> &'static str {
        match self {
            Self::Geo => "GEOIP_DB",
            Self::Asn => "ASN_DB",
        }
    }

    /// What its `database_type` must contain, as a phrase for errors.
    fn expected(self) -> &'static str {
        match self {
            Self::Geo => "a City or Country database",
            Self::Asn => "an ASN database",
        }
    }

    /// Whether a database of `database_type` (`GeoLite2-City`, `DBIP-ASN-Lite (compat=GeoLite2-ASN)`,
    /// ...) can play this role.
    fn accepts(self, database_type: &str) -> bool {
        let t = database_type.to_ascii_lowercase();
        match self {
            Self::Geo => t.contains("city") || t.contains("country"),
            Self::Asn => t.contains("asn"),
        }
    }
}

/// Where a database is: a local file (a Lambda layer under `/opt`, say) or an S3 object
/// copied once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// A path on this machine.
    Local(PathBuf),
    /// `s3://bucket/key`.
    S3(ObjectRef),
}

impl DatabaseLocation {
    /// Reads a variable's value: `s3://bucket/key`, or else a path.
    pub fn parse(value: &str) -> Self {
        match ObjectRef::from_location(value) {
            Some(object) if value.starts_with("s3://") => Self::S3(object),
            _ => Self::Local(PathBuf::from(value)),
        }
    }

    /// The location a setting names; unset or empty (after trimming) means no database.
    pub fn from_setting(value: Option<String>) -> Option<Self> {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(Self::parse)
    }
}

impl std::fmt::Display for DatabaseLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::S3(object) => write!(f, "{object}"),
        }
    }
}

/// A database that cannot be used; each names the variable, so a wrong setting is found
/// at start-up instead of as a column of nulls. The underlying error is part of the
/// message (the function logs only the message), not a `source`, so printers that follow
/// the chain, such as the CLI's, do not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum GeoDbError {
    /// The file is missing or unreadable.
    #[error("{variable}={location}: cannot read the database: {cause}")]
    Unreadable {
        /// `GEOIP_DB` or `ASN_DB`.
        variable: &'static str,
        /// The value as given.
        location: String,
        /// Why.
        cause: std::io::Error,
    },
    /// The file is not in the MaxMind DB format.
    #[error("{variable}={location}: not a MaxMind DB (.mmdb) file: {cause}")]
    NotMaxMind {
        /// `GEOIP_DB` or `ASN_DB`.
        variable: &'static str,
        /// The value as given.
        location: String,
        /// What the reader said.
        cause: maxminddb::MaxMindDbError,
    },
    /// A MaxMind DB of the wrong kind, such as an ASN database in `GEOIP_DB`.
    #[error("{variable}={location}: its database type is `{database_type}`, not {expected}")]
    WrongType {
        /// `GEOIP_DB` or `ASN_DB`.
        variable: &'static str,
        /// The value as given.
        location: String,
        /// The database's own `database_type`.
        database_type: String,
        /// What the variable takes.
        expected: &'static str,
    },
    /// The S3 object could not be fetched.
    #[error("{variable}={location}: cannot fetch the database: {reason}")]
    Fetch {
        /// `GEOIP_DB` or `ASN_DB`.
        variable: &'static str,
        /// The value as given.
        location: String,
        /// Why.
        reason: String,
    },
}

/// The bytes of a database: a memory map, or (for tests and small files) an owned buffer.
enum DatabaseBytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for DatabaseBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            Self::Mapped(map) => map,
            Self::Owned(bytes) => bytes,
        }
    }
}

/// One opened database, checked to fit its role.
pub struct ClientDatabase {
    reader: Reader<DatabaseBytes>,
    role: DatabaseRole,
}

impl std::fmt::Debug for ClientDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientDatabase")
            .field("role", &self.role)
            .field("database_type", &self.reader.metadata().database_type)
            .finish()
    }
}

impl ClientDatabase {
    /// Memory-maps the file at `path` for `role`. The file must not change while mapped:
    /// true of a Lambda layer (read-only) and of the function's own copy in `/tmp`.
    pub fn open(role: DatabaseRole, path: &Path) -> Result<Self, GeoDbError> {
        Self::open_named(role, path, path.display().to_string())
    }

    /// Like [`ClientDatabase::open`], naming `location` (the `s3://` URI a copy came from)
    /// in errors instead of the path.
    fn open_named(role: DatabaseRole, path: &Path, location: String) -> Result<Self, GeoDbError> {
        let unreadable = |cause| GeoDbError::Unreadable {
            variable: role.variable(),
            location: location.clone(),
            cause,
        };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        // SAFETY: the map is read-only and the file is not modified while it is open (see
        // the doc comment); a database that is truncated under a running process is the
        // one case this cannot defend against, as with any mapped file.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(unreadable)?;
        Self::from_source(role, location, DatabaseBytes::Mapped(map))
    }

    /// A database from bytes already in memory (tests, tiny databases).
    pub fn from_bytes(
        role: DatabaseRole,
        location: impl Into<String>,
        bytes: Vec<u8>,
    ) -> Result<Self, GeoDbError> {
        Self::from_source(role, location.into(), DatabaseBytes::Owned(bytes))
    }

    fn from_source(
        role: DatabaseRole,
        location: String,
        bytes: DatabaseBytes,
    ) -> Result<Self, GeoDbError> {
        let reader = Reader::from_source(bytes).map_err(|cause| GeoDbError::NotMaxMind {
            variable: role.variable(),
            location: location.clone(),
            cause,
        })?;
        let database_type = &reader.metadata().database_type;
        if !role.accepts(database_type) {
            return Err(GeoDbError::WrongType {
                variable: role.variable(),
                location,
                database_type: database_type.clone(),
                expected: role.expected(),
            });
        }
        Ok(Self { reader, role })
    }

    /// The database's own `database_type`, for start-up logs.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// What the record for `address` says, decoded as `R` and turned into `F` once per
    /// record (`cache` keeps it by its offset); `None` when the address is in no network
    /// of the database or its record does not decode: one odd record gives nulls rather
    /// than failing a log object.
    fn record<'de, R: Deserialize<'de>, F>(
        &'de self,
        address: IpAddr,
        cache: &RecordCache<F>,
        facts: impl FnOnce(R) -> F,
    ) -> Option<Arc<F>> {
        let found = self.reader.lookup(address).ok()?;
        let offset = found.offset()?;
        cache.get_or_decode(offset, || found.decode::<R>().ok().flatten().map(facts))
    }
}

/// The fields of a City or Country record that bucketlog reads.
#[derive(Deserialize)]
struct GeoRecord<'a> {
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow)]
    city: Option<Named<'a>>,
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    names: Option<EnglishName<'a>>,
}

#[derive(Deserialize)]
struct EnglishName<'a> {
    en: Option<&'a str>,
}

/// The fields of an ASN record (GeoLite2 and DB-IP name them alike).
#[derive(Deserialize)]
struct AsnRecord<'a> {
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<&'a str>,
}

/// What a City or Country record says, decoded once and shared by every address that
/// points at the record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeoFacts {
    /// ISO 3166-1 alpha-2 country code (`country.iso_code`).
    pub country: Option<Box<str>>,
    /// The city's English name (`city.names.en`).
    pub city: Option<Box<str>>,
}

/// What an ASN record says, decoded once and shared by every address that points at it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AsnFacts {
    /// The autonomous system number.
    pub number: Option<u32>,
    /// The autonomous system's organisation.
    pub organisation: Option<Box<str>>,
}

/// What the databases say about one address: the records it points at, if any. Cloning
/// it copies two reference-counted pointers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientNetwork {
    /// The City or Country record (`GEOIP_DB`).
    pub geo: Option<Arc<GeoFacts>>,
    /// The ASN record (`ASN_DB`).
    pub asn: Option<Arc<AsnFacts>>,
}

impl ClientNetwork {
    /// ISO 3166-1 alpha-2 country code.
    pub fn country(&self) -> Option<&str> {
        self.geo.as_deref()?.country.as_deref()
    }

    /// The city's English name.
    pub fn city(&self) -> Option<&str> {
        self.geo.as_deref()?.city.as_deref()
    }

    /// The autonomous system number.
    pub fn asn(&self) -> Option<u32> {
        self.asn.as_deref()?.number
    }

    /// The autonomous system's organisation.
    pub fn as_org(&self) -> Option<&str> {
        self.asn.as_deref()?.organisation.as_deref()
    }

    /// True when neither database knew anything about the address.
    pub fn is_empty(&self) -> bool {
        self.country().is_none()
            && self.city().is_none()
            && self.asn().is_none()
            && self.as_org().is_none()
    }

    /// `DE, Berlin, AS3320 Deutsche Telekom AG`: the known parts, for alert summaries.
    pub fn describe(&self) -> String {
        let asn = match (self.asn(), self.as_org()) {
            (Some(asn), Some(org)) => Some(format!("AS{asn} {org}")),
            (Some(asn), None) => Some(format!("AS{asn}")),
            (None, org) => org.map(str::to_string),
        };
        [
            self.country().map(str::to_string),
            self.city().map(str::to_string),
            asn,
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// How many decoded records each database keeps; a full cache is cleared, so memory stays
/// bounded (at most about 4 MiB each) whatever the number of records a process meets.
pub const RECORD_CACHE_ENTRIES: usize = 32_768;

/// Decoded records by their offset in the database's data section.
#[derive(Debug)]
struct RecordCache<T> {
    map: Mutex<hashbrown::HashMap<usize, Arc<T>>>,
}

impl<T> Default for RecordCache<T> {
    fn default() -> Self {
        Self {
            map: Mutex::new(hashbrown::HashMap::new()),
        }
    }
}

impl<T> RecordCache<T> {
    /// The record at `offset`, made by `decode` the first time; `None` when it does not
    /// decode (then nothing is remembered).
    fn get_or_decode(&self, offset: usize, decode: impl FnOnce() -> Option<T>) -> Option<Arc<T>> {
        // Every change is one call, so a lock poisoned elsewhere holds a consistent map.
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(hit) = map.get(&offset) {
            return Some(Arc::clone(hit));
        }
        let record = Arc::new(decode()?);
        if map.len() >= RECORD_CACHE_ENTRIES {
            map.clear();
        }
        map.insert(offset, Arc::clone(&record));
        Some(record)
    }

    /// How many records are remembered (for tests of the bound).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The databases one process uses (either, both or neither), with their decoded records.
#[derive(Debug, Default)]
pub struct ClientLookups {
    geo: Option<ClientDatabase>,
    asn: Option<ClientDatabase>,
    geo_records: RecordCache<GeoFacts>,
    asn_records: RecordCache<AsnFacts>,
}

impl ClientLookups {
    /// No databases: every client field is null.
    pub fn none() -> Self {
        Self::default()
    }

    /// These databases; each must already be checked for its role.
    pub fn new(geo: Option<ClientDatabase>, asn: Option<ClientDatabase>) -> Self {
        Self {
            geo,
            asn,
            ..Self::default()
        }
    }

    /// Opens local files (the CLI's case; the function also fetches `s3://` ones).
    pub fn open_local(
        geo: Option<&DatabaseLocation>,
        asn: Option<&DatabaseLocation>,
    ) -> Result<Self, GeoDbError> {
        let open = |role: DatabaseRole, location: Option<&DatabaseLocation>| match location {
            None => Ok(None),
            Some(DatabaseLocation::Local(path)) => ClientDatabase::open(role, path).map(Some),
            Some(s3 @ DatabaseLocation::S3(_)) => Err(GeoDbError::Fetch {
                variable: role.variable(),
                location: s3.to_string(),
                reason: "the command line reads local files only: download it and give its path"
                    .into(),
            }),
        };
        Ok(Self::new(
            open(DatabaseRole::Geo, geo)?,
            open(DatabaseRole::Asn, asn)?,
        ))
    }

    /// Opens the databases where they are: local files are memory-mapped where they lie,
    /// and `s3://` objects are first copied from `store` into `scratch` (the function's
    /// `/tmp`), once per cold start. Any failure names its variable: a wrong setting stops
    /// the function at start-up instead of writing columns of nulls.
    pub async fn open<S: ObjectStore + ?Sized>(
        store: &S,
        geo: Option<&DatabaseLocation>,
        asn: Option<&DatabaseLocation>,
        scratch: &Path,
    ) -> Result<Self, GeoDbError> {
        Ok(Self::new(
            open_role(store, DatabaseRole::Geo, geo, scratch).await?,
            open_role(store, DatabaseRole::Asn, asn, scratch).await?,
        ))
    }

    /// What is loaded, for the start-up log: `GEOIP_DB=GeoLite2-City ASN_DB=none`.
    pub fn describe(&self) -> String {
        let kind = |db: &Option<ClientDatabase>| {
            db.as_ref()
                .map_or_else(|| "none".to_string(), |d| d.database_type().to_string())
        };
        format!("GEOIP_DB={} ASN_DB={}", kind(&self.geo), kind(&self.asn))
    }

    /// True when no database is loaded, so lookups can be skipped altogether.
    pub fn is_empty(&self) -> bool {
        self.geo.is_none() && self.asn.is_none()
    }

    /// Looks `address` up in both databases.
    pub fn lookup(&self, address: IpAddr) -> ClientNetwork {
        let geo = self.geo.as_ref().and_then(|db| {
            db.record(address, &self.geo_records, |record: GeoRecord<'_>| {
                GeoFacts {
                    country: record.country.and_then(|c| c.iso_code).map(Box::from),
                    city: record
                        .city
                        .and_then(|c| c.names)
                        .and_then(|n| n.en)
                        .map(Box::from),
                }
            })
        });
        let asn = self.asn.as_ref().and_then(|db| {
            db.record(address, &self.asn_records, |record: AsnRecord<'_>| {
                AsnFacts {
                    number: record.autonomous_system_number,
                    organisation: record.autonomous_system_organization.map(Box::from),
                }
            })
        });
        ClientNetwork { geo, asn }
    }

    /// Looks up a logged `remote_ip` (`-`, a bracketed or unparsable value gives `None`).
    pub fn lookup_text(&self, remote_ip: &str) -> Option<ClientNetwork> {
        let address = parse_address(remote_ip)?;
        Some(self.lookup(address)).filter(|n| !n.is_empty())
    }
}

/// One role's database from its location, copying an `s3://` object into `scratch` first.
async fn open_role<S: ObjectStore + ?Sized>(
    store: &S,
    role: DatabaseRole,
    location: Option<&DatabaseLocation>,
    scratch: &Path,
) -> Result<Option<ClientDatabase>, GeoDbError> {
    match location {
        None => Ok(None),
        Some(DatabaseLocation::Local(path)) => ClientDatabase::open(role, path).map(Some),
        Some(DatabaseLocation::S3(object)) => {
            let path = download(store, role, object, scratch).await?;
            ClientDatabase::open_named(role, &path, object.to_string()).map(Some)
        }
    }
}

/// Streams `object` into `scratch/bucketlog-<variable>.mmdb` through a temporary file
/// renamed into place, so a process that still maps an older copy keeps reading it whole.
async fn download<S: ObjectStore + ?Sized>(
    store: &S,
    role: DatabaseRole,
    object: &ObjectRef,
    scratch: &Path,
) -> Result<PathBuf, GeoDbError> {
    let failed = |reason: String| GeoDbError::Fetch {
        variable: role.variable(),
        location: object.to_string(),
        reason,
    };
    let mut body = store
        .open(object)
        .await
        .map_err(|e| failed(e.to_string()))?
        .ok_or_else(|| failed("no such object".into()))?;
    let name = format!("bucketlog-{}.mmdb", role.variable().to_ascii_lowercase());
    let target = scratch.join(&name);
    let partial = scratch.join(format!("{name}.{}.part", std::process::id()));
    let written = async {
        let mut file = std::fs::File::create(&partial)
            .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
        while let Some(chunk) = body.chunks.next_chunk().await.map_err(|e| e.to_string())? {
            file.write_all(&chunk)
                .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
        }
        std::fs::rename(&partial, &target)
            .map_err(|e| format!("cannot rename {}: {e}", partial.display()))
    }
    .await;
    if let Err(reason) = written {
        // Best effort: a partial copy must not fill /tmp across restarts.
        let _ = std::fs::remove_file(&partial);
        return Err(failed(reason));
    }
    Ok(target)
}

/// A logged address as an [`IpAddr`]; S3 writes plain IPv4 and IPv6 text.
fn parse_address(text: &str) -> Option<IpAddr> {
    if let Ok(address) = text.parse() {
        return Some(address);
    }
    let text = text.trim();
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    text.parse().ok()
}

/// How many addresses a [`NetworkCache`] generation holds; the cache holds at most two.
pub const NETWORK_CACHE_ENTRIES: usize = 16_384;

/// Remembers lookups for one log object, keyed by the parsed address, so a hit costs no
/// allocation. Bounded in two generations: when the newer is full it becomes the older
/// and the older is dropped, and a hit in the older is carried into the newer. So a busy
/// client stays remembered however many one-off addresses pass (a scan, say), and memory
/// does not grow with the number of distinct addresses.
#[derive(Debug, Default)]
pub struct NetworkCache {
    newer: hashbrown::HashMap<IpAddr, Option<ClientNetwork>>,
    older: hashbrown::HashMap<IpAddr, Option<ClientNetwork>>,
}

impl NetworkCache {
    /// What `lookups` say about `remote_ip` as logged, from the cache when it was asked
    /// before; `None` when it is not an address or the databases know nothing of it.
    pub fn lookup(&mut self, lookups: &ClientLookups, remote_ip: &str) -> Option<ClientNetwork> {
        let address = parse_address(remote_ip)?;
        if let Some(hit) = self.newer.get(&address) {
            return hit.clone();
        }
        let network = match self.older.remove(&address) {
            Some(remembered) => remembered,
            None => Some(lookups.lookup(address)).filter(|n| !n.is_empty()),
        };
        if self.newer.len() >= NETWORK_CACHE_ENTRIES {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(address, network.clone());
        network
    }

    /// How many addresses are remembered (for tests of the bound).
    pub fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_s3_uris_or_paths() {
        assert_eq!(
            DatabaseLocation::parse("s3://geo-bucket/dbs/GeoLite2-City.mmdb"),
            DatabaseLocation::S3(ObjectRef {
                bucket: "geo-bucket".into(),
                key: "dbs/GeoLite2-City.mmdb".into()
            })
        );
        assert_eq!(
            DatabaseLocation::parse("/opt/geo/GeoLite2-ASN.mmdb"),
            DatabaseLocation::Local("/opt/geo/GeoLite2-ASN.mmdb".into())
        );
    }

    #[test]
    fn roles_accept_the_database_types_they_can_read() {
        for t in [
            "GeoLite2-City",
            "GeoIP2-Country",
            "DBIP-City-Lite",
            "dbip-country-lite",
        ] {
            assert!(DatabaseRole::Geo.accepts(t), "{t}");
            assert!(!DatabaseRole::Asn.accepts(t), "{t}");
        }
        for t in ["GeoLite2-ASN", "DBIP-ASN-Lite (compat=GeoLite2-ASN)"] {
            assert!(DatabaseRole::Asn.accepts(t), "{t}");
            assert!(!DatabaseRole::Geo.accepts(t), "{t}");
        }
    }

    #[test]
    fn a_missing_file_is_an_error_naming_the_variable() {
        let e = ClientDatabase::open(DatabaseRole::Geo, Path::new("/nonexistent/City.mmdb"))
            .expect_err("a missing file must not load");
        let text = e.to_string();
        assert!(
            text.starts_with("GEOIP_DB=/nonexistent/City.mmdb"),
            "{text}"
        );
    }

    #[test]
    fn bytes_that_are_not_a_maxmind_db_are_an_error_naming_the_variable() {
        let e = ClientDatabase::from_bytes(DatabaseRole::Asn, "asn.mmdb", b"not a db".to_vec())
            .expect_err("garbage must not load");
        assert!(
            matches!(
                e,
                GeoDbError::NotMaxMind {
                    variable: "ASN_DB",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn the_command_line_refuses_s3_databases_by_name() {
        let location = DatabaseLocation::parse("s3://b/asn.mmdb");
        let e =
            ClientLookups::open_local(None, Some(&location)).expect_err("s3 needs the function");
        assert!(e.to_string().starts_with("ASN_DB=s3://b/asn.mmdb"), "{e}");
    }

    #[test]
    fn addresses_parse_as_logged_and_dashes_do_not() {
        assert_eq!(parse_address("192.0.2.1"), "192.0.2.1".parse().ok());
        assert_eq!(parse_address("2001:db8::1"), "2001:db8::1".parse().ok());
        assert_eq!(parse_address("[2001:db8::1]"), "2001:db8::1".parse().ok());
        assert_eq!(parse_address("-"), None);
        assert_eq!(parse_address("example.com"), None);
    }

    #[test]
    fn without_databases_nothing_is_known_and_the_cache_stays_bounded() {
        let lookups = ClientLookups::none();
        let mut cache = NetworkCache::default();
        for i in 0..(3 * NETWORK_CACHE_ENTRIES as u32) {
            let ip = std::net::Ipv4Addr::from(i).to_string();
            assert_eq!(cache.lookup(&lookups, &ip), None);
        }
        assert!(cache.len() <= 2 * NETWORK_CACHE_ENTRIES);
    }

    #[test]
    fn records_are_decoded_once_per_offset_and_the_cache_stays_bounded() {
        let cache = RecordCache::<u32>::default();
        let first = cache.get_or_decode(7, || Some(1)).expect("decodes");
        let again = cache
            .get_or_decode(7, || panic!("decoded twice"))
            .expect("remembered");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(cache.get_or_decode(8, || None), None);
        assert_eq!(
            cache.len(),
            1,
            "a record that does not decode is not remembered"
        );
        for offset in 0..RECORD_CACHE_ENTRIES + 10 {
            cache.get_or_decode(offset, || Some(0));
        }
        assert!(cache.len() <= RECORD_CACHE_ENTRIES);
    }

    #[test]
    fn descriptions_name_what_is_known() {
        let network = ClientNetwork {
            geo: Some(Arc::new(GeoFacts {
                country: Some("DE".into()),
                city: None,
            })),
            asn: Some(Arc::new(AsnFacts {
                number: Some(3320),
                organisation: Some("Deutsche Telekom AG".into()),
            })),
        };
        assert_eq!(network.describe(), "DE, AS3320 Deutsche Telekom AG");
        assert_eq!(ClientNetwork::default().describe(), "");
    }
}
