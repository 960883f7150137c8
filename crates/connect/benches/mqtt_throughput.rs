//! MQTT → Kafka topic throughput of the MQTT source connector: a Mosquitto
//! of its own, an in-process Strom broker, a standalone worker; a publisher
//! sends N messages as fast as Mosquitto takes them, and the clock runs from
//! the first publish until all N are in the Kafka topic (acknowledged by
//! Kafka, so also acknowledged back to Mosquitto at QoS 1).
//!
//! ```text
//! cargo bench -p strom-connect --bench mqtt_throughput            # 200k messages, 3 runs per QoS
//! MQTT_BENCH_MESSAGES=1000000 MQTT_BENCH_SIZE=200 cargo bench -p strom-connect --bench mqtt_throughput
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn high_watermark(bootstrap: &str, topic: &str) -> i64 {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .unwrap();
        rdkafka::consumer::Consumer::fetch_watermarks(&consumer, &topic, 0, Duration::from_secs(10))
            .map(|(_, h)| h)
            .unwrap_or(0)
    })
    .await
    .unwrap()
}

async fn run(qos: u8, messages: usize, size: usize, round: usize) -> (f64, f64) {
    let mosquitto = Mosquitto::start();
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = format!("bench-mqtt-{qos}-{round}");
    create_topic(&bootstrap, &topic, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = worker_config(
        &bootstrap,
        &[
            (
                "offset.storage.file.filename",
                dir.path().join("offsets.json").to_str().unwrap(),
            ),
            (
                "key.converter",
                "org.apache.kafka.connect.storage.StringConverter",
            ),
            (
                "value.converter",
                "org.apache.kafka.connect.converters.ByteArrayConverter",
            ),
            ("producer.linger.ms", "5"),
        ],
    );
    let worker = standalone(
        config,
        vec![json!({"name": "bench", "connector.class": "MqttSource", "mqtt.server.uri": mosquitto.uri(),
                    "mqtt.qos": qos.to_string(), "mqtt.topics": "plant/#", "kafka.topic": topic,
                    "mqtt.headers.enable": "false", "mqtt.max.batch.size": "5000"})],
    )
    .await;
    let rest = Rest::new(&worker.rest_url());
    rest.wait_for("/connectors/bench/status", Duration::from_secs(30), |s| {
        all_running(s, 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // the subscription

    let mut options = MqttOptions::new(
        format!("bench-publisher-{round}"),
        "127.0.0.1",
        mosquitto.port,
    );
    options
        .set_inflight(1000)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (publisher, mut eventloop) = AsyncClient::new(options, 10_000);
    let acked = Arc::new(AtomicU64::new(0));
    let acked2 = acked.clone();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::PubAck(_)) = event {
                acked2.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let payload = vec![b'x'; size];
    let qos_level = if qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let start = Instant::now();
    for i in 0..messages {
        publisher
            .publish(
                format!("plant/line{}/machine{}", i % 4, i % 32),
                qos_level,
                false,
                payload.clone(),
            )
            .await
            .unwrap();
    }
    let published = start.elapsed();
    // Until all arrived (QoS 0 may lose some: then until no progress for 3 s).
    let (mut last, mut last_progress) = (0i64, start.elapsed());
    loop {
        let high = high_watermark(&bootstrap, &topic).await;
        if high > last {
            (last, last_progress) = (high, start.elapsed());
        }
        if high >= messages as i64 || start.elapsed() - last_progress > Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if last < messages as i64 {
        println!("  QoS {qos}: {} of {messages} messages arrived", last);
        assert!(qos == 0, "QoS 1 lost messages");
    }
    worker.stop().await;
    (
        last as f64 / last_progress.as_secs_f64(),
        messages as f64 / published.as_secs_f64(),
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks.
    }
    let messages = env("MQTT_BENCH_MESSAGES", 200_000);
    let size = env("MQTT_BENCH_SIZE", 100);
    let rounds = env("MQTT_BENCH_ROUNDS", 3);
    for qos in [1u8, 0] {
        let mut rates = Vec::new();
        let mut publish_rates = Vec::new();
        for round in 0..rounds {
            let (rate, publish_rate) = run(qos, messages, size, round).await;
            println!("QoS {qos} run {round}: {rate:.0} messages/s into Kafka (publisher {publish_rate:.0}/s)");
            rates.push(rate);
            publish_rates.push(publish_rate);
        }
        println!(
            "MQTT -> topic, QoS {qos}, {messages} x {size} B: median {:.0} messages/s (publisher median {:.0}/s)",
            median(rates),
            median(publish_rates)
        );
    }
}
