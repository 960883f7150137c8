//! What a run prints: a table for people, one JSON object for scripts, and
//! progress lines on a terminal while it runs.

use super::latency::LatencySummary;
use crate::client::common::{print_stdout, render_table};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Bytes in the MB of "MB/s": 10^6, as disks and networks count.
const MEGABYTE: f64 = 1e6;
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// Records and bytes moved in some time. Bytes are keys plus values, without
/// headers or protocol overhead.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Throughput {
    pub records: u64,
    pub bytes: u64,
    pub elapsed_s: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
}

impl Throughput {
    pub fn new(records: u64, bytes: u64, elapsed: Duration) -> Throughput {
        let seconds = elapsed.as_secs_f64();
        let per_sec = |amount: f64| {
            if seconds > 0.0 {
                amount / seconds
            } else {
                0.0
            }
        };
        Throughput {
            records,
            bytes,
            elapsed_s: seconds,
            records_per_sec: per_sec(records as f64),
            mb_per_sec: per_sec(bytes as f64 / MEGABYTE),
        }
    }
}

/// The producing side of a run: acknowledged records, and latency from each
/// record's due time (its send time when unpaced) to its acknowledgement.
#[derive(Debug, Clone, Serialize)]
pub struct Produced {
    #[serde(flatten)]
    pub throughput: Throughput,
    /// Records the client gave up on (broker errors, timeouts).
    pub failed: u64,
    pub latency_ms: LatencySummary,
}

/// The consuming side of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Consumed {
    #[serde(flatten)]
    pub throughput: Throughput,
}

/// Everything one run reports; `--json` prints exactly this.
#[derive(Debug, Serialize)]
pub struct Report<S: Serialize> {
    pub mode: &'static str,
    pub settings: S,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub produced: Option<Produced>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed: Option<Consumed>,
    /// From each record's due time to its arrival at the consumer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_to_end_latency_ms: Option<LatencySummary>,
}

impl<S: Serialize> Report<S> {
    /// Prints the report: one JSON line, or `headline` and a table.
    pub fn print(&self, json: bool, headline: &str) -> anyhow::Result<()> {
        if json {
            let mut line = serde_json::to_string(self)?;
            line.push('\n');
            print_stdout(&line)
        } else {
            print_stdout(&format!("{headline}\n\n{}", self.table()))
        }
    }

    /// One row per side of the run; the failure and latency columns appear
    /// only when some row has them.
    pub fn table(&self) -> String {
        let with_failed = self.produced.is_some();
        let with_latency = with_failed || self.end_to_end_latency_ms.is_some();
        let mut headers = vec!["", "RECORDS", "MB", "SECONDS", "RECORDS/S", "MB/S"];
        if with_failed {
            headers.push("FAILED");
        }
        if with_latency {
            headers.extend(["LATENCY", "P50 MS", "P99 MS", "P99.9 MS", "MAX MS"]);
        }
        let mut rows = Vec::new();
        if let Some(produced) = &self.produced {
            let mut row = throughput_cells("produce", &produced.throughput);
            row.push(produced.failed.to_string());
            row.extend(latency_cells("send → ack", &produced.latency_ms));
            rows.push(row);
        }
        if let Some(consumed) = &self.consumed {
            rows.push(throughput_cells("consume", &consumed.throughput));
        }
        if let Some(latency) = &self.end_to_end_latency_ms {
            let blanks = if with_failed { 6 } else { 5 };
            let mut row = vec!["end to end".to_string()];
            row.extend(std::iter::repeat_n(String::new(), blanks));
            row.extend(latency_cells("send → receive", latency));
            rows.push(row);
        }
        render_table(&headers, &rows)
    }
}

fn throughput_cells(label: &str, throughput: &Throughput) -> Vec<String> {
    vec![
        label.to_string(),
        throughput.records.to_string(),
        format!("{:.1}", throughput.bytes as f64 / MEGABYTE),
        format!("{:.2}", throughput.elapsed_s),
        format!("{:.0}", throughput.records_per_sec),
        format!("{:.2}", throughput.mb_per_sec),
    ]
}

fn latency_cells(label: &str, latency: &LatencySummary) -> Vec<String> {
    if latency.count == 0 {
        return vec![
            label.to_string(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ];
    }
    vec![
        label.to_string(),
        format!("{:.3}", latency.p50),
        format!("{:.3}", latency.p99),
        format!("{:.3}", latency.p99_9),
        format!("{:.3}", latency.max),
    ]
}

/// A counter shown on progress lines.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub label: &'static str,
    pub records: u64,
    pub bytes: u64,
}

