//! Hostile clients against the real `strom serve` process, on loopback
//! only, bounded in count and time, while a well-behaved producer measures
//! its latency:
//!
//! 1. malformed frames, one per connection (the broker closes a connection
//!    at its first bad frame): garbage, negative and oversized sizes, short
//!    frames, unknown API keys, unsupported versions, supported APIs with
//!    garbage bodies — 1 000 000 with `STROM_FULL=1`, 30 000 in CI;
//! 2. slowloris: connections sending a frame one byte every 300 ms, which
//!    `connections.max.idle.ms` (2 s here) must close;
//! 3. a connection flood above `max.connections` and `max.connections.per.ip`,
//!    which must be refused at once while accepted ones keep working.
//!
//! And memory under 10× overload: 40 connections keep 2 MiB produce requests
//! in flight (80 MiB) against an 8 MiB `queued.max.request.bytes`; the
//! broker must stop reading sockets rather than grow.
//!
//! Every phase checks: the broker is running and never panicked, its RSS
//! (sampled every 20 ms) stays under a bound, the good producer's records
//! are all acknowledged. Figures are printed (`-- --nocapture`).
//!
//! ```text
//! cargo test -p strom --test hostile -- --nocapture
//! STROM_FULL=1 cargo test -p strom --test hostile -- --nocapture
//! ```

mod common;

use bytes::{BufMut, BytesMut};
use common::Broker;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const MAX_CONNECTIONS: usize = 300;
const MAX_PER_IP: usize = 100;
const IDLE_MS: u64 = 2000;
/// The RSS bound asserted during the attacks.
const RSS_BOUND: u64 = 256 << 20;

fn full() -> bool {
    std::env::var("STROM_FULL").is_ok_and(|v| v == "1")
}

/// Samples the broker's RSS until stopped; returns the maximum.
struct RssSampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(0));
        let (s, m) = (stop.clone(), max.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(rss) = rss_of(pid) {
                    m.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssSampler {
            stop,
            max,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.max.load(Ordering::Relaxed)
    }
}

fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// A producer that sends one small record every 5 ms and records each
/// send-to-acknowledgement latency.
struct GoodClient {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(Vec<Duration>, u64)>>,
}

impl GoodClient {
    fn start(bootstrap: &str, topic: &str) -> GoodClient {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("broker.address.family", "v4")
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("message.timeout.ms", "30000")
            .create()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let topic = topic.to_string();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut latencies = Vec::new();
            let mut failed = 0;
            while !s.load(Ordering::Relaxed) {
                let started = Instant::now();
                let record: FutureRecord<'_, [u8], [u8]> =
                    FutureRecord::to(&topic).payload(b"well-behaved");
                match rt.block_on(producer.send(record, Duration::from_secs(30))) {
                    Ok(_) => latencies.push(started.elapsed()),
                    Err(_) => failed += 1,
                }
                let _ = ready_tx.send(());
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = producer.flush(Duration::from_secs(10));
            (latencies, failed)
        });
        // Connected and acknowledged once before any attack starts.
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the good producer got no acknowledgement");
        GoodClient {
            stop,
            thread: Some(thread),
        }
    }

    /// (p50, p99, max, count, failed)
    fn finish(mut self) -> (Duration, Duration, Duration, usize, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut latencies, failed) = self.thread.take().unwrap().join().unwrap();
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        (
            at(0.5),
            at(0.99),
            *latencies.last().unwrap(),
            latencies.len(),
            failed,
        )
    }
}

async fn connect_from(source: [u8; 4], target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(target).await
}

