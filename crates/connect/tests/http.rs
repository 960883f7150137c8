//! The HTTP sink against a small HTTP server of the test's own: batches
//! POSTed as JSON arrays with the configured headers and token, 503s
//! retried with backoff, a permanent 400 sending its batch to the
//! dead-letter queue with error headers.

mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Received {
    requests: usize,
    unavailable: usize,
    rejected: usize,
    values: Vec<Value>,
    problems: Vec<String>,
}

async fn ingest(
    State(state): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let mut state = state.lock().unwrap();
    state.requests += 1;
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer t0ken") {
        state
            .problems
            .push(format!("authorization: {:?}", headers.get("authorization")));
    }
    if headers.get("x-plant").and_then(|v| v.to_str().ok()) != Some("7") {
        state.problems.push("no x-plant header".into());
    }
    if state.requests <= 2 {
        state.unavailable += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let Ok(Value::Array(values)) = serde_json::from_str::<Value>(&body) else {
        state.problems.push(format!("not a JSON array: {body}"));
        return StatusCode::BAD_REQUEST;
    };
    if values.iter().any(|v| v["poison"] == true) {
        state.rejected += 1;
        return StatusCode::BAD_REQUEST;
    }
    state.values.extend(values);
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_sink_batches_retries_and_dead_letters() {
    let received: Arc<Mutex<Received>> = Arc::default();
    let app = Router::new()
        .route("/ingest", post(ingest))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "events", 1).await;
    let records: Vec<_> = (0..100)
        .map(|i| {
            let value = if i == 42 {
                json!({"n": i, "poison": true})
            } else {
                json!({"n": i})
            };
            (None, Some(value.to_string().into_bytes()))
        })
        .collect();
    produce(&bootstrap, "events", records).await;

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
            "name": "to-http", "connector.class": "HttpSink", "topics": "events",
            "http.url": url, "http.headers": "X-Plant: 7", "http.auth.type": "bearer", "http.auth.token": "t0ken",
            "batch.max.size": "10", "retry.backoff.ms": "50", "retry.max.attempts": "5",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": "events-dlq",
            "errors.deadletterqueue.context.headers.enable": "true",
        })],
    )
    .await;

    let dead = consume(&bootstrap, "events-dlq", 1, WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let delivered = received.lock().unwrap().values.len();
        if delivered + 10 >= 100 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dead_all = consume(&bootstrap, "events-dlq", 10, Duration::from_secs(5)).await;
    let delivered: BTreeSet<i64> = {
        let state = received.lock().unwrap();
        assert!(state.problems.is_empty(), "{:?}", state.problems);
        assert_eq!(state.unavailable, 2, "the 503s were retried");
        assert!(state.rejected >= 1);
        state
            .values
            .iter()
            .map(|v| v["n"].as_i64().unwrap())
            .collect()
    };
    let dead_letters: BTreeSet<i64> = dead_all
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(r.value.as_ref().unwrap()).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert!(dead_letters.contains(&42), "{dead_letters:?}");
    assert!(!delivered.contains(&42));
    for n in 0..100 {
        assert!(
            delivered.contains(&n) || dead_letters.contains(&n),
            "record {n} neither delivered nor dead-lettered"
        );
    }
    assert!(
        dead_letters.len() <= 10,
        "only the rejected batch is dead-lettered: {dead_letters:?}"
    );
    let headers: Vec<&str> = dead[0].headers.iter().map(|(k, _)| k.as_str()).collect();
    for h in [
        "__connect.errors.topic",
        "__connect.errors.partition",
        "__connect.errors.offset",
        "__connect.errors.stage",
        "__connect.errors.exception.message",
    ] {
        assert!(headers.contains(&h), "{h} missing from {headers:?}");
    }
    let message = dead[0]
        .headers
        .iter()
        .find(|(k, _)| k == "__connect.errors.exception.message")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&message.1).contains("400"),
        "{:?}",
        String::from_utf8_lossy(&message.1)
    );
    worker.stop().await;
}
