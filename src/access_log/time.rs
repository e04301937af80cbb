//! The access-log timestamp (`06/Feb/2019:00:00:38 +0000`), converted to UTC without a
//! date-time crate: the format is fixed, so a direct parser is both smaller and faster.

use std::cell::Cell;
use std::fmt;

/// A point in time with one-second resolution, held as seconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogTime {
    unix_seconds: i64,
}

/// Calendar fields of a [`LogTime`] in UTC, for partitioning and formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcFields {
    /// Four-digit year.
    pub year: i64,
    /// Month, 1 to 12.
    pub month: u32,
    /// Day of the month, 1 to 31.
    pub day: u32,
    /// Hour, 0 to 23.
    pub hour: u32,
    /// Minute, 0 to 59.
    pub minute: u32,
    /// Second, 0 to 59 (a logged leap second, `:60`, rolls into the next minute).
    pub second: u32,
}

thread_local! {
    /// The last timestamp text parsed on this thread, with its value (never a failed parse).
    static LAST_PARSED: Cell<Option<([u8; 26], i64)>> = const { Cell::new(None) };
    /// The last time formatted on this thread, with its text.
    static LAST_FORMATTED: Cell<(i64, Rfc3339)> =
        const { Cell::new((MIN_UNIX_SECONDS, Rfc3339(*b"0000-01-01T00:00:00Z"))) };
}

/// 0000-01-01T00:00:00Z.
const MIN_UNIX_SECONDS: i64 = -62_167_219_200;
/// 9999-12-31T23:59:59Z.
const MAX_UNIX_SECONDS: i64 = 253_402_300_799;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

impl LogTime {
    /// Builds a time from seconds since the Unix epoch.
    pub fn from_unix_seconds(unix_seconds: i64) -> Self {
        Self { unix_seconds }
    }

    /// The time of a calendar date and clock time read as UTC; `None` when a field is out
    /// of range. A second of 60 (a logged leap second) rolls into the next minute.
    pub fn from_utc(
        year: i64,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
    ) -> Option<Self> {
        let calendar = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
        if !calendar || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        Some(Self::from_unix_seconds(
            days_from_civil(year, month, day) * 86_400
                + i64::from(hour * 3600 + minute * 60 + second),
        ))
    }

    /// Seconds since the Unix epoch, UTC.
    pub fn unix_seconds(self) -> i64 {
        self.unix_seconds
    }

    /// Parses the inside of the brackets, `dd/Mon/yyyy:HH:MM:SS ±hhmm`; `None` if malformed.
    ///
    /// Log lines come in time order and a busy bucket logs many requests a second, so the
    /// last text parsed on this thread is remembered and most calls are one comparison.
    pub fn parse_access_log(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if let Ok(text) = <[u8; 26]>::try_from(b) {
            if let Some((last_text, last_seconds)) = LAST_PARSED.with(Cell::get)
                && text == last_text
            {
                return Some(Self::from_unix_seconds(last_seconds));
            }
            let parsed = Self::parse_uncached(&text)?;
            LAST_PARSED.with(|last| last.set(Some((text, parsed.unix_seconds))));
            return Some(parsed);
        }
        None
    }

    fn parse_uncached(b: &[u8; 26]) -> Option<Self> {
        if b[2] != b'/' || b[6] != b'/' || b[11] != b':' {
            return None;
        }
        if b[14] != b':' || b[17] != b':' || b[20] != b' ' {
            return None;
        }
        let day = digits(&b[0..2])?;
        let month = MONTHS.iter().position(|m| m[..] == b[3..6])? as u32 + 1;
        let year = digits(&b[7..11])? as i64;
        let hour = digits(&b[12..14])?;
        let minute = digits(&b[15..17])?;
        let second = digits(&b[18..20])?;
        let sign = match b[21] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let off_h = digits(&b[22..24])?;
        let off_m = digits(&b[24..26])?;
        if off_h > 23 || off_m > 59 {
            return None;
        }
        let local = Self::from_utc(year, month, day, hour, minute, second)?.unix_seconds;
        let offset = sign * i64::from(off_h * 3600 + off_m * 60);
        let time = Self {
            unix_seconds: local - offset,
        };
        // An offset can push a year-0000 or year-9999 time out of the four-digit years
        // that RFC 3339 can write; such a time is refused rather than written wrongly.
        (0..=9999).contains(&time.utc().year).then_some(time)
    }

