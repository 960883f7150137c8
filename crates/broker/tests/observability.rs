//! The admin HTTP listener: health, readiness, metrics moving by the right
//! amounts under a real rdkafka producer and consumer, connection errors
//! from bad frames, and runtime log filter changes.

mod common;

use common::wire::Wire;
use common::*;
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;
use strom_testkit::TestBroker;

/// A minimal HTTP/1.1 client: one request per connection.
fn http(admin: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(admin).expect("connect to admin listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "this client does not decode chunked bodies"
    );
    (status, body.to_string())
}

fn get(admin: SocketAddr, path: &str) -> (u16, String) {
    http(admin, "GET", path, "")
}

/// The value of the sample `name{labels}` (labels exactly as printed), if any.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

#[test]
fn health_ready_and_unknown_paths() {
    let broker = TestBroker::start();
    let admin = broker.admin_addr().expect("admin listener on");
    assert_eq!(get(admin, "/health"), (200, "ok\n".to_string()));
    assert_eq!(get(admin, "/ready").0, 200);
    let (status, body) = get(admin, "/nope");
    assert_eq!(status, 404);
    assert!(body.contains("/metrics"), "{body}");
}

#[test]
fn produce_and_fetch_move_the_counters() {
    const N: usize = 25;
    let broker = TestBroker::start();
    let admin = broker.admin_addr().expect("admin listener on");
    let bootstrap = broker.bootstrap();
    let topic = unique("observed");
    create_topic(&bootstrap, &topic, 1, &[]);

    let producer = producer(&bootstrap, &[]);
    let runtime = rt();
    let mut payload_bytes = 0;
    for i in 0..N {
        let value = format!("value-{i}");
        payload_bytes += value.len();
        let record: FutureRecord<'_, (), str> = FutureRecord::to(&topic).payload(&value);
        runtime
            .block_on(producer.send(record, TIMEOUT))
            .unwrap_or_else(|(e, _)| panic!("send: {e}"));
    }
    let consumer = consumer_from(&bootstrap, &topic, &[0], Offset::Beginning);
    assert_eq!(consume(&consumer, N).len(), N);

    let (status, metrics) = get(admin, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    let t = format!("{{topic=\"{topic}\"}}");
    let tp = format!("{{topic=\"{topic}\",partition=\"0\"}}");
    assert_eq!(
        sample(&metrics, &format!("strom_produce_records_total{t}")),
        Some(N as f64),
        "records in = records produced\n{metrics}"
    );
    let bytes_in = sample(&metrics, &format!("strom_produce_bytes_total{t}")).unwrap();
    assert!(
        bytes_in >= payload_bytes as f64,
        "bytes in ({bytes_in}) cover the payloads ({payload_bytes})"
    );
    assert_eq!(
        sample(&metrics, &format!("strom_fetch_records_total{t}")),
        Some(N as f64)
    );
    assert_eq!(
        sample(&metrics, &format!("strom_log_end_offset{tp}")),
        Some(N as f64)
    );
    assert_eq!(
        sample(&metrics, &format!("strom_log_start_offset{tp}")),
        Some(0.0)
    );
    assert!(sample(&metrics, &format!("strom_log_size_bytes{tp}")).unwrap() >= bytes_in);
    assert_eq!(
        sample(&metrics, &format!("strom_log_segments{tp}")),
        Some(1.0)
    );
    // One request per record (linger.ms=0, each send awaited).
    let produce_requests: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("strom_requests_total{api=\"Produce\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(produce_requests, N as f64, "{metrics}");
    assert!(metrics.contains("strom_requests_total{api=\"Fetch\",version="));
    assert!(
        sample(
            &metrics,
            "strom_request_duration_seconds_count{api=\"Produce\"}"
        )
        .unwrap()
            >= N as f64
    );
    // Each answered request is timed stage by stage.
    for stage in [
        "request_queue_duration",
        "request_processing_duration",
        "response_send_duration",
    ] {
        let count = sample(
            &metrics,
            &format!("strom_{stage}_seconds_count{{api=\"Produce\"}}"),
        );
        assert!(
            count.unwrap_or(0.0) >= N as f64,
            "{stage}: {count:?}\n{metrics}"
        );
    }
    // The stages add up to the total (same requests, same clock).
    let sum = |name: &str| {
        sample(
            &metrics,
            &format!("strom_{name}_seconds_sum{{api=\"Produce\"}}"),
        )
        .unwrap()
    };
    let stages = sum("request_queue_duration")
        + sum("request_processing_duration")
        + sum("response_send_duration");
    let total = sum("request_duration");
    assert!(
        (stages - total).abs() <= total * 1e-6 + 1e-9,
        "stages {stages} vs total {total}"
    );
    assert!(sample(&metrics, "strom_connections_open").unwrap() >= 1.0);
    assert!(sample(&metrics, "strom_connections_accepted_total").unwrap() >= 2.0);
    assert_eq!(sample(&metrics, "strom_ready"), Some(1.0));
    assert!(sample(&metrics, "strom_process_resident_memory_bytes").unwrap() > 0.0);
    let free = sample(&metrics, "strom_log_dir_free_bytes").expect("free space reported");
    let size = sample(&metrics, "strom_log_dir_size_bytes").expect("fs size reported");
    assert!(free > 0.0 && free <= size, "free {free} of {size}");

    let (status, json) = get(admin, "/v1/status");
    assert_eq!(status, 200);
    let status: serde_json::Value = serde_json::from_str(&json).expect("status is JSON");
    assert_eq!(status["ready"], true);
    let top = status["top_topics"].as_array().unwrap();
    assert_eq!(top[0]["topic"], topic.as_str(), "{json}");
    assert_eq!(top[0]["produce_records"], N as u64);
}

#[test]
fn not_ready_until_a_large_log_is_recovered() {
    const BATCHES: usize = 3_000;
    const RECORDS_PER_BATCH: usize = 64;
    let data = tempfile::tempdir().unwrap();
    let topic = unique("recovering");
    {
        let broker = TestBroker::start_in(data.path());
        create_topic(&broker.bootstrap(), &topic, 1, &[]);
        broker.stop();
    }
    // Grow the partition's log behind the broker's back, never flushed and
    // with the clean-shutdown marker gone: the next start must scan and
    // CRC-check every batch before it may call itself ready.
    assert!(strom_log::take_clean_shutdown_marker(data.path()).unwrap());
    {
        let log = strom_log::PartitionLog::open(
            &data.path().join(format!("{topic}-0")),
            strom_log::LogConfig::default(),
            false,
        )
        .unwrap();
        let value = [b'r'; 512];
        let batch = batch(&[&value[..]; RECORDS_PER_BATCH]);
        for _ in 0..BATCHES {
            log.append(&batch, 1_700_000_000_000).unwrap();
        }
    }
    let admin_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin_addr: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let dir = data.path().to_path_buf();
    let starting = std::thread::spawn(move || {
        TestBroker::start_in_with(&dir, |c| c.admin_listen = Some(admin_addr.to_string()))
    });
    // Poll from the moment the admin listener binds (before recovery starts).
    let mut answers = Vec::new();
    let mut first_answer = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "never ready: {answers:?}"
        );
        match TcpStream::connect(admin_addr) {
            Ok(_) => {
                let (status, _) = get(admin_addr, "/ready");
                first_answer.get_or_insert_with(std::time::Instant::now);
                if answers.last() != Some(&status) {
                    answers.push(status);
                }
                if status == 200 {
                    let not_ready = first_answer.map(|t| t.elapsed());
                    eprintln!("/ready answered 503 for {not_ready:?} of recovery");
                    break;
                }
                assert_eq!(status, 503, "{answers:?}");
                assert_eq!(get(admin_addr, "/health").0, 200, "alive while recovering");
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    let broker = starting.join().expect("broker started");
    assert_eq!(answers, vec![503, 200], "503 during recovery, then 200");
    let (_, metrics) = get(admin_addr, "/metrics");
    assert_eq!(
        sample(
            &metrics,
            &format!("strom_log_end_offset{{topic=\"{topic}\",partition=\"0\"}}")
        ),
        Some((BATCHES * RECORDS_PER_BATCH) as f64),
        "every recovered record is still there"
    );
    assert_eq!(sample(&metrics, "strom_ready"), Some(1.0));
    drop(broker);
}

#[test]
fn error_codes_are_counted_for_every_api() {
    let broker = TestBroker::start();
    let admin_addr = broker.admin_addr().expect("admin listener on");
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    let runtime = rt();
    let options = rdkafka::admin::AdminOptions::new();
    // Deleting two topics that do not exist: two per-topic errors.
    let missing = [unique("missing"), unique("missing")];
    let results = runtime
        .block_on(admin.delete_topics(&[&missing[0], &missing[1]], &options))
        .expect("DeleteTopics answered");
    assert!(results.iter().all(Result::is_err), "{results:?}");
    // An invalid topic name in CreateTopics.
    let bad =
        rdkafka::admin::NewTopic::new("bad name!", 1, rdkafka::admin::TopicReplication::Fixed(1));
    let results = runtime
        .block_on(admin.create_topics([&bad], &options))
        .expect("CreateTopics answered");
    assert!(results[0].is_err(), "{results:?}");

    let (_, metrics) = get(admin_addr, "/metrics");
    assert_eq!(
        sample(
            &metrics,
            "strom_errors_total{api=\"DeleteTopics\",error=\"UnknownTopicOrPartition\"}"
        ),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "strom_errors_total{api=\"CreateTopics\",error=\"InvalidTopicException\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[test]
fn bad_frames_count_as_connection_errors() {
    let broker = TestBroker::start();
    let admin = broker.admin_addr().expect("admin listener on");
    let (_, before) = get(admin, "/metrics");
    assert_eq!(
        sample(
            &before,
            "strom_connection_errors_total{reason=\"negative_frame_size\"}"
        ),
        None
    );
    for _ in 0..3 {
        let mut wire = Wire::connect(&broker.bootstrap());
        wire.send_raw(&(-5i32).to_be_bytes());
        assert!(wire.is_closed());
    }
    // A Metadata v9 header cut off before its client id.
    let mut wire = Wire::connect(&broker.bootstrap());
    wire.send_frame(&[0, 3, 0, 9, 0, 0, 0, 1]);
    assert!(wire.is_closed());

    let (_, after) = get(admin, "/metrics");
    assert_eq!(
        sample(
            &after,
            "strom_connection_errors_total{reason=\"negative_frame_size\"}"
        ),
        Some(3.0),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "strom_connection_errors_total{reason=\"malformed\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn log_filter_changes_at_run_time() {
    let broker = TestBroker::start();
    let admin = broker.admin_addr().expect("admin listener on");
    let (status, original) = get(admin, "/log-filter");
    assert_eq!(status, 200, "the testkit installs a reloadable filter");
    let (status, body) = http(
        admin,
        "PUT",
        "/log-filter",
        "warn,strom_broker::connection=debug",
    );
    assert_eq!(status, 200, "{body}");
    let (_, now) = get(admin, "/log-filter");
    assert!(now.contains("strom_broker::connection=debug"), "{now}");
    let (status, body) = http(admin, "PUT", "/log-filter", "strom_broker=loud");
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        get(admin, "/log-filter").1,
        now,
        "a bad filter changes nothing"
    );
    // Other tests in this binary share the process's subscriber: put it back.
    assert_eq!(http(admin, "PUT", "/log-filter", original.trim()).0, 200);
}

#[test]
fn admin_listener_can_be_turned_off() {
    let broker = TestBroker::start_with(|config| config.admin_listen = None);
    assert_eq!(broker.admin_addr(), None);
}

#[test]
fn transactions_and_last_stable_offsets_are_reported() {
    use rdkafka::producer::Producer;
    let broker = TestBroker::start_with(|c| c.transaction_topic_partitions = 1);
    let admin = broker.admin_addr().expect("admin listener on");
    let topic = unique("txn-metrics");
    create_topic(&broker.bootstrap(), &topic, 1, &[]);
    let producer = producer(&broker.bootstrap(), &[("transactional.id", "metrics-txn")]);
    producer.init_transactions(TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    send(&producer, &topic, Some(0), None, Some(b"open"));
    let (_, metrics) = get(admin, "/metrics");
    assert_eq!(
        sample(&metrics, r#"strom_transactions{state="Ongoing"}"#),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            &format!(r#"strom_log_last_stable_offset{{topic="{topic}",partition="0"}}"#)
        ),
        Some(0.0),
        "the open transaction holds the LSO"
    );
    assert!(
        sample(&metrics, "strom_oldest_open_transaction_age_seconds").is_some_and(|age| age >= 0.0)
    );
    producer.commit_transaction(TIMEOUT).unwrap();
    let (_, metrics) = get(admin, "/metrics");
    assert_eq!(
        sample(&metrics, r#"strom_transactions{state="CompleteCommit"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "strom_oldest_open_transaction_age_seconds"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &metrics,
            &format!(r#"strom_log_last_stable_offset{{topic="{topic}",partition="0"}}"#)
        ),
        Some(2.0),
        "record and commit marker"
    );
}

#[test]
fn fsyncs_are_timed() {
    let broker = TestBroker::start_with(|c| c.flush = strom_log::FlushPolicy::Always);
    let admin = broker.admin_addr().expect("admin listener on");
    let topic = unique("fsync-timing");
    create_topic(&broker.bootstrap(), &topic, 1, &[]);
    let producer = producer(&broker.bootstrap(), &[]);
    for i in 0..3 {
        send(
            &producer,
            &topic,
            Some(0),
            None,
            Some(format!("{i}").as_bytes()),
        );
    }
    let (_, metrics) = get(admin, "/metrics");
    let count =
        sample(&metrics, "strom_log_fsync_duration_seconds_count").expect("histogram exported");
    assert!(
        count >= 3.0,
        "flush=always: at least one fdatasync per acknowledged produce, got {count}"
    );
    let sum = sample(&metrics, "strom_log_fsync_duration_seconds_sum").unwrap();
    assert!(sum > 0.0);
}
