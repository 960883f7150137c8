//! Exactly-once copy under faults: a consume-transform-produce copier copies
//! numbered records from one topic to another with the consumer's offsets
//! sent to each transaction; the copier is killed with SIGKILL three times
//! and the broker once during the run; afterwards the output, read with
//! read_committed, equals the input exactly per partition — no loss, no
//! duplicate, order kept.
//!
//! The copier runs as a separate process (this test binary again, running
//! only [`copier_child`]) so that it can be killed with SIGKILL. Every
//! instance uses the same `transactional.id` (the new one fences the old and
//! aborts its open transaction), the same `group.id` and the same
//! `group.instance.id` (a static member replaces its predecessor without
//! waiting for its session to time out). Per batch it begins a transaction,
//! produces the records (same value, key = input partition) to the same
//! partition of the output topic, sends the offsets after the batch with the
//! consumer's group metadata, and commits. On any error it aborts if it can
//! and exits (code 3); the parent starts a new instance — a fresh instance
//! always resumes from the committed state, so this is the simplest correct
//! recovery.
//!
//! The kills happen when the committed input offsets pass random fractions of
//! the input (seeded), plus a random 0–300 ms so they land in every phase of
//! a transaction. The broker is killed with SIGKILL and restarted on the same
//! data dir and port; the running copier reconnects (or exits on an error and
//! is restarted).
//!
//! - `STROM_EOS_SEED=N` reproduces the kill moments (the seed is printed).
//! - `STROM_FULL=1` copies 100 000 records instead of 20 000.
//! - `STROM_EOS_KEEP=1` keeps the data dir and logs after a passing run too;
//!   `STROM_EOS_RUST_LOG` sets the broker's `RUST_LOG` (default `info`).
//!
//! On failure the data dir, the broker logs (`broker-N.log`) and the copier
//! logs (`copier-N.log`) are kept and their path is printed.

mod common;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const STROM: &str = env!("CARGO_BIN_EXE_strom");
const INPUT: &str = "eos-input";
const OUTPUT: &str = "eos-output";
const PARTITIONS: i32 = 3;
const GROUP: &str = "eos-copier";
const TRANSACTIONAL_ID: &str = "eos-copier-txn";
const INSTANCE_ID: &str = "eos-copier-0";
/// The environment variable that turns `copier_child` from a no-op into the
/// copier.
const CHILD_ENV: &str = "STROM_COPIER_BOOTSTRAP";
/// Records per transaction at most.
const MAX_BATCH: usize = 200;
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Committed progress must move at least this often.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Exits of the copier on its own (errors) tolerated before the test fails.
const MAX_ERROR_EXITS: usize = 30;

// ---------------------------------------------------------------------------
// The copier (child process)
// ---------------------------------------------------------------------------

/// Notes rebalances so that a batch collected across one is discarded: after
/// a rebalance the consumer starts again from the committed offsets.
struct CopierContext {
    rebalanced: AtomicBool,
}

impl ClientContext for CopierContext {}

impl ConsumerContext for CopierContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        eprintln!("copier: rebalance {rebalance:?}");
        self.rebalanced.store(true, Ordering::SeqCst);
    }
}

fn die(what: &str, error: impl std::fmt::Display) -> ! {
    eprintln!("copier: {what}: {error}; exiting");
    std::process::exit(3);
}

