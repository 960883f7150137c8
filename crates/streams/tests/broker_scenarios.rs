//! Against a real broker (Strom, in-process, over TCP with librdkafka):
//! state restored from the changelog after a restart, two instances
//! sharing the input through the consumer group with exact counts, and a
//! stream–table join that sees the table's latest value, also through the
//! interactive-query HTTP endpoint.

mod common;

use common::*;
use std::time::Duration;
use strom_streams::*;

fn config(app: &str, bootstrap: &str, state: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new(app, bootstrap)
        .exactly_once()
        .state_dir(state)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
}

fn counts(streams: &KafkaStreams) -> std::collections::BTreeMap<String, i64> {
    streams
        .store("counts", Serdes::string(), Serdes::i64())
        .and_then(|s| s.all())
        .map(|v| v.into_iter().collect())
        .unwrap_or_default()
}

#[test]
fn state_is_restored_from_the_changelog_after_a_restart() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "r-lines", 3, &[]);
    create_topic(&bootstrap, "r-counts", 3, &[]);
    produce_lines(&bootstrap, "r-lines", 0..3000);
    let dir = tempfile::tempdir().unwrap();

    let mut first = KafkaStreams::new(
        word_count("r-lines", "r-counts"),
        config("restore-app", &bootstrap, &dir.path().join("a")),
    );
    first.start().unwrap();
    wait_until(
        Duration::from_secs(60),
        "the first 3000 lines counted",
        || counts(&first) == expected_counts(0..3000),
    );
    first.close().unwrap();
    // The changelog exists under Kafka Streams' name, compacted.
    let changelog = "restore-app-counts-changelog";
    let changes = {
        let r = reader(&bootstrap, changelog, 3);
        let mut n = 0;
        let until = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < until {
            if let Some(m) = r.poll(Duration::from_millis(100)) {
                m.expect("reading the changelog");
                n += 1;
            }
        }
        n
    };
    assert!(changes > 0, "no records in {changelog}");

    // A new instance on an empty state dir: everything comes back from the
    // changelog, and counting goes on from there.
    produce_lines(&bootstrap, "r-lines", 3000..4000);
    let mut second = KafkaStreams::new(
        word_count("r-lines", "r-counts"),
        config("restore-app", &bootstrap, &dir.path().join("b")),
    );
    second.start().unwrap();
    wait_until(Duration::from_secs(60), "all 4000 lines counted", || {
        counts(&second) == expected_counts(0..4000)
    });
    let restored = second.metrics().restored_records;
    assert!(
        restored >= 40,
        "the store was not restored from the changelog ({restored} records)"
    );
    second.close().unwrap();

    // Restarting on the same state dir: the checkpoint says the store is
    // complete, nothing to replay.
    let mut third = KafkaStreams::new(
        word_count("r-lines", "r-counts"),
        config("restore-app", &bootstrap, &dir.path().join("b")),
    );
    third.start().unwrap();
    wait_until(
        Duration::from_secs(60),
        "counts served after restart",
        || counts(&third) == expected_counts(0..4000),
    );
    assert_eq!(
        third.metrics().restored_records,
        0,
        "a clean restart replays nothing"
    );
    third.close().unwrap();

    // The output: exactly one update per word.
    let mut log = CountLog::default();
    log.poll(&reader(&bootstrap, "r-counts", 3), Duration::from_secs(3));
    assert_eq!(log.exactly(&expected_counts(0..4000)), Vec::<String>::new());
}

