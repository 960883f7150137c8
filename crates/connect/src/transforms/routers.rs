//! Topic routers (TimestampRouter, RegexRouter), Filter, and the predicates
//! (TopicNameMatches, HasHeaderKey, RecordIsTombstone).

use super::{Predicate, PredicatePlugin, TransformPlugin, Transformation};
use crate::error::{ConnectError, Result};
use crate::sdk::config::{ConfigDef, ConfigType, Importance, Validator};
use crate::sdk::data::Record;

// --- TimestampRouter -----------------------------------------------------

struct TimestampRouter {
    topic_format: String,
    timestamp_format: String,
}

pub(super) fn timestamp_router() -> TransformPlugin {
    TransformPlugin {
        name: "TimestampRouter",
        sided: false,
        config_def: || {
            ConfigDef::new()
                .define("topic.format", ConfigType::String, Some("${topic}-${timestamp}"), Importance::High, "Format string which can contain ${topic} and ${timestamp} as placeholders for the topic and timestamp, respectively.")
                .define_with("timestamp.format", ConfigType::String, Some("yyyyMMdd"), Importance::High, "Format string for the timestamp, in java.text.SimpleDateFormat's letters (yyyy, yy, MM, dd, HH, mm, ss, SSS, 'literal'), UTC.", Validator::Custom(|f| format_timestamp(f, 0).map(|_| ())))
        },
        build: |_, config| {
            Ok(Box::new(TimestampRouter {
                topic_format: config.string("topic.format"),
                timestamp_format: config.string("timestamp.format"),
            }))
        },
    }
}

impl Transformation for TimestampRouter {
    fn apply(&self, mut record: Record, _offset: Option<i64>) -> Result<Option<Record>> {
        let timestamp = record.timestamp.ok_or_else(|| {
            ConnectError::Transform(format!(
                "TimestampRouter: the record on {} has no timestamp",
                record.topic
            ))
        })?;
        let formatted =
            format_timestamp(&self.timestamp_format, timestamp).map_err(ConnectError::Transform)?;
        record.topic = self
            .topic_format
            .replace("${topic}", &record.topic)
            .replace("${timestamp}", &formatted);
        Ok(Some(record))
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats epoch milliseconds (UTC) with SimpleDateFormat-style letters.
pub fn format_timestamp(format: &str, millis: i64) -> Result<String, String> {
    let days = millis.div_euclid(86_400_000);
    let in_day = millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    let chars: Vec<char> = format.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|&q| q == '\'')
                .ok_or_else(|| format!("unterminated quote in {format}"))?;
            if end == 0 {
                out.push('\'');
            } else {
                out.extend(&chars[i + 1..i + 1 + end]);
            }
            i += end + 2;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            out.push(c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        let pad = |n: i64, width: usize| format!("{n:0width$}");
        match c {
            'y' if run == 2 => out.push_str(&pad(year.rem_euclid(100), 2)),
            'y' => out.push_str(&pad(year, run)),
            'M' => out.push_str(&pad(month.into(), run)),
            'd' => out.push_str(&pad(day.into(), run)),
            'H' => out.push_str(&pad(hour, run)),
            'm' => out.push_str(&pad(minute, run)),
            's' => out.push_str(&pad(second, run)),
            'S' => out.push_str(&pad(milli, run)),
            other => return Err(format!("unsupported pattern letter {other} in {format}")),
        }
        i += run;
    }
    Ok(out)
}

// --- RegexRouter ---------------------------------------------------------

struct RegexRouter {
    regex: regex::Regex,
    replacement: String,
}

pub(super) fn regex_router() -> TransformPlugin {
    TransformPlugin {
        name: "RegexRouter",
        sided: false,
        config_def: || {
            ConfigDef::new()
                .define_with(
                    "regex",
                    ConfigType::String,
                    None,
                    Importance::High,
                    "Regular expression the whole topic name must match.",
                    Validator::Regex,
                )
                .define(
                    "replacement",
                    ConfigType::String,
                    None,
                    Importance::High,
                    "Replacement string, with $1, ${name} for groups.",
                )
        },
        build: |_, config| {
            let regex = regex::Regex::new(&format!("^(?:{})$", config.string("regex")))
                .map_err(|e| ConnectError::Transform(e.to_string()))?;
            Ok(Box::new(RegexRouter {
                regex,
                replacement: config.string("replacement"),
            }))
        },
    }
}

impl Transformation for RegexRouter {
    fn apply(&self, mut record: Record, _offset: Option<i64>) -> Result<Option<Record>> {
        if self.regex.is_match(&record.topic) {
            record.topic = self
                .regex
                .replace(&record.topic, self.replacement.as_str())
                .into_owned();
        }
        Ok(Some(record))
    }
}

// --- Filter --------------------------------------------------------------

struct Filter;

pub(super) fn filter() -> TransformPlugin {
    TransformPlugin {
        name: "Filter",
        sided: false,
        config_def: ConfigDef::new,
        build: |_, _| Ok(Box::new(Filter)),
    }
}

impl Transformation for Filter {
    fn apply(&self, _record: Record, _offset: Option<i64>) -> Result<Option<Record>> {
        Ok(None)
    }
}

// --- predicates ----------------------------------------------------------

struct TopicNameMatches(regex::Regex);
struct HasHeaderKey(String);
struct RecordIsTombstone;

impl Predicate for TopicNameMatches {
    fn test(&self, record: &Record) -> bool {
        self.0.is_match(&record.topic)
    }
}

impl Predicate for HasHeaderKey {
    fn test(&self, record: &Record) -> bool {
        record.headers.iter().any(|h| h.key == self.0)
    }
}

impl Predicate for RecordIsTombstone {
    fn test(&self, record: &Record) -> bool {
        record.value.is_none()
    }
}

pub(super) fn predicates() -> Vec<PredicatePlugin> {
    vec![
        PredicatePlugin {
            name: "TopicNameMatches",
            config_def: || {
                ConfigDef::new().define_with(
                    "pattern",
                    ConfigType::String,
                    None,
                    Importance::Medium,
                    "A regular expression the whole topic name must match.",
                    Validator::Regex,
                )
            },
            build: |config| {
                let regex = regex::Regex::new(&format!("^(?:{})$", config.string("pattern")))
                    .map_err(|e| ConnectError::Transform(e.to_string()))?;
                Ok(Box::new(TopicNameMatches(regex)))
            },
        },
        PredicatePlugin {
            name: "HasHeaderKey",
            config_def: || {
                ConfigDef::new().define_with(
                    "name",
                    ConfigType::String,
                    None,
                    Importance::Medium,
                    "The header name.",
                    Validator::NonEmpty,
                )
            },
            build: |config| Ok(Box::new(HasHeaderKey(config.string("name")))),
        },
        PredicatePlugin {
            name: "RecordIsTombstone",
            config_def: ConfigDef::new,
            build: |_| Ok(Box::new(RecordIsTombstone)),
        },
    ]
}