/// Not a test of its own: the copier, run by [`eos_copy`] as a child process
/// (`--ignored --exact copier_child`) with `STROM_COPIER_BOOTSTRAP` set.
/// Ignored so that it never counts as a passing test in ordinary runs.
#[test]
#[ignore = "the copier process of eos_copy, started by that test"]
fn copier_child() {
    let bootstrap = std::env::var(CHILD_ENV).unwrap_or_else(|_| {
        panic!("copier_child runs only as eos_copy's child process ({CHILD_ENV} unset)")
    });
    eprintln!("copier: pid {} starting", std::process::id());
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", TRANSACTIONAL_ID)
        .set("transaction.timeout.ms", "15000")
        .set("message.timeout.ms", "15000")
        .set("request.timeout.ms", "5000")
        .set("linger.ms", "2")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "500")
        .create()
        .unwrap_or_else(|e| die("create producer", e));
    let init_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match producer.init_transactions(Duration::from_secs(10)) {
            Ok(()) => break,
            Err(KafkaError::Transaction(e))
                if e.is_retriable() && Instant::now() < init_deadline =>
            {
                eprintln!("copier: init_transactions: {e}; retrying");
            }
            Err(e) => die("init_transactions", e),
        }
    }
    eprintln!("copier: transactions initialised");

    let consumer: BaseConsumer<CopierContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", GROUP)
        .set("group.instance.id", INSTANCE_ID)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("enable.partition.eof", "false")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "500")
        .create_with_context(CopierContext {
            rebalanced: AtomicBool::new(false),
        })
        .unwrap_or_else(|e| die("create consumer", e));
    consumer
        .subscribe(&[INPUT])
        .unwrap_or_else(|e| die("subscribe", e));

    // Next offset expected per input partition; offsets are contiguous in the
    // input (no transactions there), so anything else means the consumer's
    // position moved under us.
    let mut expected: HashMap<i32, i64> = HashMap::new();
    let mut transactions = 0u64;
    loop {
        // Collect a batch.
        let mut batch: Vec<(i32, i64, Vec<u8>)> = Vec::new();
        let mut batch_expected = expected.clone();
        let started = Instant::now();
        while batch.len() < MAX_BATCH {
            let wait = if batch.is_empty() {
                Duration::from_millis(100)
            } else {
                match Duration::from_millis(20).checked_sub(started.elapsed()) {
                    Some(left) => left,
                    None => break,
                }
            };
            let polled = consumer.poll(wait);
            if consumer.context().rebalanced.swap(false, Ordering::SeqCst) {
                // The consumer restarts from the committed offsets, which are
                // where the last committed batch ended.
                eprintln!(
                    "copier: rebalanced; discarding {} collected records",
                    batch.len()
                );
                batch.clear();
                expected.clear();
                batch_expected.clear();
            }
            match polled {
                None if batch.is_empty() => continue,
                None => break,
                Some(Err(e)) => {
                    eprintln!("copier: consumer error: {e}");
                    continue;
                }
                Some(Ok(message)) => {
                    let p = message.partition();
                    let offset = message.offset();
                    if let Some(next) = batch_expected.get(&p) {
                        if *next != offset {
                            die(
                                "position moved",
                                format!("partition {p}: expected offset {next}, got {offset}"),
                            );
                        }
                    }
                    batch_expected.insert(p, offset + 1);
                    batch.push((p, offset, message.payload().unwrap_or_default().to_vec()));
                }
            }
        }
        if batch.is_empty() {
            continue;
        }

        // Copy it in one transaction.
        if let Err(e) = producer.begin_transaction() {
            die("begin_transaction", e);
        }
        for (p, _, value) in &batch {
            let key = format!("p{p}");
            let mut record = BaseRecord::<[u8], [u8]>::to(OUTPUT)
                .partition(*p)
                .key(key.as_bytes())
                .payload(value.as_slice());
            loop {
                match producer.send(record) {
                    Ok(_) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        let _ = producer.abort_transaction(Duration::from_secs(5));
                        die("send", e);
                    }
                }
            }
        }
        let mut offsets = TopicPartitionList::new();
        let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
        for (p, offset, _) in &batch {
            ends.insert(*p, offset + 1);
        }
        for (p, end) in &ends {
            offsets
                .add_partition_offset(INPUT, *p, Offset::Offset(*end))
                .expect("add offset");
        }
        let Some(metadata) = consumer.group_metadata() else {
            let _ = producer.abort_transaction(Duration::from_secs(5));
            die("group_metadata", "none");
        };
        if let Err(e) =
            producer.send_offsets_to_transaction(&offsets, &metadata, Duration::from_secs(10))
        {
            let _ = producer.abort_transaction(Duration::from_secs(5));
            die("send_offsets_to_transaction", e);
        }
        if let Err(e) = producer.commit_transaction(Duration::from_secs(10)) {
            let _ = producer.abort_transaction(Duration::from_secs(5));
            die("commit_transaction", e);
        }
        transactions += 1;
        expected = batch_expected;
        eprintln!(
            "copier: transaction {transactions} committed {} records, offsets {ends:?}",
            batch.len()
        );
    }
}

// ---------------------------------------------------------------------------
// The test (parent process)
// ---------------------------------------------------------------------------

/// SplitMix64.
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
    match std::env::var("STROM_EOS_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("STROM_EOS_SEED must be an unsigned integer, got {text}")),
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock");
            now.as_secs() ^ (u64::from(now.subsec_nanos()) << 20) ^ u64::from(std::process::id())
        }
    }
}

/// The broker process, one data dir, one port for every run; and the
/// directory the copier logs go to.
struct Broker {
    child: Option<Child>,
    port: u16,
    root: Option<tempfile::TempDir>,
    runs: usize,
}

impl Broker {
    fn new() -> Broker {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Broker {
            child: None,
            port,
            root: Some(tempfile::tempdir().expect("tempdir")),
            runs: 0,
        }
    }

