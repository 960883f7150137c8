//! Command-line options shared by the bench modes, and their librdkafka names.

use clap::{Args, ValueEnum};
use serde::Serialize;
use std::time::Duration;

/// The topic a run writes to, and how to create it.
#[derive(Debug, Clone, Args)]
pub struct TopicOptions {
    /// Topic to benchmark.
    #[arg(long)]
    pub topic: String,
    /// Create the topic first; an existing topic is used as it is.
    #[arg(long)]
    pub create: bool,
    /// Partitions of the topic made by --create.
    #[arg(long, default_value_t = 1, requires = "create", value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// Replication factor of the topic made by --create.
    #[arg(long, default_value_t = 1, requires = "create", value_parser = clap::value_parser!(i32).range(1..))]
    pub replication_factor: i32,
}

/// How records are made and sent. The rate is not here: `produce` defaults it
/// to unlimited, `e2e` requires it.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ProducerOptions {
    /// Size of each record's value in bytes (records have no key).
    #[arg(long, default_value_t = 100, value_name = "BYTES")]
    pub record_size: usize,
    /// Acknowledgements to wait for: none (0), the leader (1) or all in-sync replicas.
    #[arg(long, value_enum, default_value_t = Acks::All)]
    pub acks: Acks,
    /// Compression codec for record batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// Number of producer clients, each on its own thread and connection;
    /// they share the count, duration and rate.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub producers: u64,
    /// librdkafka `linger.ms`: how long to wait for a batch to fill
    /// (the client's default when absent).
    #[arg(long, value_name = "MS")]
    pub linger_ms: Option<u64>,
    /// librdkafka `batch.size`: the most bytes in one batch
    /// (the client's default when absent).
    #[arg(long, value_name = "BYTES")]
    pub batch_size: Option<u64>,
}

impl ProducerOptions {
    /// librdkafka properties for these options; `-X` still overrides them.
    pub fn client_properties(&self) -> Vec<(&'static str, String)> {
        let mut properties = vec![
            ("acks", self.acks.as_config().to_string()),
            ("compression.type", self.compression.as_config().to_string()),
        ];
        if let Some(linger) = self.linger_ms {
            properties.push(("linger.ms", linger.to_string()));
        }
        if let Some(batch) = self.batch_size {
            properties.push(("batch.size", batch.to_string()));
        }
        properties
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Acks {
    #[value(name = "0")]
    #[serde(rename = "0")]
    None,
    #[value(name = "1")]
    #[serde(rename = "1")]
    Leader,
    #[value(name = "all", alias = "-1")]
    #[serde(rename = "all")]
    All,
}

impl Acks {
    pub fn as_config(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Parses a duration given as seconds (`30`, `1.5`) or with a unit
/// (`500ms`, `10s`, `2m`, `1h`).
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let input = input.trim();
    let split = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(input.len());
    let (number, unit) = input.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{input}` is not a duration (e.g. 30, 1.5s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{input}` (ms, s, m or h)"
            ))
        }
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!("`{input}`: the duration must be positive"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("`{input}`: {err}"))
}

/// Parses a rate in records per second; 0 means as fast as possible.
pub fn parse_rate(input: &str) -> Result<f64, String> {
    let rate: f64 = input
        .trim()
        .parse()
        .map_err(|_| format!("`{input}` is not a number of records per second"))?;
    if !rate.is_finite() || rate < 0.0 {
        return Err(format!(
            "`{input}`: the rate must be 0 (unlimited) or positive"
        ));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "0", "-1", "s", "10x", "1.2.3", "0ms"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rates_are_non_negative_numbers() {
        assert_eq!(parse_rate("0").unwrap(), 0.0);
        assert_eq!(parse_rate("50000").unwrap(), 50000.0);
        assert_eq!(parse_rate("0.5").unwrap(), 0.5);
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("inf").is_err());
    }

    #[test]
    fn producer_properties_use_librdkafka_names() {
        let options = ProducerOptions {
            record_size: 100,
            acks: Acks::Leader,
            compression: Compression::Lz4,
            producers: 1,
            linger_ms: Some(0),
            batch_size: None,
        };
        assert_eq!(
            options.client_properties(),
            vec![
                ("acks", "1".to_string()),
                ("compression.type", "lz4".to_string()),
                ("linger.ms", "0".to_string()),
            ]
        );
        assert_eq!(
            serde_json::to_value(Acks::All).unwrap(),
            serde_json::json!("all")
        );
    }
}