/// Prints, every couple of seconds and only when enabled (stderr is a
/// terminal), how far the run is and its rates since the last line.
pub struct Progress {
    enabled: bool,
    started: Instant,
    last_at: Instant,
    last: Vec<Sample>,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        let now = Instant::now();
        Progress {
            enabled,
            started: now,
            last_at: now,
            last: Vec::new(),
        }
    }

    pub fn tick(&mut self, samples: &[Sample]) {
        if !self.enabled || self.last_at.elapsed() < PROGRESS_INTERVAL {
            return;
        }
        let now = Instant::now();
        let interval = now.duration_since(self.last_at).as_secs_f64();
        let parts: Vec<String> = samples
            .iter()
            .map(|sample| {
                let before = self
                    .last
                    .iter()
                    .find(|last| last.label == sample.label)
                    .copied()
                    .unwrap_or(Sample {
                        records: 0,
                        bytes: 0,
                        ..*sample
                    });
                format!(
                    "{} {} records ({:.0}/s, {:.1} MB/s)",
                    sample.label,
                    sample.records,
                    sample.records.saturating_sub(before.records) as f64 / interval,
                    sample.bytes.saturating_sub(before.bytes) as f64 / MEGABYTE / interval,
                )
            })
            .collect();
        eprintln!(
            "[{:6.1} s] {}",
            now.duration_since(self.started).as_secs_f64(),
            parts.join(", ")
        );
        self.last_at = now;
        self.last = samples.to_vec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_divides_by_elapsed_time() {
        let t = Throughput::new(1_000_000, 100_000_000, Duration::from_secs(2));
        assert_eq!(t.records_per_sec, 500_000.0);
        assert_eq!(t.mb_per_sec, 50.0);
        assert_eq!(t.elapsed_s, 2.0);
        let empty = Throughput::new(0, 0, Duration::ZERO);
        assert_eq!(empty.records_per_sec, 0.0);
    }

    #[test]
    fn json_report_nests_each_side() {
        let report = Report {
            mode: "e2e",
            settings: serde_json::json!({"topic": "t"}),
            produced: Some(Produced {
                throughput: Throughput::new(10, 1000, Duration::from_secs(1)),
                failed: 0,
                latency_ms: LatencySummary::default(),
            }),
            consumed: None,
            end_to_end_latency_ms: Some(LatencySummary::default()),
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["mode"], "e2e");
        assert_eq!(json["settings"]["topic"], "t");
        assert_eq!(json["produced"]["records"], 10);
        assert_eq!(json["produced"]["mb_per_sec"], 0.001);
        assert_eq!(json["produced"]["latency_ms"]["p99_9"], 0.0);
        assert!(json.get("consumed").is_none());
        assert_eq!(json["end_to_end_latency_ms"]["count"], 0);
    }

    #[test]
    fn table_has_a_row_per_side() {
        let mut latency = LatencySummary {
            count: 3,
            p50: 1.5,
            p99: 2.0,
            p99_9: 2.5,
            max: 3.0,
            ..LatencySummary::default()
        };
        let report = Report {
            mode: "produce",
            settings: (),
            produced: Some(Produced {
                throughput: Throughput::new(3, 300, Duration::from_secs(1)),
                failed: 1,
                latency_ms: latency,
            }),
            consumed: Some(Consumed {
                throughput: Throughput::new(3, 300, Duration::from_secs(1)),
            }),
            end_to_end_latency_ms: None,
        };
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].contains("P99.9 MS"));
        assert!(lines[1].starts_with("produce"));
        assert!(
            lines[1].contains("1.500") && lines[1].ends_with("3.000"),
            "{table}"
        );
        assert!(lines[2].starts_with("consume"));
        let consume_only = Report {
            mode: "consume",
            settings: (),
            produced: None,
            consumed: report.consumed.clone(),
            end_to_end_latency_ms: None,
        };
        let consume_table = consume_only.table();
        let header = consume_table.lines().next().unwrap();
        assert!(
            header.ends_with("MB/S") && !header.contains("FAILED"),
            "{consume_table}"
        );
        latency.count = 0;
        assert_eq!(latency_cells("x", &latency)[1], "-");
    }
}
