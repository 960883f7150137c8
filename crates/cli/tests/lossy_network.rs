//! Idempotence under a bad network: a loopback TCP proxy between an
//! idempotent, acks=all librdkafka producer and the broker drops responses
//! and resets connections at random (seeded); afterwards every acknowledged
//! record is in the topic exactly once, in order — duplicates = 0, gaps = 0.
//!
//! The broker listens on one port and advertises the proxy's, so the
//! producer comes back through the proxy after every reconnect. The proxy
//! understands only Kafka's framing (4-byte length) and the request header
//! (API key, correlation id); per connection it forwards requests and
//! responses in order and injects three faults:
//!
//! - drop: a Produce response is read from the broker and not forwarded, and
//!   the connection is closed — the broker appended the batch, the producer
//!   never learns it and must re-send it (the broker de-duplicates);
//! - reset before: a Produce request is not forwarded and the connection is
//!   closed — the batch never reached the broker;
//! - reset after: a Produce request is forwarded and the connection closed at
//!   once — the broker may or may not process it.
//!
//! Other responses are dropped more rarely (metadata, InitProducerId, ...).
//! Records are numbered (value = sequence number, partition = seq mod 3), so
//! the check is exact: afterwards a consumer reads the topic directly from
//! the broker and counts duplicates, gaps (acknowledged records missing),
//! records not at their acknowledged offset, and order violations.
//!
//! - `STROM_LOSSY_SEED=N` reuses the fault decisions' seed (the seed is
//!   printed; the timing of the traffic still differs between runs).
//! - `STROM_FULL=1` sends 100 000 records instead of 20 000.

mod common;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STROM: &str = env!("CARGO_BIN_EXE_strom");
const TOPIC: &str = "lossy";
const PARTITIONS: i32 = 3;
const PRODUCE: i16 = 0;
/// Fault probabilities, per frame.
const DROP_PRODUCE_RESPONSE: f64 = 0.04;
const DROP_OTHER_RESPONSE: f64 = 0.01;
const RESET_BEFORE_PRODUCE: f64 = 0.01;
const RESET_AFTER_PRODUCE: f64 = 0.01;
/// Records handed to the producer per second.
const RATE: f64 = 5000.0;
/// The producer must get a delivery report at least this often.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

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

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

fn seed() -> u64 {
    match std::env::var("STROM_LOSSY_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("STROM_LOSSY_SEED must be an unsigned integer, got {text}")),
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock");
            now.as_secs() ^ (u64::from(now.subsec_nanos()) << 20) ^ u64::from(std::process::id())
        }
    }
}

// ---------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------

#[derive(Default)]
struct ProxyStats {
    connections: AtomicU64,
    requests: AtomicU64,
    produce_requests: AtomicU64,
    dropped_produce_responses: AtomicU64,
    dropped_other_responses: AtomicU64,
    resets_before: AtomicU64,
    resets_after: AtomicU64,
}

/// Reads one Kafka frame (size prefix included); None at end of stream or
/// on an error (the connection is going away either way).
fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let len = i32::from_be_bytes(size);
    if !(0..=200 << 20).contains(&len) {
        return None;
    }
    let mut frame = vec![0u8; 4 + len as usize];
    frame[..4].copy_from_slice(&size);
    stream.read_exact(&mut frame[4..]).ok()?;
    Some(frame)
}

fn close(a: &TcpStream, b: &TcpStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}

