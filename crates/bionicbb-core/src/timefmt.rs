//! The timestamp formats bionicbb reads and writes, all in UTC:
//! Gerrit's REST timestamps (`2023-03-14 17:02:11.000000000`), the status
//! page's `2023-03-14 17:02:11 UTC`, and RFC 2822 mail dates. Calendar
//! arithmetic is left to the `time` crate.

use time::format_description::well_known::Rfc2822;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// Parses a Gerrit REST timestamp `YYYY-MM-DD hh:mm:ss[.fffffffff]` (UTC)
/// into seconds since the Unix epoch; the fraction is dropped.
pub fn parse_gerrit(s: &str) -> Option<i64> {
    let s = s.trim();
    let (whole, fraction) = match s.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (s, None),
    };
    if fraction
        .is_some_and(|f| f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    PrimitiveDateTime::parse(whole, format)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// Formats seconds (and nanoseconds) since the epoch as a Gerrit REST
/// timestamp, `YYYY-MM-DD hh:mm:ss.nnnnnnnnn`.
pub fn format_gerrit(secs: i64, nanos: u32) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    match datetime(secs) {
        Some(t) => format!(
            "{}.{:09}",
            t.format(format).unwrap_or_default(),
            nanos.min(999_999_999)
        ),
        None => String::new(),
    }
}

/// Formats seconds since the epoch as a time in a Gerrit query
/// (`after:"YYYY-MM-DD hh:mm:ss"`): UTC, to the second, no zone (Gerrit
/// reads a time without a zone as UTC). Empty when out of range.
pub fn format_gerrit_query(secs: i64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    datetime(secs)
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default()
}

/// Formats seconds since the epoch as `YYYY-MM-DD hh:mm:ss UTC`.
pub fn format_utc(secs: i64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    datetime(secs)
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| format!("{secs} (out of range)"))
}

/// Formats seconds since the epoch as an RFC 2822 date in UTC, e.g.
/// `Tue, 14 Mar 2023 17:02:11 +0000`.
pub fn format_rfc2822(secs: i64) -> String {
    datetime(secs)
        .and_then(|t| t.format(&Rfc2822).ok())
        .unwrap_or_default()
}

fn datetime(secs: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gerrit_timestamps_round_trip() {
        assert_eq!(
            parse_gerrit("2023-03-14 17:02:11.000000000"),
            Some(1_678_813_331)
        );
        assert_eq!(parse_gerrit("2023-03-14 17:02:11"), Some(1_678_813_331));
        assert_eq!(parse_gerrit(" 1970-01-01 00:00:00.5 "), Some(0));
        assert_eq!(
            parse_gerrit("2000-02-29 00:00:00.000000000"),
            Some(951_782_400)
        );
        assert_eq!(
            format_gerrit(1_678_813_331, 7),
            "2023-03-14 17:02:11.000000007"
        );
        assert_eq!(
            parse_gerrit(&format_gerrit(1_700_000_000, 0)),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn query_times_are_utc_seconds_without_zone() {
        assert_eq!(format_gerrit_query(1_678_813_331), "2023-03-14 17:02:11");
        assert_eq!(format_gerrit_query(0), "1970-01-01 00:00:00");
        assert_eq!(
            parse_gerrit(&format_gerrit_query(1_700_000_000)),
            Some(1_700_000_000)
        );
        assert_eq!(format_gerrit_query(i64::MAX), "");
    }

    #[test]
    fn malformed_gerrit_timestamps_are_refused() {
        for bad in [
            "",
            "2023-03-14",
            "2023-03-14T17:02:11Z",
            "2023-02-30 00:00:00",
            "2023-03-14 24:00:00",
            "2023-03-14 17:02:11.",
            "2023-03-14 17:02:11.12x",
            "23-03-14 17:02:11",
            "2023-03-14 17:02:11 extra",
        ] {
            assert_eq!(parse_gerrit(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn status_page_and_mail_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(format_utc(-86_400), "1969-12-31 00:00:00 UTC");
        assert_eq!(
            format_rfc2822(1_678_813_331),
            "Tue, 14 Mar 2023 17:02:11 +0000"
        );
        assert_eq!(format_rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
    }
}
