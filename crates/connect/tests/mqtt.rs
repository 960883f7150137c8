//! MQTT → Kafka topic → MQTT against a real Mosquitto started by the test:
//! many MQTT topics merge into one Kafka topic (the MQTT topic as the key)
//! and go back out to the MQTT topics their keys name; keys and payloads
//! exact; Mosquitto restarted in the middle; nothing lost at QoS 1. The
//! source speaks MQTT 5, the sink 3.1.1; a second source takes QoS 0.

mod common;

use common::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

type Seen = Arc<Mutex<BTreeSet<(String, Vec<u8>)>>>;

/// A persistent-session MQTT 3.1.1 client whose event loop keeps
/// reconnecting; records what it receives and counts acks of its publishes.
fn client(port: u16, id: &str) -> (AsyncClient, Seen, Arc<AtomicU64>) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options
        .set_clean_session(false)
        .set_keep_alive(Duration::from_secs(5))
        .set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    let seen: Seen = Arc::default();
    let acks = Arc::new(AtomicU64::new(0));
    let (seen2, acks2) = (seen.clone(), acks.clone());
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    seen2
                        .lock()
                        .unwrap()
                        .insert((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks2.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    (client, seen, acks)
}

fn payload(topic: &str, i: usize) -> Vec<u8> {
    // Binary payloads: the bytes must arrive exactly.
    let mut p = format!("{topic}#{i}:").into_bytes();
    p.extend((0..(i % 40) as u8).map(|b| b.wrapping_mul(37)));
    p.push(0xff);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mqtt_to_topic_to_mqtt_with_a_broker_restart() {
    let mut mosquitto = Mosquitto::start();
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "machines", 3).await;
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
        ],
    );
    let uri = mosquitto.uri();
    let worker = standalone(
        config,
        vec![
            json!({"name": "mqtt-in", "connector.class": "MqttSource", "tasks.max": "2",
                   "mqtt.server.uri": uri, "mqtt.version": "5", "mqtt.qos": "1",
                   "mqtt.topics": "factory/+/+/temp,factory/+/+/status",
                   "mqtt.reconnect.backoff.initial.ms": "100", "mqtt.reconnect.backoff.max.ms": "1000",
                   "kafka.topic": "machines"}),
            json!({"name": "mqtt-in-qos0", "connector.class": "MqttSource",
                   "mqtt.server.uri": uri, "mqtt.qos": "0", "mqtt.topics": "factory/+/+/vibration",
                   "kafka.topic": "machines"}),
            json!({"name": "mqtt-out", "connector.class": "MqttSink", "topics": "machines",
                   "mqtt.server.uri": uri, "mqtt.qos": "1", "mqtt.topic": "out/${key}",
                   "mqtt.flush.timeout.ms": "3000",
                   "mqtt.reconnect.backoff.initial.ms": "100", "mqtt.reconnect.backoff.max.ms": "1000"}),
        ],
    )
    .await;
    let rest = Rest::new(&worker.rest_url());
    let status = rest
        .wait_for("/connectors/mqtt-in/status", WAIT, |s| all_running(s, 2))
        .await;
    assert_eq!(
        status["tasks"].as_array().unwrap().len(),
        2,
        "one task per topic filter"
    );
    rest.wait_for("/connectors/mqtt-in-qos0/status", WAIT, |s| {
        all_running(s, 1)
    })
    .await;
    rest.wait_for("/connectors/mqtt-out/status", WAIT, |s| all_running(s, 1))
        .await;

    let (subscriber, received, _) = client(mosquitto.port, "test-subscriber");
    subscriber
        .subscribe("out/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (publisher, _, acked) = client(mosquitto.port, "test-publisher");

    // Until a probe has gone all the way round, the subscriptions may not be
    // in place yet.
    wait_until(WAIT, "a probe to go round", || {
        let _ = publisher.try_publish(
            "factory/probe/p/temp",
            QoS::AtLeastOnce,
            false,
            b"probe".to_vec(),
        );
        let _ = publisher.try_publish(
            "factory/probe/p/vibration",
            QoS::AtMostOnce,
            false,
            b"probe".to_vec(),
        );
        let seen = received.lock().unwrap();
        seen.contains(&("out/factory/probe/p/temp".into(), b"probe".to_vec()))
            && seen.contains(&("out/factory/probe/p/vibration".into(), b"probe".to_vec()))
    })
    .await;

    let topics: Vec<String> = (1..=3)
        .flat_map(|line| (1..=4).map(move |m| (line, m)))
        .flat_map(|(line, m)| {
            [
                format!("factory/line{line}/press{m}/temp"),
                format!("factory/line{line}/press{m}/status"),
            ]
        })
        .collect();
    let mut expected = BTreeSet::new();
    let mut published = 0u64;
    let publish_round = |round: std::ops::Range<usize>,
                         expected: &mut BTreeSet<(String, Vec<u8>)>| {
        let mut batch = Vec::new();
        for i in round {
            let topic = &topics[i % topics.len()];
            let p = payload(topic, i);
            expected.insert((format!("out/{topic}"), p.clone()));
            batch.push((topic.clone(), p));
        }
        batch
    };
    let acked_before = acked.load(Ordering::Relaxed);
    for (topic, p) in publish_round(0..600, &mut expected) {
        publisher
            .publish(topic, QoS::AtLeastOnce, false, p)
            .await
            .unwrap();
        published += 1;
    }
    // QoS 0 before the restart (not guaranteed to survive one).
    let mut qos0 = BTreeSet::new();
    for i in 0..50 {
        let topic = format!("factory/line1/press{}/vibration", i % 4);
        let p = payload(&topic, i);
        qos0.insert((format!("out/{topic}"), p.clone()));
        publisher
            .publish(topic, QoS::AtMostOnce, false, p)
            .await
            .unwrap();
    }
    wait_until(WAIT, "some messages through before the restart", || {
        received.lock().unwrap().len() > 200
    })
    .await;

    mosquitto.restart();

    for (topic, p) in publish_round(600..1200, &mut expected) {
        publisher
            .publish(topic, QoS::AtLeastOnce, false, p)
            .await
            .unwrap();
        published += 1;
    }
    wait_until(WAIT, "Mosquitto to acknowledge every QoS 1 publish", || {
        acked.load(Ordering::Relaxed) - acked_before >= published
    })
    .await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let missing: Vec<_> = {
            let seen = received.lock().unwrap();
            expected
                .iter()
                .filter(|e| !seen.contains(*e))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} QoS 1 messages never came back, e.g. {:?}\nmosquitto log:\n{}",
            missing.len(),
            expected.len(),
            missing.first(),
            mosquitto
                .log()
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    {
        let seen = received.lock().unwrap();
        let qos0_back = qos0.iter().filter(|e| seen.contains(*e)).count();
        assert!(qos0_back > 0, "no QoS 0 message came back");
    }

    // In Kafka: the MQTT topic is the key, the payload the value, exactly.
    let records = consume(
        &bootstrap,
        "machines",
        expected.len() + 200,
        Duration::from_secs(20),
    )
    .await;
    let in_kafka: BTreeSet<(String, Vec<u8>)> = records
        .iter()
        .map(|r| {
            (
                format!(
                    "out/{}",
                    String::from_utf8(r.key.clone().expect("a key")).unwrap()
                ),
                r.value.clone().unwrap_or_default(),
            )
        })
        .collect();
    for e in &expected {
        assert!(in_kafka.contains(e), "{e:?} is not in the Kafka topic");
    }
    let header = records[0]
        .headers
        .iter()
        .find(|(k, _)| k == "mqtt.topic")
        .expect("mqtt.topic header");
    assert_eq!(Some(&header.1), records[0].key.as_ref());
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mqtt_username_password() {
    // A password file made with Mosquitto's own tool.
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords");
    std::fs::write(&passwords, "").unwrap();
    let status = std::process::Command::new("mosquitto_passwd")
        .args(["-b"])
        .arg(&passwords)
        .args(["plant", "s3cret"])
        .status()
        .expect("mosquitto_passwd (Debian package mosquitto)");
    assert!(status.success());
    let _ = std::process::Command::new("chmod")
        .arg("644")
        .arg(&passwords)
        .status();
    let mosquitto = Mosquitto::start_with(&format!(
        "password_file {}\nallow_anonymous false\n",
        passwords.display()
    ));
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "secure", 1).await;
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
        ],
    );
    let worker = standalone(
        config,
        vec![
            json!({"name": "good", "connector.class": "MqttSource", "mqtt.server.uri": mosquitto.uri(),
                   "mqtt.username": "plant", "mqtt.password": "s3cret", "mqtt.topics": "secure/#", "kafka.topic": "secure"}),
            json!({"name": "bad", "connector.class": "MqttSource", "mqtt.server.uri": mosquitto.uri(),
                   "mqtt.username": "plant", "mqtt.password": "wrong", "mqtt.topics": "secure/#", "kafka.topic": "secure",
                   "mqtt.client.id": "bad-client"}),
        ],
    )
    .await;
    let rest = Rest::new(&worker.rest_url());
    rest.wait_for("/connectors/good/status", WAIT, |s| all_running(s, 1))
        .await;
    let mut options = MqttOptions::new("auth-publisher", "127.0.0.1", mosquitto.port);
    options.set_credentials("plant", "s3cret");
    let (publisher, mut eventloop) = AsyncClient::new(options, 100);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let deadline = std::time::Instant::now() + WAIT;
    let mut records = Vec::new();
    while records.is_empty() && std::time::Instant::now() < deadline {
        publisher
            .publish("secure/door", QoS::AtLeastOnce, false, b"open".to_vec())
            .await
            .unwrap();
        records = consume(&bootstrap, "secure", 1, Duration::from_secs(2)).await;
    }
    assert_eq!(
        records.first().and_then(|r| r.value.clone()),
        Some(b"open".to_vec())
    );
    // Wrong credentials: the task fails and says why.
    let bad = rest
        .wait_for("/connectors/bad/status", WAIT, |s| {
            s["tasks"][0]["state"] == "FAILED"
        })
        .await;
    let trace = bad["tasks"][0]["trace"].as_str().unwrap();
    assert!(trace.contains("refused"), "{trace}");
    worker.stop().await;
}