/// Tiny deterministic generator for the attack bytes.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One malformed frame of kind `i % 8`.
fn malformed(i: u64, rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let body =
        |len: usize, rng: &mut Rng| -> Vec<u8> { (0..len).map(|_| rng.next() as u8).collect() };
    match i % 8 {
        0 => out.extend(body(64, rng)), // garbage, size included
        1 => out.extend((-(1 + (rng.next() % 1000) as i32)).to_be_bytes()),
        2 => out.extend(i32::MAX.to_be_bytes()),
        3 => {
            out.extend(3i32.to_be_bytes());
            out.extend([0, 18, 0]);
        }
        4 => {
            let b = body(20, rng);
            out.extend((b.len() as i32 + 4).to_be_bytes());
            out.extend(999i16.to_be_bytes()); // unknown API key
            out.extend(0i16.to_be_bytes());
            out.extend(b);
        }
        5 => {
            out.extend(12i32.to_be_bytes());
            out.extend(0i16.to_be_bytes()); // Produce
            out.extend(1i16.to_be_bytes()); // unsupported version
            out.extend(body(8, rng));
        }
        _ => {
            // A supported API and version with a garbage body.
            let (key, version) = [(0i16, 9i16), (1, 12), (3, 12), (19, 7), (11, 9), (8, 9)]
                [(rng.next() % 6) as usize];
            let b = body((rng.next() % 200) as usize, rng);
            out.extend((b.len() as i32 + 8).to_be_bytes());
            out.extend(key.to_be_bytes());
            out.extend(version.to_be_bytes());
            out.extend((i as i32).to_be_bytes());
            out.extend(b);
        }
    }
    out
}

fn check_alive(broker: &mut Broker, phase: &str) {
    assert!(broker.is_running(), "{phase}: the broker died");
    let log = std::fs::read_to_string(broker.log_path()).unwrap_or_default();
    assert!(!log.contains("panicked"), "{phase}: the broker panicked");
}

