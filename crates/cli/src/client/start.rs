//! Where `strom consume` starts reading: the `--from` value and the RFC 3339
//! timestamps it accepts.

use std::fmt;
use std::str::FromStr;

/// The `--from` position of `strom consume`, applied to every partition read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The log start offset (`beginning` or `earliest`).
    Beginning,
    /// The high watermark: only records produced from now on (`end` or `latest`).
    End,
    /// This exact offset in every partition (`42`).
    Offset(i64),
    /// The last N records of every partition (`-N`).
    Tail(i64),
    /// The first record whose timestamp is at or after this many milliseconds
    /// since the Unix epoch (`@1700000000000` or `2024-01-01T00:00:00Z`).
    Timestamp(i64),
}

impl FromStr for StartFrom {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let input = input.trim();
        match input {
            "beginning" | "earliest" => return Ok(StartFrom::Beginning),
            "end" | "latest" => return Ok(StartFrom::End),
            _ => {}
        }
        if let Some(millis) = input.strip_prefix('@') {
            return millis
                .parse::<i64>()
                .ok()
                .filter(|ms| *ms >= 0)
                .map(StartFrom::Timestamp)
                .ok_or_else(|| format!("`{input}`: expected @MILLISECONDS since the Unix epoch"));
        }
        if let Some(tail) = input.strip_prefix('-') {
            if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
                return tail
                    .parse::<i64>()
                    .map(StartFrom::Tail)
                    .map_err(|err| format!("`{input}`: {err}"));
            }
        }
        if !input.is_empty() && input.bytes().all(|b| b.is_ascii_digit()) {
            return input
                .parse::<i64>()
                .map(StartFrom::Offset)
                .map_err(|err| format!("`{input}`: {err}"));
        }
        parse_rfc3339_millis(input)
            .map(StartFrom::Timestamp)
            .map_err(|err| {
                format!(
                    "`{input}`: {err}; expected beginning, end, OFFSET, -N, @MILLIS \
                 or an RFC 3339 time such as 2024-01-01T00:00:00Z"
                )
            })
    }
}

impl fmt::Display for StartFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartFrom::Beginning => f.write_str("beginning"),
            StartFrom::End => f.write_str("end"),
            StartFrom::Offset(offset) => write!(f, "{offset}"),
            StartFrom::Tail(n) => write!(f, "-{n}"),
            StartFrom::Timestamp(ms) => write!(f, "@{ms}"),
        }
    }
}

/// Parses a full RFC 3339 date-time (`2024-01-01T00:00:00Z`,
/// `2024-01-01T01:30:00.250+01:30`) into milliseconds since the Unix epoch.
/// The offset is required, so the time is never ambiguous. Sub-millisecond
/// digits are truncated.
pub fn parse_rfc3339_millis(input: &str) -> Result<i64, String> {
    let bytes = input.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let digits = bytes.get(range.clone()).ok_or("too short")?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(format!("expected digits at position {}", range.start));
        }
        Ok(digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let expect = |at: usize, allowed: &[u8]| -> Result<(), String> {
        match bytes.get(at) {
            Some(b) if allowed.contains(b) => Ok(()),
            _ => Err(format!(
                "expected one of {:?} at position {at}",
                allowed_chars(allowed)
            )),
        }
    };

    let year = number(0..4)?;
    expect(4, b"-")?;
    let month = number(5..7)?;
    expect(7, b"-")?;
    let day = number(8..10)?;
    expect(10, b"Tt ")?;
    let hour = number(11..13)?;
    expect(13, b":")?;
    let minute = number(14..16)?;
    expect(16, b":")?;
    let second = number(17..19)?;

    let mut at = 19;
    let mut millis = 0;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return Err("expected digits after `.`".into());
        }
        let digits = &input[start..at.min(start + 3)];
        millis =
            digits.parse::<i64>().map_err(|e| e.to_string())? * 10_i64.pow(3 - digits.len() as u32);
    }

    let offset_minutes = match bytes.get(at) {
        Some(b'Z' | b'z') if at + 1 == bytes.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == bytes.len() => {
            let hours = number(at + 1..at + 3)?;
            expect(at + 3, b":")?;
            let minutes = number(at + 4..at + 6)?;
            if hours > 23 || minutes > 59 {
                return Err("UTC offset out of range".into());
            }
            let total = hours * 60 + minutes;
            if *sign == b'-' {
                -total
            } else {
                total
            }
        }
        None => return Err("missing UTC offset (`Z` or `+HH:MM`)".into()),
        _ => return Err(format!("unexpected text at position {at}")),
    };

    if !(1..=12).contains(&month) {
        return Err("month out of range".into());
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("day out of range".into());
    }
    // 60 is a leap second; it is counted like the first second of the next minute.
    if hour > 23 || minute > 59 || second > 60 {
        return Err("time of day out of range".into());
    }

    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1_000 + millis)
}