/// A CA and a server certificate for 127.0.0.1, made with the openssl tool.
fn make_certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl tool (Debian package openssl)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=strom-test-ca",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    for file in ["ca.crt", "server.crt", "server.key"] {
        let _ = std::process::Command::new("chmod")
            .arg("644")
            .arg(dir.join(file))
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mqtt_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let tls_port = free_port();
    let c = |f: &str| certs.path().join(f).display().to_string();
    let mosquitto = Mosquitto::start_with(&format!(
        "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
        c("ca.crt"),
        c("server.crt"),
        c("server.key")
    ));
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "tls-in", 1).await;
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
        ],
    );
    let worker = standalone(
        config,
        vec![json!({"name": "tls", "connector.class": "MqttSource", "mqtt.version": "5",
                    "mqtt.server.uri": format!("ssl://127.0.0.1:{tls_port}"), "mqtt.ssl.ca.file": c("ca.crt"),
                    "mqtt.topics": "secure/#", "kafka.topic": "tls-in"})],
    )
    .await;
    let rest = Rest::new(&worker.rest_url());
    rest.wait_for("/connectors/tls/status", WAIT, |s| all_running(s, 1))
        .await;
    // The test publishes over the plain listener; the connector reads over TLS.
    let (publisher, _, _) = client(mosquitto.port, "tls-test-publisher");
    let deadline = std::time::Instant::now() + WAIT;
    let mut records = Vec::new();
    while records.is_empty() && std::time::Instant::now() < deadline {
        publisher
            .publish("secure/valve", QoS::AtLeastOnce, false, b"closed".to_vec())
            .await
            .unwrap();
        records = consume(&bootstrap, "tls-in", 1, Duration::from_secs(2)).await;
    }
    assert_eq!(
        records.first().and_then(|r| r.key.clone()),
        Some(b"secure/valve".to_vec())
    );
    assert_eq!(
        records.first().and_then(|r| r.value.clone()),
        Some(b"closed".to_vec())
    );
    worker.stop().await;
}
