//! `strom produce`: send lines from stdin or a file as records.

use super::common::{parse_separator, ClientArgs, Separator};
use anyhow::{anyhow, bail, Context as _};
use clap::{Args, ValueEnum};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;
use rdkafka::ClientContext;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many delivery errors are logged one by one before only counting them.
const LOGGED_ERRORS: u64 = 5;
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// Produce records from stdin or a file, one per line.
///
/// Each input line becomes one record (the line ending is not part of it; an
/// empty line is an empty record). The command waits until every record is
/// acknowledged or has failed, prints a summary to stderr, and exits non-zero
/// if any record failed.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to write to.
    pub topic: String,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Read records from this file instead of stdin.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value; a line without SEP
    /// is an error. Understands \t, \n, \r, \\ and \xHH.
    #[arg(long, value_name = "SEP", value_parser = parse_separator)]
    pub key_separator: Option<Separator>,
    /// Header added to every record, e.g. `--header source=cli` (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Compression codec for record batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// Acknowledgements to wait for: none (0), the leader (1) or all in-sync replicas.
    #[arg(long, value_enum, default_value_t = Acks::All)]
    pub acks: Acks,
    /// Write every record to this partition instead of letting the partitioner choose.
    #[arg(long)]
    pub partition: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Acks {
    #[value(name = "0")]
    None,
    #[value(name = "1")]
    Leader,
    #[value(name = "all", alias = "-1")]
    All,
}

impl Acks {
    fn as_config(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// Parses a `--header` value: `key=value`, split at the first `=`. The key is
/// kept as given (headers are not trimmed); the value may be empty.
pub fn parse_header(input: &str) -> Result<(String, String), String> {
    match input.split_once('=') {
        Some(("", _)) => Err(format!("empty header key in `{input}`")),
        Some((key, value)) => Ok((key.to_string(), value.to_string())),
        None => Err(format!("expected KEY=VALUE, got `{input}`")),
    }
}

/// Splits `line` at the first occurrence of `separator`.
pub fn split_key<'a>(line: &'a [u8], separator: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    if separator.is_empty() || separator.len() > line.len() {
        return None;
    }
    let at = line
        .windows(separator.len())
        .position(|window| window == separator)?;
    Some((&line[..at], &line[at + separator.len()..]))
}

/// Drops a trailing `\n` or `\r\n`.
pub fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Delivery outcomes, counted by the producer's delivery callback.
#[derive(Debug, Default)]
struct DeliveryStats {
    delivered: AtomicU64,
    delivered_bytes: AtomicU64,
    failed: AtomicU64,
}

impl DeliveryStats {
    fn record_failure(&self, err: &dyn std::fmt::Display) {
        let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
        if failed <= LOGGED_ERRORS {
            tracing::error!("record not delivered: {err}");
        } else if failed == LOGGED_ERRORS + 1 {
            tracing::error!("more records not delivered; only counting them from now on");
        }
    }
}

struct DeliveryCounter {
    stats: Arc<DeliveryStats>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => {
                let bytes = message.key_len() + message.payload_len();
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .delivered_bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
            }
            Err((err, _)) => self.stats.record_failure(err),
        }
    }
}

type CountingProducer = ThreadedProducer<DeliveryCounter>;

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let input: Box<dyn BufRead + Send> = match &args.file {
        Some(path) => Box::new(BufReader::new(
            File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
        None => Box::new(BufReader::new(std::io::stdin())),
    };
    let stats = Arc::new(DeliveryStats::default());
    let producer: Arc<CountingProducer> = Arc::new(
        args.client
            .config(&[
                ("acks", args.acks.as_config()),
                ("compression.type", args.compression.as_config()),
            ])
            .create_with_context(DeliveryCounter {
                stats: Arc::clone(&stats),
            })
            .context("creating the Kafka producer")?,
    );

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let job = SendJob {
        producer: Arc::clone(&producer),
        stats: Arc::clone(&stats),
        topic: args.topic.clone(),
        key_separator: args.key_separator.clone(),
        headers: args.headers.clone(),
        partition: args.partition,
        stop: Arc::clone(&stop),
        show_progress: std::io::stderr().is_terminal(),
        started,
    };
    // A plain thread, not spawn_blocking: a read blocked on a terminal must not
    // keep the runtime from shutting down after Ctrl-C.
    let sender = std::thread::spawn(move || job.send_lines(input));
    let sender = tokio::task::spawn_blocking(move || sender.join());

    let send_result = tokio::select! {
        joined = sender => match joined {
            Ok(Ok(result)) => result,
            _ => Err(anyhow!("the sending thread panicked")),
        },
        _ = tokio::signal::ctrl_c() => {
            stop.store(true, Ordering::Relaxed);
            eprintln!("interrupted: waiting for records in flight (Ctrl-C again to abandon them)");
            Ok(())
        }
    };

    // Every queued record either gets acknowledged or fails once
    // message.timeout.ms passes, so waiting without a limit ends.
    let flusher = Arc::clone(&producer);
    let flush = tokio::task::spawn_blocking(move || flusher.flush(Timeout::Never));
    tokio::select! {
        flushed = flush => {
            if let Ok(Err(err)) = flushed {
                tracing::error!("flush failed: {err}");
            }
        }
        _ = tokio::signal::ctrl_c() => {
            eprintln!("abandoning {} records in flight", producer.in_flight_count());
            std::process::exit(130);
        }
    }

    let elapsed = started.elapsed();
    let delivered = stats.delivered.load(Ordering::Relaxed);
    let failed = stats.failed.load(Ordering::Relaxed);
    let bytes = stats.delivered_bytes.load(Ordering::Relaxed);
    let rate = delivered as f64 / elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "produced {delivered} records ({bytes} bytes) to {} in {:.2}s ({rate:.0} records/s){}",
        args.topic,
        elapsed.as_secs_f64(),
        if failed > 0 {
            format!("; {failed} failed")
        } else {
            String::new()
        }
    );
    send_result?;
    if failed > 0 {
        bail!("{failed} records were not delivered");
    }
    Ok(())
}