fn allowed_chars(allowed: &[u8]) -> Vec<char> {
    allowed.iter().map(|b| char::from(*b)).collect()
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar. Counts in
/// 400-year eras (146 097 days each) with years starting in March, so the leap
/// day falls at the end of a year.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_positions() {
        assert_eq!("beginning".parse(), Ok(StartFrom::Beginning));
        assert_eq!("earliest".parse(), Ok(StartFrom::Beginning));
        assert_eq!("end".parse(), Ok(StartFrom::End));
        assert_eq!("latest".parse(), Ok(StartFrom::End));
    }

    #[test]
    fn offsets_and_tails() {
        assert_eq!("0".parse(), Ok(StartFrom::Offset(0)));
        assert_eq!("42".parse(), Ok(StartFrom::Offset(42)));
        assert_eq!("-10".parse(), Ok(StartFrom::Tail(10)));
        assert!("-".parse::<StartFrom>().is_err());
        assert!("99999999999999999999".parse::<StartFrom>().is_err());
        assert!("4x".parse::<StartFrom>().is_err());
    }

    #[test]
    fn epoch_millis() {
        assert_eq!(
            "@1700000000000".parse(),
            Ok(StartFrom::Timestamp(1_700_000_000_000))
        );
        assert!("@".parse::<StartFrom>().is_err());
        assert!("@-5".parse::<StartFrom>().is_err());
        assert!("@12a".parse::<StartFrom>().is_err());
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(
            "2024-01-01T00:00:00Z".parse(),
            Ok(StartFrom::Timestamp(1_704_067_200_000))
        );
        assert_eq!(parse_rfc3339_millis("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_rfc3339_millis("2023-11-14T22:13:20Z"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_millis("2023-11-14T22:13:20.5Z"),
            Ok(1_700_000_000_500)
        );
        assert_eq!(
            parse_rfc3339_millis("2023-11-14T22:13:20.123456z"),
            Ok(1_700_000_000_123)
        );
        // The same instant written with offsets on either side of UTC.
        assert_eq!(
            parse_rfc3339_millis("2023-11-15T00:13:20+02:00"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_millis("2023-11-14 17:43:20-04:30"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_millis("2024-02-29T00:00:00Z"),
            Ok(1_709_164_800_000)
        );
        assert_eq!(parse_rfc3339_millis("1969-12-31T23:59:59Z"), Ok(-1_000));
        assert_eq!(
            parse_rfc3339_millis("2000-03-01T00:00:00Z"),
            Ok(951_868_800_000)
        );
    }

    #[test]
    fn rfc3339_rejects_ambiguous_or_invalid() {
        for bad in [
            "2024-01-01T00:00:00",
            "2024-01-01",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00+2:00",
            "2024-01-01T00:00:00Zjunk",
            "2024-01-01T00:00:00.Z",
            "yesterday",
        ] {
            assert!(
                parse_rfc3339_millis(bad).is_err(),
                "{bad} should be rejected"
            );
            assert!(
                bad.parse::<StartFrom>().is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for from in [
            StartFrom::Beginning,
            StartFrom::End,
            StartFrom::Offset(7),
            StartFrom::Tail(3),
            StartFrom::Timestamp(1_700_000_000_000),
        ] {
            assert_eq!(from.to_string().parse(), Ok(from));
        }
    }
}
