//! Crash loop: `kill -9` the broker at random moments under an idempotent,
//! acks=all producer and check that no acknowledged record is lost,
//! duplicated or reordered.
//!
//! The test runs the real `strom serve` binary with `flush = always` on one
//! data dir and one fixed port. An idempotent librdkafka producer sends
//! unique, numbered records (value = sequence number, partition = sequence
//! number mod 3, key = the partition) at a steady rate and records every
//! acknowledgement (partition, offset). The broker is killed with SIGKILL
//! (`Child::kill`) after a random delay drawn from a seeded RNG, restarted on
//! the same data dir, and its recovery time (spawn → `listening on`) is
//! measured. After every restart, and once more after the producer has
//! drained, a consumer reads every partition from the beginning to its high
//! watermark and checks:
//!
//! - lost: an acknowledged record is missing;
//! - moved: an acknowledged record is present, but not at the offset its
//!   acknowledgement named;
//! - duplicates: a sequence number appears more than once;
//! - order violations: sequence numbers do not increase along a partition;
//! - misplaced: a record in a partition it was not sent to, or a value that
//!   is not a sequence number.
//!
//! All must be 0. Records that were never acknowledged may or may not be
//! present, but never twice.
//!
//! - `STROM_CRASH_SEED=N` reproduces a run (the seed is always printed).
//! - `STROM_FULL=1` runs 50 kills instead of the 4 of the default (CI) run.
//!
//! On failure the data dir and the broker logs of every run
//! (`broker-N.log`) are kept and their path is printed.

mod common;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const STROM: &str = env!("CARGO_BIN_EXE_strom");
const TOPIC: &str = "crash-loop";
const PARTITIONS: i32 = 3;
/// How long a (re)started broker may take to print `listening on`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the producer may take to get a first acknowledgement from a
/// restarted broker.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a check may take to read every partition to its high watermark.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// The sizes of a run.
struct Plan {
    kills: usize,
    /// The broker runs for a random time in this range (after the producer
    /// got its first acknowledgement from it) before it is killed.
    run_ms: (u64, u64),
    /// Records produced per second (the producer catches up after a restart).
    rate: f64,
}

impl Plan {
    fn from_env() -> Plan {
        if std::env::var("STROM_FULL").is_ok_and(|v| v == "1") {
            Plan {
                kills: 50,
                run_ms: (100, 3000),
                rate: 4000.0,
            }
        } else {
            Plan {
                kills: 4,
                run_ms: (500, 5000),
                rate: 4000.0,
            }
        }
    }
}

/// SplitMix64: small, seedable, good enough to pick kill moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn seed() -> u64 {
    match std::env::var("STROM_CRASH_SEED")
        .ok()
        .filter(|s| !s.trim().is_empty())
    {
        Some(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("STROM_CRASH_SEED must be an unsigned integer, got {text}")),
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock");
            now.as_secs() ^ u64::from(now.subsec_nanos()) ^ u64::from(std::process::id()) << 32
        }
    }
}

/// A free loopback port: bound, then released, then reused by every broker
/// run so that the producer reconnects to the same address.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// The broker child process and its data dir. Every run logs to its own
/// `broker-N.log` next to the data.
struct Broker {
    child: Option<Child>,
    port: u16,
    root: Option<tempfile::TempDir>,
    runs: usize,
    /// Bumped when a run starts; acknowledgements are tagged with it.
    generation: Arc<AtomicUsize>,
}

impl Broker {
    fn new() -> Broker {
        Broker {
            child: None,
            port: free_port(),
            root: Some(tempfile::tempdir().expect("tempdir")),
            runs: 0,
            generation: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn root(&self) -> &Path {
        self.root.as_ref().expect("root dir").path()
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log_path(&self, run: usize) -> PathBuf {
        self.root().join(format!("broker-{run}.log"))
    }

    /// Starts a run on the data dir and returns how long it took to listen.
    fn start(&mut self) -> Duration {
        assert!(self.child.is_none(), "broker already running");
        self.runs += 1;
        let run = self.runs;
        let log = std::fs::File::create(self.log_path(run)).expect("broker log file");
        let started = Instant::now();
        let mut child = Command::new(STROM)
            .args(["serve", "--admin-listen", "127.0.0.1:0", "--listen"])
            .arg(self.bootstrap())
            .arg("--data-dir")
            .arg(self.root().join("data"))
            .env("STROM_FLUSH", "always")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn strom serve");
        let rx = common::listening_address(&mut child);
        self.child = Some(child);
        let deadline = started + START_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(_) => break,
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    let child = self.child.as_mut().expect("child");
                    if let Some(status) = child.try_wait().expect("try_wait") {
                        self.child = None;
                        panic!(
                            "recovery failure: broker run {run} exited with {status} before \
                             listening\n{}",
                            self.log_tail(run, 40)
                        );
                    }
                }
                Err(_) => panic!(
                    "recovery failure: broker run {run} did not print `listening on` within \
                     {START_TIMEOUT:?}\n{}",
                    self.log_tail(run, 40)
                ),
            }
        }
        let took = started.elapsed();
        self.generation.store(run, Ordering::SeqCst);
        took
    }

