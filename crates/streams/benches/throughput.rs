//! Throughput of a stateless map and of a windowed count, in records per
//! second: through the test driver (the processing path alone, in-memory
//! stores), and end to end against an in-process Strom broker (consumer,
//! fjall stores, changelogs, producer; at-least-once and exactly-once).
//!
//! `cargo bench -p strom-streams` (`STROM_BENCH_RECORDS=N`, default 200 000).
//! A benchmark, not a test: it prints figures and asserts only that every
//! record was processed.

use std::time::{Duration, Instant};
use strom_streams::*;

fn records() -> u64 {
    std::env::var("STROM_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

fn map_topology(input: &str, output: &str) -> Topology {
    let b = StreamsBuilder::new();
    b.stream(input, Consumed::with(Serdes::string(), Serdes::string()))
        .map_values(|v: String| v.to_uppercase())
        .to(output, Produced::with(Serdes::string(), Serdes::string()));
    b.build().unwrap()
}

fn windowed_count_topology(input: &str, output: &str) -> Topology {
    let b = StreamsBuilder::new();
    b.stream(input, Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(1)))
        .count()
        .to_stream()
        .map(|w: Windowed<String>, n: Option<i64>| (w.key, n.unwrap_or(0)))
        .to(output, Produced::with(Serdes::string(), Serdes::i64()));
    b.build().unwrap()
}

fn key(i: u64) -> String {
    format!("key-{}", i % 1000)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn driver_run(topology: Topology, n: u64) -> f64 {
    let d = TopologyTestDriver::new(topology).unwrap();
    let input = d.input_topic("in", Serdes::string(), Serdes::string());
    let value = "x".repeat(100);
    let started = Instant::now();
    for i in 0..n {
        // 1000 records per second of event time.
        input
            .pipe_input_at(key(i), value.clone(), i as i64)
            .unwrap();
        if i % 10_000 == 0 {
            // Keep the captured output from growing without bound.
            let _ = d
                .output_topic("out", Serdes::bytes(), Serdes::bytes())
                .read_records_to_vec();
        }
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn broker_run(
    broker: &strom_testkit::TestBroker,
    name: &str,
    topology: fn(&str, &str) -> Topology,
    guarantee: ProcessingGuarantee,
    n: u64,
) -> (f64, Duration) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let bootstrap = broker.bootstrap();
    let (input, output) = (format!("{name}-in"), format!("{name}-out"));
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let topics = [
        NewTopic::new(&input, 3, TopicReplication::Fixed(1)),
        NewTopic::new(&output, 3, TopicReplication::Fixed(1)),
    ];
    for r in
        futures::executor::block_on(admin.create_topics(&topics, &AdminOptions::new())).unwrap()
    {
        r.unwrap();
    }
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let value = "x".repeat(100);
    for i in 0..n {
        let k = key(i);
        let mut record = BaseRecord::to(&input)
            .key(k.as_bytes())
            .payload(value.as_bytes())
            .timestamp(1_700_000_000_000 + i as i64);
        while let Err((_, r)) = producer.send(record) {
            record = r;
            producer.poll(Duration::from_millis(5));
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = StreamsConfig::new(name, &bootstrap)
        .guarantee(guarantee)
        .state_dir(dir.path());
    let mut streams = KafkaStreams::new(topology(&input, &output), config);
    let started = Instant::now();
    streams.start().unwrap();
    let mut first = None;
    while streams.metrics().processed_records < n {
        if first.is_none() && streams.metrics().processed_records > 0 {
            first = Some(Instant::now());
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "bench stalled: {:?} {:?}",
            streams.metrics(),
            streams.error()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let first = first.unwrap_or(started);
    let rate = n as f64 / first.elapsed().as_secs_f64();
    streams.close().unwrap();
    (rate, first - started)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // and should stay quick.
    let benching = std::env::args().any(|a| a == "--bench");
    let n = if benching { records() } else { 2_000 };
    println!("strom-streams throughput, {n} records of 100 bytes, 1000 keys");
    let runs = if benching { 5 } else { 1 };
    let map: Vec<f64> = (0..runs)
        .map(|_| driver_run(map_topology("in", "out"), n))
        .collect();
    println!(
        "test driver, stateless map_values:      median {:>10.0} records/s over {runs} runs",
        median(map)
    );
    let win: Vec<f64> = (0..runs)
        .map(|_| driver_run(windowed_count_topology("in", "out"), n))
        .collect();
    println!(
        "test driver, 1 s tumbling-window count: median {:>10.0} records/s over {runs} runs",
        median(win)
    );
    let broker = strom_testkit::TestBroker::start_with(|c| {
        c.groups.initial_rebalance_delay_ms = 0;
    });
    for (label, guarantee) in [
        ("at-least-once", ProcessingGuarantee::AtLeastOnce),
        ("exactly-once", ProcessingGuarantee::ExactlyOnce),
    ] {
        let tag = if guarantee == ProcessingGuarantee::ExactlyOnce {
            "eos"
        } else {
            "alos"
        };
        let (rate, startup) = broker_run(
            &broker,
            &format!("bench-map-{tag}"),
            map_topology,
            guarantee,
            n,
        );
        println!("broker, {label:13}, map_values:       {rate:>10.0} records/s (first record after {startup:?})");
        let (rate, startup) = broker_run(
            &broker,
            &format!("bench-window-{tag}"),
            windowed_count_topology,
            guarantee,
            n,
        );
        println!("broker, {label:13}, windowed count:   {rate:>10.0} records/s (first record after {startup:?})");
    }
}