#[test]
fn two_instances_share_the_work_and_counts_stay_exact() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "g-lines", 3, &[]);
    create_topic(&bootstrap, "g-counts", 3, &[]);
    let dir = tempfile::tempdir().unwrap();
    produce_lines(&bootstrap, "g-lines", 0..3000);
    let mut a = KafkaStreams::new(
        word_count("g-lines", "g-counts"),
        config("group-app", &bootstrap, &dir.path().join("a")),
    );
    a.start().unwrap();
    let reader = reader(&bootstrap, "g-counts", 3);
    let mut log = CountLog::default();
    wait_until(Duration::from_secs(60), "the first batch counted", || {
        log.poll(&reader, Duration::from_millis(100));
        log.latest() == expected_counts(0..3000)
    });

    // A second instance joins: the group rebalances and the tasks (with
    // their state, through the changelogs) are shared.
    let mut b = KafkaStreams::new(
        word_count("g-lines", "g-counts"),
        config("group-app", &bootstrap, &dir.path().join("b")),
    );
    b.start().unwrap();
    wait_until(
        Duration::from_secs(60),
        "the six tasks shared by both instances",
        || {
            let (ta, tb) = (a.local_tasks(), b.local_tasks());
            !ta.is_empty() && !tb.is_empty() && ta.len() + tb.len() == 6
        },
    );
    produce_lines(&bootstrap, "g-lines", 3000..6000);
    wait_until(
        Duration::from_secs(90),
        "the second batch counted by both",
        || {
            log.poll(&reader, Duration::from_millis(100));
            log.latest() == expected_counts(0..6000)
        },
    );
    assert!(
        a.metrics().processed_records > 0 && b.metrics().processed_records > 0,
        "both instances worked"
    );
    let b_before = b.metrics().processed_records;
    assert!(b_before > 0, "the second instance got tasks");
    // Interactive queries of each instance see only its own tasks' keys;
    // together they hold every word.
    let (ca, cb) = (counts(&a), counts(&b));
    assert!(
        !ca.is_empty() && !cb.is_empty(),
        "both instances hold state: {} / {}",
        ca.len(),
        cb.len()
    );

    // The first instance leaves: the second takes every task over.
    a.close().unwrap();
    produce_lines(&bootstrap, "g-lines", 6000..9000);
    wait_until(
        Duration::from_secs(90),
        "the third batch counted by the survivor",
        || {
            log.poll(&reader, Duration::from_millis(100));
            log.latest() == expected_counts(0..9000)
        },
    );
    assert_eq!(
        counts(&b),
        expected_counts(0..9000),
        "the survivor holds every word"
    );
    b.close().unwrap();
    log.poll(&reader, Duration::from_secs(1));
    assert_eq!(log.exactly(&expected_counts(0..9000)), Vec::<String>::new());
}

#[test]
fn stream_table_join_sees_the_latest_table_value() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "j-regions", 2, &[("cleanup.policy", "compact")]);
    create_topic(&bootstrap, "j-clicks", 2, &[]);
    create_topic(&bootstrap, "j-out", 2, &[]);
    let builder = StreamsBuilder::new();
    let regions = builder.table(
        "j-regions",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named("regions"),
    );
    builder
        .stream("j-clicks", Consumed::with(Serdes::string(), Serdes::i64()))
        .join_table(&regions, |clicks, region| format!("{region}:{clicks}"))
        .to("j-out", Produced::with(Serdes::string(), Serdes::string()));
    let dir = tempfile::tempdir().unwrap();
    let mut app = KafkaStreams::new(
        builder.build().unwrap(),
        config("join-app", &bootstrap, dir.path()),
    );
    app.start().unwrap();
    let http = app.serve_queries("127.0.0.1:0").unwrap();
    let p = producer(&bootstrap);
    let region_of = |user: &str| {
        app.store("regions", Serdes::string(), Serdes::string())
            .and_then(|s| s.get(&user.to_string()))
            .ok()
            .flatten()
    };
    let clicks = reader(&bootstrap, "j-out", 2);
    let mut joined = Vec::new();
    let mut read_until = |n: usize| {
        wait_until(Duration::from_secs(60), "joined records", || {
            while let Some(m) = clicks.poll(Duration::from_millis(100)) {
                use rdkafka::message::Message as _;
                let m = m.unwrap();
                joined.push((
                    String::from_utf8_lossy(m.key().unwrap()).into_owned(),
                    String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
                ));
            }
            joined.len() >= n
        });
        joined.clone()
    };
    for (user, region) in [("alice", "eu"), ("bob", "us")] {
        send(
            &p,
            "j-regions",
            None,
            Some(user.as_bytes()),
            Some(region.as_bytes()),
        );
    }
    flush(&p);
    wait_until(Duration::from_secs(60), "the table loaded", || {
        region_of("alice").is_some() && region_of("bob").is_some()
    });
    send(
        &p,
        "j-clicks",
        None,
        Some(b"alice"),
        Some(&1i64.to_be_bytes()),
    );
    send(
        &p,
        "j-clicks",
        None,
        Some(b"carol"),
        Some(&9i64.to_be_bytes()),
    ); // not in the table
    send(
        &p,
        "j-clicks",
        None,
        Some(b"bob"),
        Some(&2i64.to_be_bytes()),
    );
    flush(&p);
    let first = read_until(2);
    assert_eq!(first.len(), 2);
    assert!(
        first.contains(&("alice".into(), "eu:1".into()))
            && first.contains(&("bob".into(), "us:2".into())),
        "{first:?}"
    );
    // alice moves: later clicks see the new region.
    send(&p, "j-regions", None, Some(b"alice"), Some(b"apac"));
    flush(&p);
    wait_until(Duration::from_secs(60), "the table update", || {
        region_of("alice").as_deref() == Some("apac")
    });
    let body = http_get(http, "/stores/regions/keys/alice");
    assert!(
        body.contains("200 OK") && body.contains(r#""value":"apac""#),
        "{body}"
    );
    assert!(http_get(http, "/stores/regions/keys/nobody").contains("404"));
    assert!(http_get(http, "/stores/nothing/keys/x").contains("404"));
    send(
        &p,
        "j-clicks",
        None,
        Some(b"alice"),
        Some(&3i64.to_be_bytes()),
    );
    flush(&p);
    let all = read_until(3);
    assert_eq!(
        all.last(),
        Some(&("alice".to_string(), "apac:3".to_string())),
        "{all:?}"
    );
    app.close().unwrap();
}