#[test]
fn hostile_clients_do_not_harm_the_broker_or_a_well_behaved_client() {
    let max_conns = MAX_CONNECTIONS.to_string();
    let per_ip_env = MAX_PER_IP.to_string();
    let idle = IDLE_MS.to_string();
    let mut broker = Broker::start_with_env(&[
        ("STROM_MAX_CONNECTIONS", &max_conns),
        ("STROM_MAX_CONNECTIONS_PER_IP", &per_ip_env),
        ("STROM_CONNECTIONS_MAX_IDLE_MS", &idle),
        ("STROM_SOCKET_REQUEST_MAX_BYTES", "1048576"),
        ("STROM_QUEUED_MAX_REQUEST_BYTES", "16777216"),
    ]);
    let pid = broker.child.as_ref().unwrap().id();
    let target: SocketAddr = broker.bootstrap.parse().unwrap();
    let topic = common::unique("good");
    broker.ok(&["topic", "create", &topic], b"");
    let idle_rss = broker.rss_bytes().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // 1. Malformed frames.
    let count: u64 = if full() { 1_000_000 } else { 30_000 };
    let good = GoodClient::start(&broker.bootstrap, &topic);
    let rss = RssSampler::start(pid);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(if full() { 600 } else { 120 });
    let sent = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let workers = 16;
        let mut tasks = Vec::new();
        for w in 0..workers {
            let (sent, closed, answered) = (sent.clone(), closed.clone(), answered.clone());
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w + 1));
                let mut i = w;
                while i < count && Instant::now() < deadline {
                    let source = [127, 0, 1, (i % 200) as u8 + 1];
                    if let Ok(mut stream) = connect_from(source, target).await {
                        let frame = malformed(i, &mut rng);
                        let _ = stream.write_all(&frame).await;
                        sent.fetch_add(1, Ordering::Relaxed);
                        let mut buf = [0u8; 256];
                        // The broker answers nothing and closes (or resets).
                        let read =
                            tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                                .await;
                        match read {
                            Ok(Ok(0)) | Ok(Err(_)) => {
                                closed.fetch_add(1, Ordering::Relaxed);
                            }
                            // Garbage that happens to decode gets an answer.
                            Ok(Ok(_)) => {
                                answered.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {}
                        }
                    }
                    i += workers;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    let max_rss = rss.finish();
    let (p50, p99, max, n, failed) = good.finish();
    let (sent, closed) = (sent.load(Ordering::Relaxed), closed.load(Ordering::Relaxed));
    let answered = answered.load(Ordering::Relaxed);
    check_alive(&mut broker, "malformed frames");
    println!(
        "malformed frames: {sent} sent over {sent} connections in {:.1} s ({:.0}/s), {closed} closed by the broker, {answered} answered (garbage that decoded); \
         broker RSS idle {} MiB, max {} MiB; good producer: {n} acknowledged, {failed} failed, p50 {p50:?} p99 {p99:?} max {max:?}",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        idle_rss >> 20,
        max_rss >> 20,
    );
    assert_eq!(sent, count, "the attack did not finish in time");
    assert!(
        closed + answered >= sent * 999 / 1000,
        "connections left hanging after a bad frame"
    );
    assert!(max_rss < RSS_BOUND, "RSS {max_rss} over {RSS_BOUND}");
    assert_eq!(failed, 0);

    // 2. Slowloris.
    let good = GoodClient::start(&broker.bootstrap, &topic);
    let rss = RssSampler::start(pid);
    let slow = if full() { 250 } else { 80 };
    let closed_after: Arc<Mutex<Vec<Duration>>> = Arc::default();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..slow {
            let closed_after = closed_after.clone();
            tasks.push(tokio::spawn(async move {
                let source = [127, 0, 2, (c % 2) as u8 + 1];
                let Ok(mut stream) = connect_from(source, target).await else {
                    return;
                };
                let started = Instant::now();
                let _ = stream.write_all(&1000i32.to_be_bytes()).await;
                for i in 0..40u8 {
                    if stream.write_all(&[i]).await.is_err() {
                        break;
                    }
                    let mut buf = [0u8; 16];
                    match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf))
                        .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) => break,
                        _ => {}
                    }
                }
                closed_after.lock().unwrap().push(started.elapsed());
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let max_rss = rss.finish();
    let (p50, p99, max, n, failed) = good.finish();
    check_alive(&mut broker, "slowloris");
    let closed_after = closed_after.lock().unwrap().clone();
    let longest = closed_after.iter().max().copied().unwrap_or_default();
    println!(
        "slowloris: {} connections sending a byte every 300 ms, all closed within {longest:?} \
         (connections.max.idle.ms = {IDLE_MS}); broker RSS max {} MiB; good producer: {n} acknowledged, p50 {p50:?} p99 {p99:?} max {max:?}",
        closed_after.len(),
        max_rss >> 20
    );
    assert_eq!(closed_after.len(), slow);
    assert!(
        longest < Duration::from_millis(IDLE_MS + 1500),
        "{longest:?}"
    );
    assert!(max_rss < RSS_BOUND);
    assert_eq!(failed, 0);

    // 3. Connection flood: over the per-IP limit from one address, and over
    // max.connections from many.
    let good = GoodClient::start(&broker.bootstrap, &topic);
    let rss = RssSampler::start(pid);
    let (per_ip_accepted, total_accepted, refused) = rt.block_on(async {
        // ApiVersions v0: an accepted connection answers it, a refused one
        // was closed unanswered.
        const API_VERSIONS: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
        async fn round_trip(stream: &mut TcpStream) -> Option<()> {
            stream.write_all(&API_VERSIONS).await.ok()?;
            let mut size = [0u8; 4];
            let wait = Duration::from_secs(10);
            tokio::time::timeout(wait, stream.read_exact(&mut size))
                .await
                .ok()?
                .ok()?;
            let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
            tokio::time::timeout(wait, stream.read_exact(&mut body))
                .await
                .ok()?
                .ok()?;
            Some(())
        }
        let stop = Arc::new(AtomicBool::new(false));
        // An accepted connection keeps asking (connections.max.idle.ms
        // would close it otherwise) until the flood is over; it returns
        // whether it was accepted and whether it was still open at the end.
        let attempt = |source: [u8; 4], stop: Arc<AtomicBool>| async move {
            let Ok(mut stream) = connect_from(source, target).await else {
                return (false, false);
            };
            if round_trip(&mut stream).await.is_none() {
                return (false, false);
            }
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if round_trip(&mut stream).await.is_none() {
                    return (true, false);
                }
            }
            (true, true)
        };
        let per_ip: Vec<_> = (0..MAX_PER_IP + 50)
            .map(|_| tokio::spawn(attempt([127, 0, 3, 1], stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let flood: Vec<_> = (0..MAX_CONNECTIONS + 100)
            .map(|c| tokio::spawn(attempt([127, 0, 4, (c % 50) as u8 + 1], stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Ordering::Relaxed);
        let (mut per_ip_accepted, mut held, mut refused) = (0, 0, 0);
        for p in per_ip {
            let (accepted, open) = p.await.unwrap();
            per_ip_accepted += usize::from(accepted);
            held += usize::from(open);
            refused += usize::from(!accepted);
        }
        for p in flood {
            let (accepted, open) = p.await.unwrap();
            held += usize::from(open);
            refused += usize::from(!accepted);
        }
        (per_ip_accepted, held, refused)
    });
    let max_rss = rss.finish();
    let (p50, p99, max, n, failed) = good.finish();
    check_alive(&mut broker, "connection flood");
    println!(
        "connection flood: {per_ip_accepted} of {} accepted from one address (max.connections.per.ip = {MAX_PER_IP}), \
         {total_accepted} held open for 3 s in all (max.connections = {MAX_CONNECTIONS}, the good producer's included in the limit), \
         {refused} refused at once; broker RSS max {} MiB; good producer: {n} acknowledged, p50 {p50:?} p99 {p99:?} max {max:?}",
        MAX_PER_IP + 50,
        max_rss >> 20
    );
    assert_eq!(per_ip_accepted, MAX_PER_IP);
    assert!(
        (MAX_CONNECTIONS - 10..=MAX_CONNECTIONS).contains(&total_accepted),
        "{total_accepted} connections held"
    );
    assert!(max_rss < RSS_BOUND);
    assert_eq!(failed, 0);
    check_alive(&mut broker, "the end");
}

/// A Produce v9 request carrying `batch` for partition 0 of `topic`, framed.
fn produce_frame(topic: &str, batch: &[u8], correlation_id: i32) -> Vec<u8> {
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(bytes::Bytes::copy_from_slice(batch)))])]);
    let header = RequestHeader::default()
        .with_request_api_key(0)
        .with_request_api_version(9)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("overload")));
    let mut body = BytesMut::new();
    header.encode(&mut body, 2).unwrap();
    request.encode(&mut body, 9).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    frame.to_vec()
}

