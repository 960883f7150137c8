//! Connection limits with Kafka's names and semantics: `max.connections`,
//! `max.connections.per.ip` (and its overrides) refuse further connections
//! at once; `connections.max.idle.ms` closes a connection that sends no
//! whole request for that long, partial frames (slowloris) included; the
//! broker's `fetch.max.bytes` caps a Fetch response.

mod common;

use common::wire::Wire;
use common::*;
use kafka_protocol::messages::ApiVersionsRequest;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use strom_testkit::TestBroker;

fn connect_from(source: [u8; 4], broker: &str) -> Wire {
    let target: SocketAddr = broker.parse().unwrap();
    let socket = std::net::TcpListener::bind((std::net::Ipv4Addr::from(source), 0))
        .map(drop)
        .ok();
    assert!(socket.is_some(), "cannot use {source:?} on loopback");
    // std has no bind-then-connect: tokio's TcpSocket does it.
    let rt = rt();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        socket.connect(target).await.unwrap().into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    Wire::from_stream(stream)
}

fn answers(wire: &mut Wire) -> bool {
    wire.request(3, &ApiVersionsRequest::default()).error_code == 0
}

#[test]
fn connections_over_the_per_ip_limit_are_refused_and_overrides_apply() {
    let broker = TestBroker::start_with(|c| {
        c.max_connections_per_ip = 3;
        c.max_connections_per_ip_overrides = [([127, 0, 0, 2].into(), 5)].into();
    });
    let mut open: Vec<Wire> = (0..3).map(|_| Wire::connect(&broker.bootstrap())).collect();
    for wire in &mut open {
        assert!(answers(wire));
    }
    let mut fourth = Wire::connect(&broker.bootstrap());
    assert!(
        fourth.is_closed(),
        "a 4th connection from 127.0.0.1 was accepted"
    );
    // Another address has its own count, and its override.
    let mut other: Vec<Wire> = (0..5)
        .map(|_| connect_from([127, 0, 0, 2], &broker.bootstrap()))
        .collect();
    for wire in &mut other {
        assert!(answers(wire));
    }
    assert!(connect_from([127, 0, 0, 2], &broker.bootstrap()).is_closed());
    // A slot frees when a connection closes.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = Wire::connect(&broker.bootstrap());
        let versions = again.encode(3, &ApiVersionsRequest::default());
        again.send_frame(&versions);
        if again.read_frame().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was not reused");
        std::thread::sleep(Duration::from_millis(20));
    }
    for wire in &mut open {
        assert!(answers(wire), "existing connections are unaffected");
    }
}

#[test]
fn max_connections_refuses_further_connections() {
    let broker = TestBroker::start_with(|c| c.max_connections = 4);
    let mut open: Vec<Wire> = (0..4).map(|_| Wire::connect(&broker.bootstrap())).collect();
    for wire in &mut open {
        assert!(answers(wire));
    }
    assert!(Wire::connect(&broker.bootstrap()).is_closed());
}

#[test]
fn idle_and_slow_partial_frames_are_closed_after_connections_max_idle_ms() {
    let broker = TestBroker::start_with(|c| c.connections_max_idle = Duration::from_millis(400));
    let started = Instant::now();
    let mut silent = Wire::connect(&broker.bootstrap());
    let mut slow = Wire::connect(&broker.bootstrap());
    let mut active = Wire::connect(&broker.bootstrap());
    // Slowloris: a frame of 100 bytes, one byte every 100 ms.
    slow.send_raw(&100i32.to_be_bytes());
    let mut slow_closed = None;
    for i in 0..20 {
        assert!(answers(&mut active), "an active connection was closed");
        slow.send_raw(&[i as u8]);
        std::thread::sleep(Duration::from_millis(100));
        if slow_closed.is_none() && slow.closed_now() {
            slow_closed = Some(started.elapsed());
        }
    }
    let slow_closed = slow_closed.expect("a slow partial frame was never closed");
    assert!(silent.is_closed(), "a silent connection stayed open");
    assert!(
        slow_closed < Duration::from_millis(1500),
        "closed after {slow_closed:?}"
    );
    assert!(answers(&mut active));
}

#[test]
fn fetch_max_bytes_caps_the_response() {
    use rdkafka::consumer::Consumer;
    let broker = TestBroker::start_with(|c| c.fetch_max_bytes = 64 * 1024);
    let topic = "capped";
    create_topic(&broker.bootstrap(), topic, 1, &[]);
    let producer = producer(&broker.bootstrap(), &[("linger.ms", "50")]);
    for i in 0..200 {
        send(&producer, topic, Some(0), None, Some(&vec![i as u8; 4000]));
    }
    // A consumer asking for 50 MiB per fetch still gets all 200, in
    // responses of at most 64 KiB (plus one batch).
    let consumer: rdkafka::consumer::BaseConsumer = client_config(&broker.bootstrap())
        .set("group.id", "capped")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "52428800")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    assert_eq!(consume(&consumer, 200).len(), 200);
    let fetches = fetch_requests(&broker);
    assert!(
        fetches >= 800_000 / (64 * 1024),
        "{fetches} fetch requests for 800 kB"
    );
}

/// `strom_requests_total{api="Fetch"}` from the admin listener.
fn fetch_requests(broker: &TestBroker) -> u64 {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(broker.admin_addr().unwrap()).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| l.starts_with("strom_requests_total") && l.contains("api=\"Fetch\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
