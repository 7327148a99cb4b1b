//! FHIR date, dateTime and instant values as the closed range of instants they cover, at
//! the precision they are written in: `2020` is all of 2020, `2020-03-01T10:00:00Z` one
//! second. Search compares these ranges as the R4 search specification describes.
//!
//! Values without a time zone (dates, and dateTimes written without one) are taken as
//! UTC, so the same text always denotes the same range on every server.

use chrono::{DateTime, Duration, FixedOffset, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// A closed range of instants, to the microsecond (what PostgreSQL stores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub low: DateTime<Utc>,
    pub high: DateTime<Utc>,
}

impl DateRange {
    /// The earliest instant any range starts at: an open-ended Period's missing start.
    pub fn min_instant() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The latest instant any range ends at: an open-ended Period's missing end.
    pub fn max_instant() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
            .single()
            .map(|t| t + Duration::microseconds(999_999))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// A range from two optional ends (a Period); a missing end is open.
    pub fn between(start: Option<DateRange>, end: Option<DateRange>) -> Option<DateRange> {
        if start.is_none() && end.is_none() {
            return None;
        }
        Some(DateRange {
            low: start.map_or_else(Self::min_instant, |s| s.low),
            high: end.map_or_else(Self::max_instant, |e| e.high),
        })
    }
}

/// The range a FHIR date, dateTime or instant covers; `None` when `s` is none of those.
/// Also accepts `YYYY-MM-DDThh:mm` (minute precision), which search values use.
pub fn parse_range(s: &str) -> Option<DateRange> {
    let s = s.trim();
    let (date_part, time_part) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut fields = date_part.split('-');
    let year: i32 = digits(fields.next()?, 4)?.parse().ok()?;
    let month = fields
        .next()
        .map(|m| digits(m, 2))
        .map(|m| m?.parse::<u32>().ok());
    let day = fields
        .next()
        .map(|d| digits(d, 2))
        .map(|d| d?.parse::<u32>().ok());
    if fields.next().is_some() {
        return None;
    }
    let start_day = |m: u32, d: u32| NaiveDate::from_ymd_opt(year, m, d);
    let (start, next) = match (month, day, time_part) {
        (None, None, None) => {
            let start = start_day(1, 1)?;
            (
                start.and_hms_opt(0, 0, 0)?,
                start
                    .checked_add_months(Months::new(12))?
                    .and_hms_opt(0, 0, 0)?,
            )
        }
        (Some(m), None, None) => {
            let start = start_day(m?, 1)?;
            (
                start.and_hms_opt(0, 0, 0)?,
                start
                    .checked_add_months(Months::new(1))?
                    .and_hms_opt(0, 0, 0)?,
            )
        }
        (Some(m), Some(d), None) => {
            let start = start_day(m?, d?)?.and_hms_opt(0, 0, 0)?;
            (start, start + Duration::days(1))
        }
        (Some(m), Some(d), Some(t)) => return time_range(start_day(m?, d?)?, t),
        _ => return None,
    };
    Some(DateRange {
        low: Utc.from_utc_datetime(&start),
        high: Utc.from_utc_datetime(&next) - Duration::microseconds(1),
    })
}

/// `s` when it is exactly `n` ASCII digits.
fn digits(s: &str, n: usize) -> Option<&str> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

/// The range of a time of day on `date`: `hh:mm`, `hh:mm:ss` or `hh:mm:ss.fff…`, then an
/// optional `Z` or `±hh:mm`.
fn time_range(date: NaiveDate, t: &str) -> Option<DateRange> {
    let (clock, offset) = split_zone(t)?;
    let mut parts = clock.split(':');
    let hour: u32 = digits(parts.next()?, 2)?.parse().ok()?;
    let minute: u32 = digits(parts.next()?, 2)?.parse().ok()?;
    let (second, fraction) = match parts.next() {
        None => (None, None),
        Some(sec) => match sec.split_once('.') {
            Some((whole, frac)) if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) => {
                (Some(digits(whole, 2)?.parse::<u32>().ok()?), Some(frac))
            }
            Some(_) => return None,
            None => (Some(digits(sec, 2)?.parse::<u32>().ok()?), None),
        },
    };
    if parts.next().is_some() {
        return None;
    }
    // A leap second (":60") is folded into the last microsecond of its minute.
    let (second, leap) = match second {
        Some(60) => (Some(59), true),
        s => (s, false),
    };
    let naive: NaiveDateTime = date.and_hms_opt(hour, minute, second.unwrap_or(0))?;
    let (start, width) = match (second, fraction) {
        (None, _) => (naive, Duration::minutes(1)),
        (Some(_), None) => (naive, Duration::seconds(1)),
        (Some(_), Some(frac)) => {
            // Sub-microsecond digits cannot be stored; the range is then that microsecond.
            let used = &frac[..frac.len().min(6)];
            let micros: i64 = format!("{used:0<6}").parse().ok()?;
            let unit = 10i64.pow(6 - used.len() as u32);
            (
                naive + Duration::microseconds(micros),
                Duration::microseconds(unit),
            )
        }
    };
    let (start, width) = if leap {
        (
            start + Duration::seconds(1) - Duration::microseconds(1),
            Duration::microseconds(1),
        )
    } else {
        (start, width)
    };
    let low = offset
        .from_local_datetime(&start)
        .single()?
        .with_timezone(&Utc);
    Some(DateRange {
        low,
        high: low + width - Duration::microseconds(1),
    })
}