/// A plain HTTP/1.1 GET (the endpoint is tested with a real socket).
fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn window_store_queries_by_key_and_time_range() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "q-events", 2, &[]);
    let builder = StreamsBuilder::new();
    builder
        .stream(
            "q-events",
            Consumed::with(Serdes::string(), Serdes::string()),
        )
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            Duration::from_secs(600),
        ))
        .count_with(Materialized::named("per-minute"));
    let dir = tempfile::tempdir().unwrap();
    let mut app = KafkaStreams::new(
        builder.build().unwrap(),
        config("window-query-app", &bootstrap, dir.path()),
    );
    app.start().unwrap();
    let http = app.serve_queries("127.0.0.1:0").unwrap();
    let minute = 60_000i64;
    let t0 = 1_700_000_040_000i64 / minute * minute; // a minute boundary
    let p = producer(&bootstrap);
    for (key, ts) in [
        ("m1", t0 + 1_000),
        ("m1", t0 + 2_000),
        ("m1", t0 + minute + 5),
        ("m2", t0 + 3),
    ] {
        let record = rdkafka::producer::BaseRecord::to("q-events")
            .key(key)
            .payload("x")
            .timestamp(ts);
        p.send(record).map_err(|(e, _)| e).unwrap();
    }
    flush(&p);
    let fetch = |key: &str, from: i64, to: i64| {
        app.window_store("per-minute", Serdes::string(), Serdes::i64())
            .and_then(|s| s.fetch(&key.to_string(), from, to))
            .unwrap_or_default()
            .into_iter()
            .map(|w| (w.start - t0, w.value))
            .collect::<Vec<_>>()
    };
    wait_until(Duration::from_secs(60), "the windows counted", || {
        fetch("m1", 0, i64::MAX).len() == 2 && !fetch("m2", 0, i64::MAX).is_empty()
    });
    assert_eq!(fetch("m1", 0, i64::MAX), vec![(0, 2), (minute, 1)]);
    assert_eq!(
        fetch("m1", t0 + 1, i64::MAX),
        vec![(minute, 1)],
        "the time range selects by window start"
    );
    assert_eq!(fetch("m2", 0, i64::MAX), vec![(0, 1)]);
    let body = http_get(
        http,
        &format!(
            "/stores/per-minute/keys/m1/windows?from={}&to={}",
            t0,
            t0 + minute
        ),
    );
    assert!(body.contains("200 OK"), "{body}");
    let json: serde_json::Value =
        serde_json::from_str(body.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["windows"][0]["value"], 2, "{json}");
    assert_eq!(json["windows"][1]["start"], t0 + minute, "{json}");
    assert_eq!(json["windows"][1]["end"], t0 + 2 * minute, "{json}");
    let body = http_get(
        http,
        &format!("/stores/per-minute/keys/m1/windows?from={}", t0 + 1),
    );
    assert!(
        body.contains(r#""value":1"#) && !body.contains(r#""value":2"#),
        "{body}"
    );
    assert!(
        http_get(http, "/stores/per-minute/keys/m1").contains("400"),
        "a window store needs /windows"
    );
    assert!(http_get(http, "/stores/per-minute/keys/m1/windows?from=5&to=1").contains("400"));
    assert!(http_get(http, "/stores").contains("per-minute"));
    app.close().unwrap();
}