    /// The UTC calendar fields of this time.
    pub fn utc(self) -> UtcFields {
        let days = self.unix_seconds.div_euclid(86_400);
        let secs = self.unix_seconds.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        UtcFields {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }

    /// Writes RFC 3339 in UTC (`2019-02-06T00:00:38Z`) into a fixed buffer, without allocating.
    /// The last result on this thread is remembered, as consecutive records share seconds.
    pub fn rfc3339(self) -> Rfc3339 {
        let (last_seconds, last_text) = LAST_FORMATTED.with(Cell::get);
        if last_seconds == self.unix_seconds {
            return last_text;
        }
        let formatted = self.rfc3339_uncached();
        LAST_FORMATTED.with(|last| last.set((self.unix_seconds, formatted)));
        formatted
    }

    fn rfc3339_uncached(self) -> Rfc3339 {
        let f = self.utc();
        let mut buf = *b"0000-00-00T00:00:00Z";
        // Parsing only yields years 0..=9999; a time built from raw seconds outside that
        // range is clamped to the nearest representable instant.
        let f = match f.year {
            ..0 => LogTime::from_unix_seconds(MIN_UNIX_SECONDS).utc(),
            10_000.. => LogTime::from_unix_seconds(MAX_UNIX_SECONDS).utc(),
            _ => f,
        };
        put_digits(&mut buf[0..4], f.year as u32);
        put_digits(&mut buf[5..7], f.month);
        put_digits(&mut buf[8..10], f.day);
        put_digits(&mut buf[11..13], f.hour);
        put_digits(&mut buf[14..16], f.minute);
        put_digits(&mut buf[17..19], f.second);
        Rfc3339(buf)
    }
}

/// An RFC 3339 UTC timestamp held inline, so formatting a record's time never allocates.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339([u8; 20]);

impl Rfc3339 {
    /// The timestamp as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and the literal separators are ever written into the buffer.
        std::str::from_utf8(&self.0).unwrap_or("0000-00-00T00:00:00Z")
    }
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for LogTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rfc3339().as_str())
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn put_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! time_parses_to {
        ($name:ident, $input:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let parsed = LogTime::parse_access_log($input).map(|t| t.to_string());
                assert_eq!(parsed.as_deref(), $expected);
            }
        };
    }

    time_parses_to!(
        utc_offset,
        "06/Feb/2019:00:00:38 +0000",
        Some("2019-02-06T00:00:38Z")
    );
    time_parses_to!(
        positive_offset_moves_back,
        "06/Feb/2019:00:00:38 +0130",
        Some("2019-02-05T22:30:38Z")
    );
    time_parses_to!(
        negative_offset_moves_forward,
        "31/Dec/2023:23:30:00 -0100",
        Some("2024-01-01T00:30:00Z")
    );
    time_parses_to!(
        leap_day,
        "29/Feb/2024:12:00:00 +0000",
        Some("2024-02-29T12:00:00Z")
    );
    time_parses_to!(no_leap_day_in_2023, "29/Feb/2023:12:00:00 +0000", None);
    time_parses_to!(unknown_month, "06/Foo/2019:00:00:38 +0000", None);
    time_parses_to!(missing_offset, "06/Feb/2019:00:00:38", None);
    time_parses_to!(hour_out_of_range, "06/Feb/2019:24:00:38 +0000", None);
    time_parses_to!(non_digit_day, "x6/Feb/2019:00:00:38 +0000", None);
    time_parses_to!(bad_offset_sign, "06/Feb/2019:00:00:38 ~0000", None);
    time_parses_to!(
        multibyte_text_is_rejected_not_sliced,
        "06/Féb/2019:00:00:38 +000",
        None
    );

    time_parses_to!(
        offset_past_year_9999_is_refused,
        "31/Dec/9999:23:30:00 -0100",
        None
    );
    time_parses_to!(
        offset_before_year_0_is_refused,
        "01/Jan/0000:00:30:00 +0100",
        None
    );
    time_parses_to!(
        leap_second_rolls_over,
        "31/Dec/2016:23:59:60 +0000",
        Some("2017-01-01T00:00:00Z")
    );

    #[test]
    fn out_of_range_seconds_are_clamped_when_formatted() {
        assert_eq!(
            LogTime::from_unix_seconds(i64::MAX / 4).to_string(),
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(
            LogTime::from_unix_seconds(i64::MIN / 4).to_string(),
            "0000-01-01T00:00:00Z"
        );
    }

    #[test]
    fn cached_results_never_leak_into_other_inputs() {
        let times = [
            "06/Feb/2019:00:00:38 +0000",
            "06/Feb/2019:00:00:38 +0100",
            "06/Feb/2019:00:00:38 +0000",
        ];
        let expected = [
            "2019-02-06T00:00:38Z",
            "2019-02-05T23:00:38Z",
            "2019-02-06T00:00:38Z",
        ];
        for (t, e) in times.iter().zip(expected) {
            assert_eq!(
                LogTime::parse_access_log(t)
                    .map(|t| t.to_string())
                    .as_deref(),
                Some(e)
            );
        }
        assert_eq!(LogTime::parse_access_log(&"\0".repeat(26)), None);
        assert_eq!(
            LogTime::from_unix_seconds(0).to_string(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            LogTime::from_unix_seconds(1).to_string(),
            "1970-01-01T00:00:01Z"
        );
    }

    #[test]
    fn epoch_round_trips() {
        let t = LogTime::parse_access_log("01/Jan/1970:00:00:00 +0000");
        assert_eq!(t.map(LogTime::unix_seconds), Some(0));
    }

    #[test]
    fn civil_round_trip_over_many_days() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