    fn root(&self) -> &Path {
        self.root.as_ref().expect("root").path()
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log_path(&self, run: usize) -> PathBuf {
        self.root().join(format!("broker-{run}.log"))
    }

    fn start(&mut self) -> Duration {
        assert!(self.child.is_none(), "broker already running");
        self.runs += 1;
        let run = self.runs;
        let log = std::fs::File::create(self.log_path(run)).expect("broker log");
        let started = Instant::now();
        let mut child = Command::new(STROM)
            .args(["serve", "--admin-listen", "127.0.0.1:0", "--listen"])
            .arg(self.bootstrap())
            .arg("--data-dir")
            .arg(self.root().join("data"))
            .env("STROM_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
            .env("STROM_TRANSACTION_STATE_LOG_NUM_PARTITIONS", "1")
            .env("STROM_OFFSETS_TOPIC_NUM_PARTITIONS", "1")
            .env(
                "RUST_LOG",
                std::env::var("STROM_EOS_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
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
                Ok(_) => return started.elapsed(),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    let child = self.child.as_mut().expect("child");
                    if let Some(status) = child.try_wait().expect("try_wait") {
                        self.child = None;
                        panic!(
                            "broker run {run} exited with {status} before listening\n{}",
                            tail(&self.log_path(run), 40)
                        );
                    }
                }
                Err(_) => panic!(
                    "broker run {run} did not listen within {START_TIMEOUT:?}\n{}",
                    tail(&self.log_path(run), 40)
                ),
            }
        }
    }

    fn kill(&mut self) {
        let mut child = self.child.take().expect("broker running");
        child.kill().expect("SIGKILL broker");
        child.wait().expect("reap broker");
    }

    /// Broker log lines of every run that look like trouble.
    fn notable(&self) -> String {
        let mut out = String::new();
        for run in 1..=self.runs {
            let text = std::fs::read_to_string(self.log_path(run)).unwrap_or_default();
            for line in text.lines() {
                let lower = line.to_ascii_lowercase();
                if ["error", "warn", "panic", "truncat", "corrupt"]
                    .iter()
                    .any(|w| lower.contains(w))
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
        if std::thread::panicking() || std::env::var("STROM_EOS_KEEP").is_ok_and(|v| v == "1") {
            if let Some(root) = self.root.take() {
                eprintln!(
                    "eos copy: kept data dir, broker and copier logs in {}",
                    root.keep().display()
                );
            }
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    format!(
        "--- {} (last {lines} lines) ---\n{}",
        path.display(),
        all[from..].join("\n")
    )
}

/// The copier child processes, one at a time.
struct Copier {
    child: Option<Child>,
    bootstrap: String,
    dir: PathBuf,
    instances: usize,
}

impl Copier {
    fn log_path(&self, instance: usize) -> PathBuf {
        self.dir.join(format!("copier-{instance}.log"))
    }

    fn start(&mut self) {
        assert!(self.child.is_none());
        self.instances += 1;
        let log = std::fs::File::create(self.log_path(self.instances)).expect("copier log");
        let child = Command::new(std::env::current_exe().expect("current exe"))
            .args([
                "copier_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &self.bootstrap)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn copier");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The exit status if the running instance stopped on its own.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().expect("try_wait copier")?;
        self.child = None;
        Some(status)
    }
}

impl Drop for Copier {
    fn drop(&mut self) {
        self.kill();
    }
}

fn strom_topic_create(bootstrap: &str, topic: &str) {
    let output = Command::new(STROM)
        .args(["topic", "create", topic, "--partitions"])
        .arg(PARTITIONS.to_string())
        .env("STROM_BOOTSTRAP", bootstrap)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run strom topic create");
    assert!(
        output.status.success(),
        "strom topic create {topic} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Produces `n` records: value = sequence number, partition = seq mod 3.
fn produce_input(bootstrap: &str, n: u64) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("input producer");
    for seq in 0..n {
        let value = seq.to_string();
        let mut record = BaseRecord::<[u8], [u8]>::to(INPUT)
            .partition((seq % PARTITIONS as u64) as i32)
            .payload(value.as_bytes());
        loop {
            match producer.send(record) {
                Ok(_) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("producing input record {seq}: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("flush input producer");
}

/// Reads every partition of `topic` from the beginning until nothing new
/// arrives for `quiet` (and, if given, at least `want` records were read).
fn read_topic(
    bootstrap: &str,
    topic: &str,
    isolation: &str,
    quiet: Duration,
    want: Option<usize>,
) -> Vec<Vec<(i64, String)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("eos-reader-{topic}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", isolation)
        .create()
        .expect("reader");
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&list).expect("assign");
    let mut read = vec![Vec::new(); PARTITIONS as usize];
    let mut total = 0usize;
    let mut last = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                read[m.partition() as usize].push((m.offset(), value));
                total += 1;
                last = Instant::now();
            }
            Some(Err(e)) => eprintln!("eos copy: reading {topic}: {e}"),
            None => {}
        }
        let enough = want.is_none_or(|w| total >= w);
        if (enough && last.elapsed() >= quiet) || Instant::now() > deadline {
            return read;
        }
    }
}

/// The copier group's committed offsets of the input partitions (-1 if
/// none), or None while the broker does not answer.
fn committed(monitor: &BaseConsumer) -> Option<Vec<i64>> {
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition(INPUT, p);
    }
    let list = monitor
        .committed_offsets(list, Duration::from_secs(2))
        .ok()?;
    let mut out = vec![-1; PARTITIONS as usize];
    for e in list.elements() {
        if e.error().is_err() {
            return None;
        }
        out[e.partition() as usize] = match e.offset() {
            Offset::Offset(o) => o,
            _ => -1,
        };
    }
    Some(out)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Copier,
    Broker,
}

#[test]
fn eos_copy() {
    let full = std::env::var("STROM_FULL").is_ok_and(|v| v == "1");
    let n: u64 = if full { 100_000 } else { 20_000 };
    let seed = seed();
    let mut rng = Rng(seed);
    // Three copier kills and one broker kill at random fractions of the
    // input, in random order.
    let mut thresholds: Vec<u64> = (0..4).map(|_| rng.range(n / 20, n * 17 / 20)).collect();
    thresholds.sort_unstable();
    let broker_at = rng.range(0, 3) as usize;
    let plan: Vec<(u64, Fault, u64)> = thresholds
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let fault = if i == broker_at {
                Fault::Broker
            } else {
                Fault::Copier
            };
            (*t, fault, rng.range(0, 300))
        })
        .collect();
    eprintln!(
        "eos copy: seed {seed} (STROM_EOS_SEED={seed} reproduces), {n} records, plan \
         (committed records, fault, extra ms): {plan:?}"
    );
    let test_started = Instant::now();

    let mut broker = Broker::new();
    let bootstrap = broker.bootstrap();
    broker.start();
    strom_topic_create(&bootstrap, INPUT);
    strom_topic_create(&bootstrap, OUTPUT);
    produce_input(&bootstrap, n);
    let input = read_topic(
        &bootstrap,
        INPUT,
        "read_uncommitted",
        Duration::from_secs(1),
        Some(n as usize),
    );
    let input_counts: Vec<usize> = input.iter().map(Vec::len).collect();
    assert_eq!(
        input_counts.iter().sum::<usize>() as u64,
        n,
        "the input topic does not hold the {n} records produced: {input_counts:?}"
    );
    let input_ends: Vec<i64> = input
        .iter()
        .map(|r| r.last().map_or(0, |(o, _)| o + 1))
        .collect();
    eprintln!(
        "eos copy: input ready after {:.1} s: {input_counts:?} records per partition",
        test_started.elapsed().as_secs_f64()
    );

    let monitor: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        // read_uncommitted: no require_stable on OffsetFetch, so the monitor
        // sees the last committed offsets at once instead of waiting for the
        // copier's open transaction (UNSTABLE_OFFSET_COMMIT).
        .set("isolation.level", "read_uncommitted")
        .create()
        .expect("monitor");
    let mut copier = Copier {
        child: None,
        bootstrap: bootstrap.clone(),
        dir: broker.root().to_path_buf(),
        instances: 0,
    };
    let copy_started = Instant::now();
    copier.start();

    let mut copier_kills = 0usize;
    let mut broker_kills = 0usize;
    let mut error_exits = 0usize;
    let mut next_fault = 0usize;
    let mut progress: i64 = -1;
    let mut last_progress = Instant::now();
    let mut pending_fault_at: Option<Instant> = None;
    let done = loop {
        if let Some(status) = copier.exited() {
            error_exits += 1;
            eprintln!(
                "eos copy: copier instance {} exited on its own ({status}):\n{}",
                copier.instances,
                tail(&copier.log_path(copier.instances), 5)
            );
            assert!(
                error_exits <= MAX_ERROR_EXITS,
                "the copier exited on its own {error_exits} times; last log:\n{}",
                tail(&copier.log_path(copier.instances), 40)
            );
            copier.start();
        }
        let current = committed(&monitor);
        if let Some(offsets) = &current {
            let sum: i64 = offsets.iter().map(|o| (*o).max(0)).sum();
            if sum > progress {
                progress = sum;
                last_progress = Instant::now();
            }
            if offsets == &input_ends {
                break true;
            }
        }
        assert!(
            last_progress.elapsed() < STALL_TIMEOUT,
            "no committed progress for {STALL_TIMEOUT:?} (committed {current:?}, input ends \
             {input_ends:?}); copier log:\n{}\n{}",
            tail(&copier.log_path(copier.instances), 40),
            broker.notable()
        );
        if next_fault < plan.len() && progress >= plan[next_fault].0 as i64 {
            let (at, fault, extra) = plan[next_fault];
            let when = *pending_fault_at
                .get_or_insert_with(|| Instant::now() + Duration::from_millis(extra));
            if Instant::now() >= when {
                pending_fault_at = None;
                next_fault += 1;
                match fault {
                    Fault::Copier => {
                        copier.kill();
                        copier_kills += 1;
                        eprintln!(
                            "eos copy: SIGKILL copier instance {} at {progress} committed \
                             (threshold {at})",
                            copier.instances
                        );
                        copier.start();
                    }
                    Fault::Broker => {
                        broker.kill();
                        broker_kills += 1;
                        let took = broker.start();
                        eprintln!(
                            "eos copy: SIGKILL broker at {progress} committed (threshold {at}); \
                             restarted in {took:?}"
                        );
                    }
                }
                continue;
            }
        }
        std::thread::sleep(Duration::from_millis(if pending_fault_at.is_some() {
            5
        } else {
            50
        }));
    };
    assert!(done);
    let copy_took = copy_started.elapsed();
    // Leave a zombie a moment to do damage, then stop the copier for good.
    std::thread::sleep(Duration::from_millis(500));
    copier.kill();
    assert_eq!(
        next_fault,
        plan.len(),
        "the copy finished before every fault happened"
    );

    let output = read_topic(
        &bootstrap,
        OUTPUT,
        "read_committed",
        Duration::from_secs(3),
        None,
    );
    let mut duplicates = 0usize;
    let mut losses = 0usize;
    let mut order_breaks = 0usize;
    let mut report = String::new();
    for p in 0..PARTITIONS as usize {
        let want: Vec<&str> = input[p].iter().map(|(_, v)| v.as_str()).collect();
        let got: Vec<&str> = output[p].iter().map(|(_, v)| v.as_str()).collect();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for v in &got {
            *seen.entry(v).or_default() += 1;
        }
        let dup: usize = seen.values().map(|c| c.saturating_sub(1)).sum();
        let lost: Vec<&str> = want
            .iter()
            .filter(|v| !seen.contains_key(*v))
            .copied()
            .collect();
        duplicates += dup;
        losses += lost.len();
        if got != want {
            let first = want
                .iter()
                .zip(&got)
                .position(|(a, b)| a != b)
                .unwrap_or(want.len().min(got.len()));
            if dup == 0 && lost.is_empty() {
                order_breaks += 1;
            }
            report.push_str(&format!(
                "partition {p}: input {} records, output {} ({dup} duplicates, {} lost); first \
                 difference at index {first}: input {:?}, output {:?} (output offset {:?}); \
                 first lost {:?}\n",
                want.len(),
                got.len(),
                lost.len(),
                want.get(first),
                got.get(first),
                output[p].get(first).map(|(o, _)| *o),
                &lost[..lost.len().min(5)],
            ));
        }
    }
    let copied: usize = output.iter().map(Vec::len).sum();
    // Records of aborted transactions (those of the killed instances) are in
    // the log but must be invisible above.
    let uncommitted = read_topic(
        &bootstrap,
        OUTPUT,
        "read_uncommitted",
        Duration::from_secs(1),
        Some(copied),
    );
    let aborted = uncommitted
        .iter()
        .map(Vec::len)
        .sum::<usize>()
        .saturating_sub(copied);
    eprintln!(
        "eos copy: FIGURES seed {seed}: input {n}, output {copied} (read_committed), copier kills \
         {copier_kills}, broker kills {broker_kills}, copier instances {} ({error_exits} exited \
         on errors), duplicates {duplicates}, losses {losses}, partitions out of order \
         {order_breaks}, aborted records skipped {aborted}; copy {:.1} s, total {:.1} s",
        copier.instances,
        copy_took.as_secs_f64(),
        test_started.elapsed().as_secs_f64()
    );
    assert!(
        report.is_empty(),
        "the output differs from the input (seed {seed}):\n{report}{}",
        broker.notable()
    );
    assert_eq!(copier_kills, 3);
    assert_eq!(broker_kills, 1);
}