#[test]
fn joining_topics_that_are_not_co_partitioned_is_an_error() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "cp-table", 2, &[]);
    create_topic(&bootstrap, "cp-stream", 3, &[]);
    let builder = StreamsBuilder::new();
    let table = builder.table(
        "cp-table",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::default(),
    );
    builder
        .stream(
            "cp-stream",
            Consumed::with(Serdes::string(), Serdes::string()),
        )
        .join_table(&table, |a, b| format!("{a}{b}"))
        .to("cp-out", Produced::with(Serdes::string(), Serdes::string()));
    let dir = tempfile::tempdir().unwrap();
    let mut app = KafkaStreams::new(
        builder.build().unwrap(),
        config("cp-app", &bootstrap, dir.path()),
    );
    app.start().unwrap();
    wait_until(Duration::from_secs(30), "the stream thread to stop", || {
        app.state() == State::Error
    });
    let error = app.error().unwrap();
    assert!(error.contains("not co-partitioned"), "{error}");
    // A missing source topic is an error too.
    let builder = StreamsBuilder::new();
    builder
        .stream(
            "no-such-topic",
            Consumed::with(Serdes::string(), Serdes::string()),
        )
        .to("x", Produced::with(Serdes::string(), Serdes::string()));
    let mut app = KafkaStreams::new(
        builder.build().unwrap(),
        config("missing-app", &bootstrap, dir.path()),
    );
    app.start().unwrap();
    wait_until(Duration::from_secs(30), "the stream thread to stop", || {
        app.state() == State::Error
    });
    assert!(
        app.error().unwrap().contains("no-such-topic"),
        "{:?}",
        app.error()
    );
}

#[test]
fn at_least_once_counts_exactly_when_nothing_fails() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "a-lines", 3, &[]);
    create_topic(&bootstrap, "a-counts", 3, &[]);
    let dir = tempfile::tempdir().unwrap();
    let alos = |d: &str| {
        config("alos-app", &bootstrap, &dir.path().join(d))
            .guarantee(ProcessingGuarantee::AtLeastOnce)
            .commit_interval(Duration::from_millis(200))
    };
    produce_lines(&bootstrap, "a-lines", 0..2000);
    let mut first = KafkaStreams::new(word_count("a-lines", "a-counts"), alos("a"));
    first.start().unwrap();
    wait_until(Duration::from_secs(60), "2000 lines counted", || {
        counts(&first) == expected_counts(0..2000)
    });
    // A clean close commits (flush, then offsets); the next instance goes on
    // from the committed offsets with the state from the changelog.
    first.close().unwrap();
    produce_lines(&bootstrap, "a-lines", 2000..3000);
    let mut second = KafkaStreams::new(word_count("a-lines", "a-counts"), alos("b"));
    second.start().unwrap();
    wait_until(Duration::from_secs(60), "3000 lines counted", || {
        counts(&second) == expected_counts(0..3000)
    });
    wait_until(Duration::from_secs(10), "a commit (every 200 ms)", || {
        second.metrics().commits > 0
    });
    second.close().unwrap();
    let mut log = CountLog::default();
    // read_committed reads everything: at-least-once writes no transactions.
    log.poll(&reader(&bootstrap, "a-counts", 3), Duration::from_secs(3));
    assert_eq!(log.exactly(&expected_counts(0..3000)), Vec::<String>::new());
}