    /// SIGKILL (`Child::kill` on Unix) and reap.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("broker running");
        child.kill().expect("kill broker");
        child.wait().expect("reap broker");
    }

    fn log_tail(&self, run: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(run)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let from = all.len().saturating_sub(lines);
        format!(
            "--- broker-{run}.log (last {lines} lines) ---\n{}",
            all[from..].join("\n")
        )
    }

    /// From the recovery reports in the logs: how many partition recoveries
    /// cut a torn tail, and how many bytes they cut in all.
    fn truncations(&self) -> (usize, u64) {
        let (mut cuts, mut bytes) = (0, 0);
        for run in 1..=self.runs {
            let text = std::fs::read_to_string(self.log_path(run)).unwrap_or_default();
            for line in text.lines().filter(|l| l.contains("log recovered")) {
                let n = line
                    .split("truncated_bytes: ")
                    .nth(1)
                    .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|digits| digits.parse::<u64>().ok())
                    .unwrap_or(0);
                if n > 0 {
                    cuts += 1;
                    bytes += n;
                }
            }
        }
        (cuts, bytes)
    }

    /// Log lines of every run that mention recovery, truncation or errors.
    fn notable_log_lines(&self) -> String {
        let mut out = String::new();
        for run in 1..=self.runs {
            let text = std::fs::read_to_string(self.log_path(run)).unwrap_or_default();
            for line in text.lines() {
                let lower = line.to_ascii_lowercase();
                if [
                    "recover", "truncat", "torn", "corrupt", "error", "warn", "panic",
                ]
                .iter()
                .any(|word| lower.contains(word))
                {
                    out.push_str(&format!("broker-{run}.log: {line}\n"));
                }
            }
        }
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            if let Some(root) = self.root.take() {
                eprintln!(
                    "crash loop: kept data dir and broker logs in {}",
                    root.keep().display()
                );
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Ack {
    seq: u64,
    partition: i32,
    offset: i64,
    /// The broker run that acknowledged it.
    run: usize,
}

#[derive(Default)]
struct Deliveries {
    acked: Mutex<Vec<Ack>>,
    failed: Mutex<BTreeMap<String, u64>>,
    failed_total: AtomicU64,
    client_errors: AtomicU64,
}

struct Context {
    deliveries: Arc<Deliveries>,
    generation: Arc<AtomicUsize>,
}

impl ClientContext for Context {
    fn error(&self, _error: KafkaError, _reason: &str) {
        // Transport errors while the broker is down are expected; counted only.
        self.deliveries
            .client_errors
            .fetch_add(1, Ordering::Relaxed);
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        match result {
            Ok(message) => self.deliveries.acked.lock().unwrap().push(Ack {
                seq: *seq,
                partition: message.partition(),
                offset: message.offset(),
                run: self.generation.load(Ordering::SeqCst),
            }),
            Err((error, _)) => {
                self.deliveries.failed_total.fetch_add(1, Ordering::Relaxed);
                *self
                    .deliveries
                    .failed
                    .lock()
                    .unwrap()
                    .entry(error.to_string())
                    .or_default() += 1;
            }
        }
    }
}

/// Sends numbered records at `rate` per second until `stop`; returns how many
/// were handed to the producer.
fn produce(
    producer: &ThreadedProducer<Context>,
    rate: f64,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> u64 {
    let started = Instant::now();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let allowed = (started.elapsed().as_secs_f64() * rate) as u64;
        if seq >= allowed {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let partition = (seq % PARTITIONS as u64) as i32;
        let key = format!("p{partition}");
        let value = seq.to_string();
        let record = BaseRecord::with_opaque_to(TOPIC, Box::new(seq))
            .partition(partition)
            .key(&key)
            .payload(&value);
        match producer.send(record) {
            Ok(()) => {
                seq += 1;
                sent.store(seq, Ordering::Relaxed);
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err((error, _)) => panic!("producer refused record {seq}: {error}"),
        }
    }
    seq
}

/// What one read of the whole topic found.
#[derive(Default, Debug)]
struct Findings {
    records: usize,
    lost: Vec<Ack>,
    moved: Vec<(Ack, i32, i64)>,
    duplicates: Vec<(u64, Vec<(i32, i64)>)>,
    order: Vec<(i32, i64, u64, u64)>,
    misplaced: Vec<(i32, i64, String)>,
    high_watermarks: Vec<i64>,
}

impl Findings {
    fn clean(&self) -> bool {
        self.lost.is_empty()
            && self.moved.is_empty()
            && self.duplicates.is_empty()
            && self.order.is_empty()
            && self.misplaced.is_empty()
    }

    fn describe(&self) -> String {
        const SHOW: usize = 10;
        let mut out = format!(
            "read {} records, high watermarks {:?}\n",
            self.records, self.high_watermarks
        );
        for ack in self.lost.iter().take(SHOW) {
            out.push_str(&format!(
                "LOST seq {} acknowledged at partition {} offset {} by broker run {}\n",
                ack.seq, ack.partition, ack.offset, ack.run
            ));
        }
        for (ack, partition, offset) in self.moved.iter().take(SHOW) {
            out.push_str(&format!(
                "MOVED seq {} acknowledged at partition {} offset {} (run {}), found at \
                 partition {partition} offset {offset}\n",
                ack.seq, ack.partition, ack.offset, ack.run
            ));
        }
        for (seq, places) in self.duplicates.iter().take(SHOW) {
            out.push_str(&format!(
                "DUPLICATE seq {seq} at (partition, offset) {places:?}\n"
            ));
        }
        for (partition, offset, before, after) in self.order.iter().take(SHOW) {
            out.push_str(&format!(
                "ORDER partition {partition} offset {offset}: seq {after} follows seq {before}\n"
            ));
        }
        for (partition, offset, value) in self.misplaced.iter().take(SHOW) {
            out.push_str(&format!(
                "MISPLACED partition {partition} offset {offset}: value {value:?}\n"
            ));
        }
        out
    }
}

/// Reads every partition from the beginning to its high watermark and checks
/// it against `acked` (acknowledgements received before the read started).
fn check(bootstrap: &str, round: usize, acked: &[Ack]) -> Findings {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("crash-loop-check-{round}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_uncommitted")
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("create consumer");
    let deadline = Instant::now() + CHECK_TIMEOUT;
    let mut findings = Findings::default();
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        let high = loop {
            match consumer.fetch_watermarks(TOPIC, partition, Duration::from_secs(5)) {
                Ok((_, high)) => break high,
                Err(error) if Instant::now() < deadline => {
                    eprintln!("crash loop: watermarks of partition {partition}: {error}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(error) => panic!("cannot read watermarks of partition {partition}: {error}"),
            }
        };
        findings.high_watermarks.push(high);
        list.add_partition_offset(TOPIC, partition, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&list).expect("assign");

    // (offset, value) per partition, in the order read.
    let mut read: Vec<Vec<(i64, String)>> = vec![Vec::new(); PARTITIONS as usize];
    let done = |read: &Vec<Vec<(i64, String)>>, highs: &[i64]| {
        (0..PARTITIONS as usize)
            .all(|p| highs[p] == 0 || read[p].last().is_some_and(|(o, _)| o + 1 >= highs[p]))
    };
    while !done(&read, &findings.high_watermarks) {
        assert!(
            Instant::now() < deadline,
            "check {round}: could not read to the high watermarks {:?} within {CHECK_TIMEOUT:?} \
             (got to {:?})",
            findings.high_watermarks,
            read.iter()
                .map(|r| r.last().map(|(o, _)| *o))
                .collect::<Vec<_>>()
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                let p = message.partition() as usize;
                let value = message
                    .payload()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                if read[p].last().is_none_or(|(o, _)| message.offset() > *o) {
                    read[p].push((message.offset(), value));
                }
            }
            Some(Err(error)) => eprintln!("crash loop: check {round}: consumer error: {error}"),
        }
    }

    let mut places: HashMap<u64, Vec<(i32, i64)>> = HashMap::new();
    for (p, records) in read.iter().enumerate() {
        let partition = p as i32;
        let mut previous: Option<u64> = None;
        for (offset, value) in records {
            findings.records += 1;
            let Ok(seq) = value.parse::<u64>() else {
                findings.misplaced.push((partition, *offset, value.clone()));
                continue;
            };
            if seq % PARTITIONS as u64 != p as u64 {
                findings.misplaced.push((partition, *offset, value.clone()));
            }
            if let Some(before) = previous {
                if seq <= before {
                    findings.order.push((partition, *offset, before, seq));
                }
            }
            previous = Some(seq);
            places.entry(seq).or_default().push((partition, *offset));
        }
    }
    let mut duplicates: Vec<_> = places
        .iter()
        .filter(|(_, at)| at.len() > 1)
        .map(|(seq, at)| (*seq, at.clone()))
        .collect();
    duplicates.sort();
    findings.duplicates = duplicates;
    for ack in acked {
        match places.get(&ack.seq) {
            None => findings.lost.push(*ack),
            Some(at) => {
                if !at.contains(&(ack.partition, ack.offset)) {
                    findings.moved.push((*ack, at[0].0, at[0].1));
                }
            }
        }
    }
    findings.lost.sort_by_key(|a| a.seq);
    findings
}

fn create_topic(bootstrap: &str) {
    let output = Command::new(STROM)
        .args(["topic", "create", TOPIC, "--partitions"])
        .arg(PARTITIONS.to_string())
        .env("STROM_BOOTSTRAP", bootstrap)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run strom topic create");
    assert!(
        output.status.success(),
        "strom topic create failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn wait_for_acks(deliveries: &Deliveries, more_than: usize, what: &str) {
    let deadline = Instant::now() + PROGRESS_TIMEOUT;
    while deliveries.acked.lock().unwrap().len() <= more_than {
        assert!(
            Instant::now() < deadline,
            "recovery failure: no acknowledgement within {PROGRESS_TIMEOUT:?} {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn crash_loop() {
    let plan = Plan::from_env();
    let seed = seed();
    eprintln!(
        "crash loop: seed {seed} (STROM_CRASH_SEED={seed} reproduces the kill moments), {} kills",
        plan.kills
    );
    let mut rng = Rng(seed);
    let mut broker = Broker::new();
    let bootstrap = broker.bootstrap();
    let test_started = Instant::now();

    let mut recoveries = Vec::new();
    let first_start = broker.start();
    create_topic(&bootstrap);

    let deliveries = Arc::new(Deliveries::default());
    let producer: ThreadedProducer<Context> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        // Long enough that records queued while the broker is down are
        // re-sent after the restart rather than failed.
        .set("message.timeout.ms", "120000")
        .set("request.timeout.ms", "10000")
        .set("retry.backoff.ms", "50")
        .set("retry.backoff.max.ms", "500")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "500")
        .set("allow.auto.create.topics", "false")
        .create_with_context(Context {
            deliveries: deliveries.clone(),
            generation: broker.generation.clone(),
        })
        .expect("create producer");
    let producer = Arc::new(producer);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let producing = {
        let (producer, stop, sent) = (producer.clone(), stop.clone(), sent.clone());
        let rate = plan.rate;
        std::thread::spawn(move || produce(&producer, rate, &stop, &sent))
    };

    let mut checks = 0usize;
    // Records handed to the producer but not yet acknowledged when a kill
    // came: librdkafka re-sends them to the next run (the broker must
    // de-duplicate those it had already stored).
    let mut in_flight_at_kills = 0u64;
    let mut check_time = Duration::ZERO;
    let mut run_check = |broker: &Broker, acked: Vec<Ack>, checks: &mut usize| {
        *checks += 1;
        let started = Instant::now();
        let findings = check(&bootstrap, *checks, &acked);
        check_time += started.elapsed();
        if !findings.clean() {
            panic!(
                "crash loop: seed {seed}: check {} after {} kills found violations\n{}\n\
                 --- broker log lines about recovery, truncation, errors ---\n{}",
                *checks,
                broker.runs - 1,
                findings.describe(),
                broker.notable_log_lines()
            );
        }
        findings
    };

    for kill in 1..=plan.kills {
        // Let the producer reach the broker, then kill at a random moment.
        let before = deliveries.acked.lock().unwrap().len();
        wait_for_acks(
            &deliveries,
            before,
            &format!("from broker run {}", broker.runs),
        );
        let run_for = Duration::from_millis(rng.range(plan.run_ms.0, plan.run_ms.1));
        std::thread::sleep(run_for);
        let settled = deliveries.acked.lock().unwrap().len() as u64
            + deliveries.failed_total.load(Ordering::Relaxed);
        in_flight_at_kills += sent.load(Ordering::Relaxed).saturating_sub(settled);
        broker.kill();
        let recovery = broker.start();
        recoveries.push(recovery);
        let acked = deliveries.acked.lock().unwrap().clone();
        let findings = run_check(&broker, acked, &mut checks);
        eprintln!(
            "crash loop: kill {kill}/{} after {} ms: recovered in {}, {} records present, \
             {} acknowledged so far",
            plan.kills,
            run_for.as_millis(),
            ms(recovery),
            findings.records,
            deliveries.acked.lock().unwrap().len()
        );
    }

    // Let the producer reach the last run, then drain it.
    let before = deliveries.acked.lock().unwrap().len();
    wait_for_acks(&deliveries, before, "from the last broker run");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let produced = producing.join().expect("producer thread");
    producer
        .flush(Duration::from_secs(150))
        .expect("flush the producer");
    if let Some((code, reason)) = producer.client().fatal_error() {
        panic!("crash loop: seed {seed}: the producer hit a fatal error: {code}: {reason}");
    }
    let acked = deliveries.acked.lock().unwrap().clone();
    let findings = run_check(&broker, acked.clone(), &mut checks);
    let failed = deliveries.failed_total.load(Ordering::Relaxed);

    let mut sorted = recoveries.clone();
    sorted.sort();
    let total = test_started.elapsed();
    eprintln!();
    eprintln!("crash loop results (seed {seed})");
    eprintln!("| measure                      | value |");
    eprintln!("|------------------------------|-------|");
    eprintln!("| kills (SIGKILL)              | {} |", recoveries.len());
    eprintln!("| records produced             | {produced} |");
    eprintln!("| records acknowledged         | {} |", acked.len());
    eprintln!("| delivery failures (not acked)| {failed} |");
    eprintln!("| unacknowledged at the kills  | {in_flight_at_kills} |");
    eprintln!("| records present at the end   | {} |", findings.records);
    let (cuts, cut_bytes) = broker.truncations();
    eprintln!("| torn tails cut by recovery   | {cuts} ({cut_bytes} bytes) |");
    eprintln!("| lost (acknowledged, missing) | {} |", findings.lost.len());
    eprintln!(
        "| moved (acked offset differs) | {} |",
        findings.moved.len()
    );
    eprintln!(
        "| duplicates                   | {} |",
        findings.duplicates.len()
    );
    eprintln!(
        "| order violations             | {} |",
        findings.order.len()
    );
    eprintln!("| checks (full reads)          | {checks} |");
    eprintln!("| first start                  | {} |", ms(first_start));
    eprintln!(
        "| recovery p50                 | {} |",
        ms(percentile(&sorted, 50.0))
    );
    eprintln!(
        "| recovery p99                 | {} |",
        ms(percentile(&sorted, 99.0))
    );
    eprintln!(
        "| recovery max                 | {} |",
        ms(sorted.last().copied().unwrap_or_default())
    );
    eprintln!("| time in checks               | {} |", ms(check_time));
    eprintln!("| total time                   | {} |", ms(total));
    if failed > 0 {
        eprintln!("delivery failures: {:?}", deliveries.failed.lock().unwrap());
    }

    assert_eq!(recoveries.len(), plan.kills);
    assert!(!acked.is_empty(), "nothing was acknowledged");
    assert_eq!(findings.lost.len(), 0, "lost acknowledged records");
    assert_eq!(findings.duplicates.len(), 0, "duplicates");
    assert_eq!(findings.order.len(), 0, "order violations");
    assert_eq!(
        findings.moved.len(),
        0,
        "records not at their acknowledged offset"
    );
    assert!(findings.misplaced.is_empty(), "misplaced records");
}
