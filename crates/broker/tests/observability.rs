//! The admin HTTP listener: health, readiness, metrics moving by the right
//! amounts under a real rdkafka producer and consumer, connection errors
//! from bad frames, and runtime log filter changes.

mod common;

use common::wire::Wire;
use common::*;
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
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
    assert!(sample(&metrics, "strom_connections_open").unwrap() >= 1.0);
    assert!(sample(&metrics, "strom_connections_accepted_total").unwrap() >= 2.0);
    assert_eq!(sample(&metrics, "strom_ready"), Some(1.0));
    assert!(sample(&metrics, "strom_process_resident_memory_bytes").unwrap() > 0.0);

    let (status, json) = get(admin, "/v1/status");
    assert_eq!(status, 200);
    let status: serde_json::Value = serde_json::from_str(&json).expect("status is JSON");
    assert_eq!(status["ready"], true);
    let top = status["top_topics"].as_array().unwrap();
    assert_eq!(top[0]["topic"], topic.as_str(), "{json}");
    assert_eq!(top[0]["produce_records"], N as u64);
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