struct SendJob {
    producer: Arc<CountingProducer>,
    stats: Arc<DeliveryStats>,
    topic: String,
    key_separator: Option<Separator>,
    headers: Vec<(String, String)>,
    partition: Option<i32>,
    stop: Arc<AtomicBool>,
    show_progress: bool,
    started: Instant,
}

impl SendJob {
    /// Queues one record per input line until the input ends, a line is
    /// malformed, or Ctrl-C sets `stop`.
    fn send_lines(self, mut input: Box<dyn BufRead + Send>) -> anyhow::Result<()> {
        let headers = (!self.headers.is_empty()).then(|| {
            self.headers
                .iter()
                .fold(OwnedHeaders::new(), |headers, (key, value)| {
                    headers.insert(Header {
                        key,
                        value: Some(value),
                    })
                })
        });
        let mut line = Vec::new();
        let mut line_number = 0u64;
        let mut queued = 0u64;
        let mut last_progress = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            line.clear();
            if input
                .read_until(b'\n', &mut line)
                .context("reading input")?
                == 0
            {
                break;
            }
            line_number += 1;
            let content = strip_line_ending(&line);
            let (key, value) = match &self.key_separator {
                Some(Separator(separator)) => match split_key(content, separator) {
                    Some((key, value)) => (Some(key), value),
                    None => bail!(
                        "line {line_number}: no key separator {:?}; stopped reading",
                        String::from_utf8_lossy(separator)
                    ),
                },
                None => (None, content),
            };
            let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic).payload(value);
            if let Some(key) = key {
                record = record.key(key);
            }
            if let Some(headers) = &headers {
                record = record.headers(headers.clone());
            }
            if let Some(partition) = self.partition {
                record = record.partition(partition);
            }
            self.send(record);
            queued += 1;
            if self.show_progress && last_progress.elapsed() >= PROGRESS_INTERVAL {
                last_progress = Instant::now();
                self.print_progress(queued);
            }
        }
        Ok(())
    }

    /// Queues a record, waiting while librdkafka's queue is full. A record
    /// librdkafka refuses outright (too large, unknown partition) is counted
    /// as failed.
    fn send(&self, mut record: BaseRecord<'_, [u8], [u8]>) {
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((err, _)) => {
                    self.stats.record_failure(&err);
                    return;
                }
            }
        }
    }

    fn print_progress(&self, queued: u64) {
        let delivered = self.stats.delivered.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "... {queued} records read, {delivered} delivered, {:.0} records/s",
            delivered as f64 / elapsed
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_splits_at_first_separator() {
        assert_eq!(split_key(b"k1:v:1", b":"), Some((&b"k1"[..], &b"v:1"[..])));
        assert_eq!(split_key(b":v", b":"), Some((&b""[..], &b"v"[..])));
        assert_eq!(split_key(b"k:", b":"), Some((&b"k"[..], &b""[..])));
        assert_eq!(
            split_key(b"user-1::{\"a\":1}", b"::"),
            Some((&b"user-1"[..], &b"{\"a\":1}"[..]))
        );
        assert_eq!(split_key(b"k\tv", b"\t"), Some((&b"k"[..], &b"v"[..])));
    }

    #[test]
    fn key_split_fails_without_separator() {
        assert_eq!(split_key(b"no separator", b":"), None);
        assert_eq!(split_key(b"", b":"), None);
        assert_eq!(split_key(b"a", b"ab"), None);
        assert_eq!(split_key(b"abc", b""), None);
    }

    #[test]
    fn line_endings_are_stripped_once() {
        assert_eq!(strip_line_ending(b"a\n"), b"a");
        assert_eq!(strip_line_ending(b"a\r\n"), b"a");
        assert_eq!(strip_line_ending(b"a"), b"a");
        assert_eq!(strip_line_ending(b"\n"), b"");
        assert_eq!(strip_line_ending(b"a\n\n"), b"a\n");
    }

    #[test]
    fn headers_split_at_first_equals() {
        assert_eq!(
            parse_header("trace=a=b").unwrap(),
            ("trace".to_string(), "a=b".to_string())
        );
        assert_eq!(
            parse_header("empty=").unwrap(),
            ("empty".to_string(), String::new())
        );
        assert_eq!(
            parse_header(" spaced =x").unwrap(),
            (" spaced ".to_string(), "x".to_string())
        );
        assert!(parse_header("novalue").is_err());
        assert!(parse_header("=v").is_err());
    }

    #[test]
    fn config_names_match_librdkafka() {
        assert_eq!(Acks::All.as_config(), "all");
        assert_eq!(Acks::None.as_config(), "0");
        assert_eq!(Compression::Zstd.as_config(), "zstd");
    }
}