/// One uncompressed v2 batch of `records` records of `value_len` bytes.
fn big_batch(records: usize, value_len: usize) -> Vec<u8> {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(bytes::Bytes::from(vec![b'o'; value_len])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.to_vec()
}

#[test]
fn rss_stays_flat_under_ten_times_overload() {
    const POOL: usize = 8 << 20;
    const CONNECTIONS: usize = 40;
    // STROM_OVERLOAD_NO_POOL=1: the same without the pool, for comparison
    // (prints the figure, asserts no bound).
    let no_pool = std::env::var("STROM_OVERLOAD_NO_POOL").is_ok_and(|v| v == "1");
    let pool = if no_pool {
        "-1".to_string()
    } else {
        POOL.to_string()
    };
    let mut broker = Broker::start_with_env(&[
        ("STROM_QUEUED_MAX_REQUEST_BYTES", &pool),
        ("STROM_SOCKET_REQUEST_MAX_BYTES", "4194304"),
        ("STROM_MESSAGE_MAX_BYTES", "4194304"),
        // Bounded disk use: the data itself is not the point.
        ("STROM_LOG_SEGMENT_BYTES", "67108864"),
        ("STROM_LOG_RETENTION_BYTES", "268435456"),
        ("STROM_LOG_RETENTION_CHECK_INTERVAL_MS", "1000"),
    ]);
    let pid = broker.child.as_ref().unwrap().id();
    let target: SocketAddr = broker.bootstrap.parse().unwrap();
    let topic = common::unique("overload");
    broker.ok(&["topic", "create", &topic], b"");
    // 2 MiB requests: 40 in flight are 80 MiB, ten times the pool.
    let frame = Arc::new(produce_frame(&topic, &big_batch(64, 32 * 1024), 1));
    assert!(frame.len() > 2 << 20);
    let idle_rss = broker.rss_bytes().unwrap();
    let good = GoodClient::start(&broker.bootstrap, &common::unique("good"));
    let rss = RssSampler::start(pid);
    let seconds = if full() { 30 } else { 8 };
    let acknowledged = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..CONNECTIONS {
            let frame = frame.clone();
            let acknowledged = acknowledged.clone();
            tasks.push(tokio::spawn(async move {
                let stream = TcpStream::connect(target).await.unwrap();
                let (mut reader, mut writer) = stream.into_split();
                let deadline = Instant::now() + Duration::from_secs(seconds);
                let sent = Arc::new(AtomicU64::new(0));
                let s = sent.clone();
                // Pipelined: keep writing without waiting for answers.
                let write = tokio::spawn(async move {
                    while Instant::now() < deadline {
                        if writer.write_all(&frame).await.is_err() {
                            break;
                        }
                        s.fetch_add(1, Ordering::Relaxed);
                    }
                });
                let mut size = [0u8; 4];
                let mut answered = 0;
                loop {
                    let done =
                        Instant::now() >= deadline && answered >= sent.load(Ordering::Relaxed);
                    if done {
                        break;
                    }
                    let read =
                        tokio::time::timeout(Duration::from_secs(30), reader.read_exact(&mut size))
                            .await;
                    let Ok(Ok(_)) = read else { break };
                    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
                    if reader.read_exact(&mut body).await.is_err() {
                        break;
                    }
                    answered += 1;
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                let _ = write.await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    let max_rss = rss.finish();
    let (p50, p99, max, n, failed) = good.finish();
    check_alive(&mut broker, "overload");
    let answered = acknowledged.load(Ordering::Relaxed);
    let growth = max_rss.saturating_sub(idle_rss);
    println!(
        "overload: {CONNECTIONS} connections pipelining {} KiB produce requests ({} MiB wanted in flight, \
         queued.max.request.bytes {}) for {:.1} s: {answered} answered ({:.0} MiB/s); broker RSS idle {} MiB, \
         max {} MiB (+{} MiB); good producer: {n} acknowledged, {failed} failed, p50 {p50:?} p99 {p99:?} max {max:?}",
        frame.len() >> 10,
        (CONNECTIONS * frame.len()) >> 20,
        if no_pool { "unbounded".to_string() } else { format!("{} MiB", POOL >> 20) },
        elapsed.as_secs_f64(),
        answered as f64 * frame.len() as f64 / elapsed.as_secs_f64() / (1 << 20) as f64,
        idle_rss >> 20,
        max_rss >> 20,
        growth >> 20,
    );
    assert!(answered > CONNECTIONS as u64, "the broker made no progress");
    if no_pool {
        println!("(without queued.max.request.bytes: no bound asserted)");
        return;
    }
    // Frames in the pool, their copies for the append, read buffers and the
    // fetch-free rest: a few times the pool, far below what was wanted.
    assert!(
        growth < 6 * POOL as u64,
        "RSS grew by {growth} bytes under overload (pool {POOL})"
    );
    assert_eq!(failed, 0);
}
