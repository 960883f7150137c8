//! Kafka topic → PostgreSQL table (a real PostgreSQL started by the test):
//! upserts by key, the table created from the JSON fields; the rows equal
//! the latest value per key. Records that cannot become rows go to the
//! dead-letter queue with headers that describe the error.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn topic_to_table_upserts_latest_value_per_key() {
    let pg = Postgres::start();
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "readings", 3).await;

    // 20 machines, 30 readings each, interleaved; the last one per key wins.
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    let mut records = Vec::new();
    for round in 0..30 {
        for machine in 0..20 {
            let key = format!("press-{machine}");
            let value = json!({
                "temperature": 20.5 + round as f64 + machine as f64 / 10.0,
                "count": round * 100 + machine,
                "ok": round % 2 == 0,
                "label": format!("line {} / \"round\" {round}", machine % 3),
                "extra": {"round": round},
            });
            latest.insert(key.clone(), value.clone());
            records.push((Some(key.into_bytes()), Some(value.to_string().into_bytes())));
        }
        if round == 10 {
            // Not JSON at all, and JSON that is not an object.
            records.push((Some(b"press-bad".to_vec()), Some(b"{not json".to_vec())));
            records.push((Some(b"press-array".to_vec()), Some(b"[1,2,3]".to_vec())));
        }
    }
    produce(&bootstrap, "readings", records).await;

    let dir = tempfile::tempdir().unwrap();
    let config = worker_config(
        &bootstrap,
        &[(
            "offset.storage.file.filename",
            dir.path().join("offsets.json").to_str().unwrap(),
        )],
    );
    let worker = standalone(
        config,
        vec![json!({
            "name": "to-postgres", "connector.class": "PostgresSink", "topics": "readings", "tasks.max": "2",
            "connection.url": pg.url(), "table.name.format": "machine_${topic}",
            "insert.mode": "upsert", "pk.mode": "record_key", "pk.fields": "machine", "auto.create": "true",
            "batch.size": "50",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": "readings-dlq",
            "errors.deadletterqueue.context.headers.enable": "true",
        })],
    )
    .await;
    let rest = Rest::new(&worker.rest_url());
    rest.wait_for("/connectors/to-postgres/status", WAIT, |s| {
        all_running(s, 2)
    })
    .await;

    let client = pg.client().await;
    let expected_rows = latest.len() as i64;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let count = client
            .query_one(
                "SELECT count(*) FROM machine_readings WHERE count >= 2900",
                &[],
            )
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0);
        if count == expected_rows {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {count} of {expected_rows} rows have their last value"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let rows = client
        .query("SELECT machine, temperature, count, ok, label, extra::text FROM machine_readings ORDER BY machine", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), latest.len(), "one row per key");
    for row in rows {
        let machine: String = row.get(0);
        let want = &latest[&machine];
        assert_eq!(
            row.get::<_, f64>(1),
            want["temperature"].as_f64().unwrap(),
            "{machine}"
        );
        assert_eq!(
            row.get::<_, i64>(2),
            want["count"].as_i64().unwrap(),
            "{machine}"
        );
        assert_eq!(
            row.get::<_, bool>(3),
            want["ok"].as_bool().unwrap(),
            "{machine}"
        );
        assert_eq!(
            row.get::<_, String>(4),
            want["label"].as_str().unwrap(),
            "{machine}"
        );
        let extra: Value = serde_json::from_str(&row.get::<_, String>(5)).unwrap();
        assert_eq!(extra, want["extra"], "{machine}");
    }
    // The table was created with the key as its primary key.
    let pk = client
        .query_one(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = 'machine_readings'::regclass AND i.indisprimary",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(pk.get::<_, String>(0), "machine");

    // Both bad records are in the dead-letter queue, with their original
    // bytes and headers that say what went wrong.
    let dead = consume(&bootstrap, "readings-dlq", 2, WAIT).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    let header = |r: &Consumed, k: &str| {
        r.headers
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| panic!("no header {k}"))
    };
    let not_json = dead
        .iter()
        .find(|r| r.value.as_deref() == Some(b"{not json"))
        .expect("the non-JSON record");
    assert_eq!(
        header(not_json, "__connect.errors.stage"),
        "VALUE_CONVERTER"
    );
    assert_eq!(header(not_json, "__connect.errors.topic"), "readings");
    assert_eq!(
        header(not_json, "__connect.errors.connector.name"),
        "to-postgres"
    );
    assert_eq!(
        header(not_json, "__connect.errors.exception.class.name"),
        "org.apache.kafka.connect.errors.DataException"
    );
    assert!(!header(not_json, "__connect.errors.offset").is_empty());
    let array = dead
        .iter()
        .find(|r| r.value.as_deref() == Some(b"[1,2,3]"))
        .expect("the JSON array record");
    assert_eq!(header(array, "__connect.errors.stage"), "TASK_PUT");
    assert!(header(array, "__connect.errors.exception.message").contains("not a struct"));
    assert_eq!(array.key.as_deref(), Some(&b"press-array"[..]));

    // Later updates keep upserting.
    produce(&bootstrap, "readings", vec![(Some(b"press-3".to_vec()), Some(br#"{"temperature": -1.5, "count": 99999, "ok": false, "label": "x", "extra": null}"#.to_vec()))]).await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let row = client
            .query_one(
                "SELECT count FROM machine_readings WHERE machine = 'press-3'",
                &[],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) == 99999 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the update did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let total = client
        .query_one("SELECT count(*) FROM machine_readings", &[])
        .await
        .unwrap();
    assert_eq!(total.get::<_, i64>(0), expected_rows);
    worker.stop().await;
}