/// Accepts connections on `listener` and relays each to `broker` with
/// faults while `faults` is set.
fn run_proxy(
    listener: TcpListener,
    broker: String,
    seed: u64,
    stats: Arc<ProxyStats>,
    faults: Arc<AtomicBool>,
) {
    for (index, client) in listener.incoming().enumerate() {
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(&broker) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        stats.connections.fetch_add(1, Ordering::Relaxed);
        // Each direction of each connection gets its own stream of decisions.
        let base = seed ^ (index as u64).wrapping_mul(0xA24B_AED4_963E_E407);
        // API keys of the requests in flight, in order (Kafka answers in
        // order on a connection).
        let in_flight: Arc<Mutex<VecDeque<(i32, i16)>>> = Arc::default();

        let (mut from_client, to_server) = (
            client.try_clone().expect("clone"),
            server.try_clone().expect("clone"),
        );
        let (client_a, server_a) = (
            client.try_clone().expect("clone"),
            server.try_clone().expect("clone"),
        );
        let stats_a = stats.clone();
        let faults_a = faults.clone();
        let in_flight_a = in_flight.clone();
        std::thread::spawn(move || {
            let mut rng = Rng(base);
            let mut to_server = to_server;
            while let Some(frame) = read_frame(&mut from_client) {
                if frame.len() < 12 {
                    break;
                }
                let api = i16::from_be_bytes([frame[4], frame[5]]);
                let correlation = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
                stats_a.requests.fetch_add(1, Ordering::Relaxed);
                let fault = faults_a.load(Ordering::Relaxed) && api == PRODUCE;
                if api == PRODUCE {
                    stats_a.produce_requests.fetch_add(1, Ordering::Relaxed);
                }
                if fault && rng.chance(RESET_BEFORE_PRODUCE) {
                    stats_a.resets_before.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                in_flight_a.lock().unwrap().push_back((correlation, api));
                if to_server.write_all(&frame).is_err() {
                    break;
                }
                if fault && rng.chance(RESET_AFTER_PRODUCE) {
                    stats_a.resets_after.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            close(&client_a, &server_a);
        });

        let (mut from_server, to_client) = (
            server.try_clone().expect("clone"),
            client.try_clone().expect("clone"),
        );
        let stats_b = stats.clone();
        let faults_b = faults.clone();
        std::thread::spawn(move || {
            let mut rng = Rng(!base);
            let mut to_client = to_client;
            while let Some(frame) = read_frame(&mut from_server) {
                let api = in_flight
                    .lock()
                    .unwrap()
                    .pop_front()
                    .map_or(-1, |(_, api)| api);
                if faults_b.load(Ordering::Relaxed) {
                    let (p, counter) = if api == PRODUCE {
                        (DROP_PRODUCE_RESPONSE, &stats_b.dropped_produce_responses)
                    } else {
                        (DROP_OTHER_RESPONSE, &stats_b.dropped_other_responses)
                    };
                    if rng.chance(p) {
                        counter.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                if to_client.write_all(&frame).is_err() {
                    break;
                }
            }
            close(&client, &server);
        });
    }
}

// ---------------------------------------------------------------------------
// Broker, producer, check
// ---------------------------------------------------------------------------

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

struct Broker {
    child: Option<Child>,
    root: Option<tempfile::TempDir>,
}

impl Broker {
    fn start(port: u16, advertised: &str) -> Broker {
        let root = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(root.path().join("broker.log")).expect("broker log");
        let mut child = Command::new(STROM)
            .args(["serve", "--admin-listen", "127.0.0.1:0", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--advertised-listener", advertised, "--data-dir"])
            .arg(root.path().join("data"))
            .env(
                "RUST_LOG",
                std::env::var("STROM_LOSSY_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn strom serve");
        let rx = common::listening_address(&mut child);
        let broker = Broker {
            child: Some(child),
            root: Some(root),
        };
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("broker did not listen\n{}", broker.log_tail(40)));
        broker
    }

    fn log_path(&self) -> PathBuf {
        self.root.as_ref().expect("root").path().join("broker.log")
    }

    fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
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
                    "lossy network: kept data dir and broker.log in {}",
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
        "strom topic create failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[derive(Default)]
struct Deliveries {
    /// seq → (partition, offset)
    acked: Mutex<HashMap<u64, (i32, i64)>>,
    failed: Mutex<BTreeMap<String, u64>>,
    client_errors: AtomicU64,
    /// Delivery reports for a record that already had one (librdkafka bug).
    acked_twice: AtomicU64,
}

impl Deliveries {
    fn reported(&self) -> usize {
        self.acked.lock().unwrap().len()
            + self.failed.lock().unwrap().values().sum::<u64>() as usize
    }
}

struct Context(Arc<Deliveries>);

impl ClientContext for Context {
    fn error(&self, _error: KafkaError, _reason: &str) {
        self.0.client_errors.fetch_add(1, Ordering::Relaxed);
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        match result {
            Ok(m) => {
                let previous = self
                    .0
                    .acked
                    .lock()
                    .unwrap()
                    .insert(*seq, (m.partition(), m.offset()));
                if previous.is_some() {
                    self.0.acked_twice.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err((e, _)) => {
                *self
                    .0
                    .failed
                    .lock()
                    .unwrap()
                    .entry(e.to_string())
                    .or_default() += 1;
            }
        }
    }
}

/// Reads every partition from the beginning to its high watermark.
fn read_all(bootstrap: &str) -> Vec<Vec<(i64, String)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "lossy-check")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut highs = Vec::new();
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let (_, high) = consumer
            .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
            .expect("watermarks");
        highs.push(high);
        list.add_partition_offset(TOPIC, p, Offset::Beginning)
            .expect("add");
    }
    consumer.assign(&list).expect("assign");
    let mut read: Vec<Vec<(i64, String)>> = vec![Vec::new(); PARTITIONS as usize];
    let deadline = Instant::now() + Duration::from_secs(60);
    while (0..PARTITIONS as usize).any(|p| read[p].last().map_or(0, |(o, _)| o + 1) < highs[p]) {
        assert!(
            Instant::now() < deadline,
            "could not read to the high watermarks {highs:?} (got to {:?})",
            read.iter()
                .map(|r| r.last().map(|(o, _)| *o))
                .collect::<Vec<_>>()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                read[m.partition() as usize].push((m.offset(), value));
            }
            Some(Err(e)) => eprintln!("lossy network: consumer error: {e}"),
            None => {}
        }
    }
    read
}

#[test]
fn lossy_network() {
    let full = std::env::var("STROM_FULL").is_ok_and(|v| v == "1");
    let n: u64 = if full { 100_000 } else { 20_000 };
    let seed = seed();
    eprintln!("lossy network: seed {seed} (STROM_LOSSY_SEED={seed}), {n} records");
    let started = Instant::now();

    let proxy_listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let proxy = proxy_listener.local_addr().expect("proxy addr").to_string();
    let broker_port = free_port();
    let direct = format!("127.0.0.1:{broker_port}");
    let broker = Broker::start(broker_port, &proxy);

    let stats = Arc::new(ProxyStats::default());
    let faults = Arc::new(AtomicBool::new(false));
    {
        let (stats, faults, direct) = (stats.clone(), faults.clone(), direct.clone());
        std::thread::spawn(move || run_proxy(proxy_listener, direct, seed, stats, faults));
    }

    // Clients learn the proxy's address from Metadata, so even the admin
    // client comes through it; faults start once the topic exists.
    create_topic(&direct);
    faults.store(true, Ordering::Relaxed);

    let deliveries = Arc::new(Deliveries::default());
    let producer: ThreadedProducer<Context> = ClientConfig::new()
        .set("bootstrap.servers", &proxy)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Small batches: many Produce requests, so many faults.
        .set("linger.ms", "1")
        .set("batch.num.messages", "8")
        .set("message.timeout.ms", "300000")
        .set("request.timeout.ms", "5000")
        .set("retry.backoff.ms", "20")
        .set("retry.backoff.max.ms", "200")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "200")
        .set("allow.auto.create.topics", "false")
        .create_with_context(Context(deliveries.clone()))
        .expect("producer");

    let send_started = Instant::now();
    let mut seq = 0u64;
    while seq < n {
        let allowed = (send_started.elapsed().as_secs_f64() * RATE) as u64;
        if seq >= allowed {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let value = seq.to_string();
        let record = BaseRecord::<(), String, Box<u64>>::with_opaque_to(TOPIC, Box::new(seq))
            .partition((seq % PARTITIONS as u64) as i32)
            .payload(&value);
        match producer.send(record) {
            Ok(()) => seq += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => panic!("producer refused record {seq}: {e}"),
        }
    }
    // Wait for every delivery report; fail only if they stop coming.
    let mut reported = 0;
    let mut last_progress = Instant::now();
    loop {
        if producer.flush(Duration::from_secs(1)).is_ok() {
            break;
        }
        let now = deliveries.reported();
        if now > reported {
            reported = now;
            last_progress = Instant::now();
        }
        assert!(
            last_progress.elapsed() < STALL_TIMEOUT,
            "no delivery report for {STALL_TIMEOUT:?}: {} acknowledged, {} failed of {n}\n{}",
            deliveries.acked.lock().unwrap().len(),
            deliveries.failed.lock().unwrap().values().sum::<u64>(),
            broker.log_tail(30)
        );
    }
    faults.store(false, Ordering::Relaxed);
    let produce_took = send_started.elapsed();
    drop(producer);

    let acked = deliveries.acked.lock().unwrap().clone();
    let failed = deliveries.failed.lock().unwrap().clone();
    let read = read_all(&direct);

    // Check.
    let mut places: HashMap<u64, Vec<(i32, i64)>> = HashMap::new();
    let mut order = Vec::new();
    let mut misplaced = Vec::new();
    for (p, records) in read.iter().enumerate() {
        let mut previous: Option<u64> = None;
        for (offset, value) in records {
            let Ok(s) = value.parse::<u64>() else {
                misplaced.push((p, *offset, value.clone()));
                continue;
            };
            if s % PARTITIONS as u64 != p as u64 {
                misplaced.push((p, *offset, value.clone()));
            }
            if let Some(before) = previous {
                if s <= before {
                    order.push((p, *offset, before, s));
                }
            }
            previous = Some(s);
            places.entry(s).or_default().push((p as i32, *offset));
        }
    }
    let mut duplicates: Vec<(u64, Vec<(i32, i64)>)> = places
        .iter()
        .filter(|(_, at)| at.len() > 1)
        .map(|(s, at)| (*s, at.clone()))
        .collect();
    duplicates.sort();
    let mut gaps: Vec<(u64, (i32, i64))> = Vec::new();
    let mut moved = Vec::new();
    for (s, at) in &acked {
        match places.get(s) {
            None => gaps.push((*s, *at)),
            Some(found) if !found.contains(at) => moved.push((*s, *at, found.clone())),
            Some(_) => {}
        }
    }
    gaps.sort();
    moved.sort();
    let extra_copies: usize = duplicates.iter().map(|(_, at)| at.len() - 1).sum();
    let records: usize = read.iter().map(Vec::len).sum();
    let dropped = stats.dropped_produce_responses.load(Ordering::Relaxed)
        + stats.dropped_other_responses.load(Ordering::Relaxed);
    let resets =
        stats.resets_before.load(Ordering::Relaxed) + stats.resets_after.load(Ordering::Relaxed);
    eprintln!(
        "lossy network: FIGURES seed {seed}: sent {n}, acknowledged {}, failed {failed:?}, read \
         {records}; proxy: {} connections, {} requests ({} Produce), dropped responses {dropped} \
         ({} Produce, {} other), resets {resets} ({} before a Produce request, {} after); client \
         errors {}; duplicates {extra_copies}, gaps {}, moved {}, order violations {}, misplaced \
         {}; produce {:.1} s, total {:.1} s",
        acked.len(),
        stats.connections.load(Ordering::Relaxed),
        stats.requests.load(Ordering::Relaxed),
        stats.produce_requests.load(Ordering::Relaxed),
        stats.dropped_produce_responses.load(Ordering::Relaxed),
        stats.dropped_other_responses.load(Ordering::Relaxed),
        stats.resets_before.load(Ordering::Relaxed),
        stats.resets_after.load(Ordering::Relaxed),
        deliveries.client_errors.load(Ordering::Relaxed),
        gaps.len(),
        moved.len(),
        order.len(),
        misplaced.len(),
        produce_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let show = 10;
    assert!(
        duplicates.is_empty()
            && gaps.is_empty()
            && moved.is_empty()
            && order.is_empty()
            && misplaced.is_empty(),
        "seed {seed}: duplicates {:?}\ngaps (seq, acknowledged at) {:?}\nmoved (seq, acknowledged \
         at, found at) {:?}\norder (partition, offset, before, seq) {:?}\nmisplaced {:?}\n{}",
        &duplicates[..duplicates.len().min(show)],
        &gaps[..gaps.len().min(show)],
        &moved[..moved.len().min(show)],
        &order[..order.len().min(show)],
        &misplaced[..misplaced.len().min(show)],
        broker.log_tail(30)
    );
    assert!(failed.is_empty(), "deliveries failed: {failed:?}");
    assert_eq!(
        deliveries.acked_twice.load(Ordering::Relaxed),
        0,
        "records acknowledged twice"
    );
    assert_eq!(acked.len() as u64, n, "every record must be acknowledged");
    assert!(dropped > 0 && resets > 0, "the proxy injected no faults");
}