/// Splits `10:00:00+02:00` into the clock and its offset (UTC when none is written).
fn split_zone(t: &str) -> Option<(&str, FixedOffset)> {
    if let Some(clock) = t.strip_suffix('Z') {
        return Some((clock, FixedOffset::east_opt(0)?));
    }
    if t.len() > 6 {
        let (clock, zone) = t.split_at(t.len() - 6);
        let sign = match zone.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return Some((t, FixedOffset::east_opt(0)?)),
        };
        let (h, m) = zone[1..].split_once(':')?;
        let h: i32 = digits(h, 2)?.parse().ok()?;
        let m: i32 = digits(m, 2)?.parse().ok()?;
        if h > 14 || m > 59 {
            return None;
        }
        return Some((clock, FixedOffset::east_opt(sign * (h * 3600 + m * 60))?));
    }
    Some((t, FixedOffset::east_opt(0)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap()
    }

    fn range(s: &str) -> (DateTime<Utc>, DateTime<Utc>) {
        let r = parse_range(s).unwrap_or_else(|| panic!("{s} should parse"));
        (r.low, r.high)
    }

    #[test]
    fn every_precision_covers_its_whole_unit() {
        assert_eq!(
            range("2020"),
            (
                at("2020-01-01T00:00:00Z"),
                at("2020-12-31T23:59:59.999999Z")
            )
        );
        assert_eq!(
            range("2020-02"),
            (
                at("2020-02-01T00:00:00Z"),
                at("2020-02-29T23:59:59.999999Z")
            )
        );
        assert_eq!(
            range("2019-12-31"),
            (
                at("2019-12-31T00:00:00Z"),
                at("2019-12-31T23:59:59.999999Z")
            )
        );
        assert_eq!(
            range("2020-03-01T10:15"),
            (
                at("2020-03-01T10:15:00Z"),
                at("2020-03-01T10:15:59.999999Z")
            )
        );
        assert_eq!(
            range("2020-03-01T10:15:30Z"),
            (
                at("2020-03-01T10:15:30Z"),
                at("2020-03-01T10:15:30.999999Z")
            )
        );
        assert_eq!(
            range("2020-03-01T10:15:30.5Z"),
            (
                at("2020-03-01T10:15:30.5Z"),
                at("2020-03-01T10:15:30.599999Z")
            )
        );
        assert_eq!(
            range("2020-03-01T10:15:30.123456789Z"),
            (
                at("2020-03-01T10:15:30.123456Z"),
                at("2020-03-01T10:15:30.123456Z")
            )
        );
    }

    #[test]
    fn offsets_are_applied() {
        assert_eq!(
            range("2020-03-01T10:15:30+02:00").0,
            at("2020-03-01T08:15:30Z")
        );
        assert_eq!(
            range("2020-03-01T10:15:30-05:30").0,
            at("2020-03-01T15:45:30Z")
        );
        assert_eq!(range("2020-03-01T10:15:30").0, at("2020-03-01T10:15:30Z"));
    }

    #[test]
    fn rejects_what_is_not_a_date() {
        for bad in [
            "",
            "20",
            "2020-13",
            "2020-02-30",
            "2020-1-01",
            "abc",
            "2020-01-01T25:00",
            "2020-01-01T10:00:00+15:00",
            "2020-01-01-01",
            "2020-01-01T10:00:00.",
        ] {
            assert!(parse_range(bad).is_none(), "{bad} should be refused");
        }
    }

    #[test]
    fn periods_may_be_open() {
        let start = parse_range("2020");
        let open = DateRange::between(start, None).unwrap();
        assert_eq!(open.high, DateRange::max_instant());
        assert!(DateRange::between(None, None).is_none());
    }
}
