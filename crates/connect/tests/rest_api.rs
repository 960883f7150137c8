//! Every REST endpoint against a standalone worker on a real broker: the
//! happy paths, invalid configs (400 naming each field), unknown connectors
//! and tasks (404), conflicts (409), and KIP-875 offsets for a source and a
//! sink connector.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_endpoint() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    std::fs::write(&input, "one\ntwo\nthree\n").unwrap();
    create_topic(&bootstrap, "lines", 1).await;
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
                "org.apache.kafka.connect.storage.StringConverter",
            ),
        ],
    );
    let worker = standalone(config, vec![]).await;
    let rest = Rest::new(&worker.rest_url());

    // Worker info, health, OpenAPI.
    let root = rest.get("/").await;
    assert_eq!(root["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        root["kafka_cluster_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{root}"
    );
    assert_eq!(rest.get("/health").await["status"], "healthy");
    assert!(rest.get("/openapi.json").await["paths"]["/connectors"].is_object());

    // Plugins.
    let plugins = rest.get("/connector-plugins").await;
    let classes: Vec<&str> = plugins
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["class"].as_str().unwrap())
        .collect();
    for class in [
        "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "io.strom.connect.mqtt.MqttSourceConnector",
        "io.strom.connect.mqtt.MqttSinkConnector",
        "io.strom.connect.postgres.PostgresSinkConnector",
        "io.strom.connect.http.HttpSinkConnector",
    ] {
        assert!(classes.contains(&class), "{class} missing from {plugins}");
    }
    let everything = rest.get("/connector-plugins?connectorsOnly=false").await;
    let types: Vec<&str> = everything
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    for ty in ["source", "sink", "transformation", "predicate", "converter"] {
        assert!(types.contains(&ty), "{ty} missing");
    }
    let defs = rest.get("/connector-plugins/FileStreamSource/config").await;
    assert!(defs
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["name"] == "file" && d["required"] == true));
    let (status, _) = rest
        .call("GET", "/connector-plugins/NoSuchThing/config", None)
        .await;
    assert_eq!(status, 404);

    // Validation: every invalid field named, good configs have no errors.
    let (status, infos) = rest
        .call(
            "PUT",
            "/connector-plugins/FileStreamSource/config/validate",
            Some(r#"{"connector.class":"FileStreamSource","tasks.max":"zero","transforms":"t","transforms.t.type":"Nope"}"#),
        )
        .await;
    assert_eq!(status, 200);
    let with_errors: Vec<&str> = infos["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["value"]["errors"].as_array().unwrap().is_empty())
        .map(|c| c["value"]["name"].as_str().unwrap())
        .collect();
    for field in ["name", "file", "topic", "tasks.max", "transforms.t.type"] {
        assert!(
            with_errors.contains(&field),
            "{field} not flagged: {with_errors:?}"
        );
    }
    assert_eq!(
        infos["error_count"].as_u64().unwrap() as usize,
        with_errors.len()
    );
    let ok = rest
        .call(
            "PUT",
            "/connector-plugins/FileStreamSource/config/validate",
            Some(&json!({"name": "x", "file": "/tmp/x", "topic": "t"}).to_string()),
        )
        .await;
    assert_eq!(ok.1["error_count"], 0, "{}", ok.1);

    // Create: bad configs are 400 naming every field.
    let (status, error) = rest
        .call(
            "POST",
            "/connectors",
            Some(&json!({"name": "bad", "config": {"connector.class": "FileStreamSink", "tasks.max": "-1", "errors.tolerance": "some"}}).to_string()),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error_code"], 400);
    let message = error["message"].as_str().unwrap();
    for field in ["file:", "tasks.max:", "errors.tolerance:", "topics:"] {
        assert!(message.contains(field), "{field} not in: {message}");
    }
    let (status, error) = rest.call("POST", "/connectors", Some("{not json")).await;
    assert_eq!((status, error["error_code"].as_u64()), (400, Some(400)));
    let (status, _) = rest
        .call(
            "POST",
            "/connectors",
            Some(
                &json!({"name": "u", "config": {"connector.class": "NoSuchConnector"}}).to_string(),
            ),
        )
        .await;
    assert_eq!(status, 400);

    // Create a source and a sink.
    let source = json!({"name": "src", "config": {
        "connector.class": "FileStreamSource", "file": input.to_str().unwrap(), "topic": "lines"}});
    let (status, info) = rest
        .call("POST", "/connectors", Some(&source.to_string()))
        .await;
    assert_eq!(status, 201, "{info}");
    assert_eq!(info["name"], "src");
    assert_eq!(info["type"], "source");
    let (status, conflict) = rest
        .call("POST", "/connectors", Some(&source.to_string()))
        .await;
    assert_eq!(status, 409);
    assert_eq!(conflict["error_code"], 409);
    assert!(conflict["message"]
        .as_str()
        .unwrap()
        .contains("already exists"));
    let sink_config = json!({"connector.class": "FileStreamSink", "file": output.to_str().unwrap(), "topics": "lines"});
    let (status, info) = rest
        .call(
            "PUT",
            "/connectors/sink/config",
            Some(&sink_config.to_string()),
        )
        .await;
    assert_eq!(status, 201, "{info}");
    let (status, _) = rest
        .call(
            "PUT",
            "/connectors/sink/config",
            Some(&sink_config.to_string()),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = rest
        .call(
            "PUT",
            "/connectors/sink/config",
            Some(&json!({"name": "other", "connector.class": "FileStreamSink"}).to_string()),
        )
        .await;
    assert_eq!(status, 400);

    // Listing, info, config, status, tasks.
    let mut names: Vec<String> = serde_json::from_value(rest.get("/connectors").await).unwrap();
    names.sort();
    assert_eq!(names, vec!["sink", "src"]);
    let status = rest
        .wait_for("/connectors/src/status", WAIT, |s| all_running(s, 1))
        .await;
    assert_eq!(status["type"], "source");
    rest.wait_for("/connectors/sink/status", WAIT, |s| all_running(s, 1))
        .await;
    let expanded = rest.get("/connectors?expand=status&expand=info").await;
    assert_eq!(expanded["src"]["status"]["connector"]["state"], "RUNNING");
    assert_eq!(expanded["sink"]["info"]["type"], "sink");
    assert_eq!(rest.get("/connectors/src").await["tasks"][0]["task"], 0);
    assert_eq!(rest.get("/connectors/src/config").await["topic"], "lines");
    let tasks = rest.get("/connectors/src/tasks").await;
    assert_eq!(tasks[0]["id"]["connector"], "src");
    assert_eq!(tasks[0]["config"]["file"], input.to_str().unwrap());
    assert_eq!(
        rest.get("/connectors/src/tasks/0/status").await["state"],
        "RUNNING"
    );
    for path in [
        "/connectors/src/tasks/7/status",
        "/connectors/src/tasks/x/status",
        "/connectors/nope",
        "/connectors/nope/status",
        "/connectors/nope/config",
        "/connectors/nope/tasks",
        "/connectors/nope/offsets",
    ] {
        let (status, error) = rest.call("GET", path, None).await;
        assert_eq!(status, 404, "{path}: {error}");
        assert_eq!(error["error_code"], 404);
    }
    for (method, path) in [
        ("DELETE", "/connectors/nope"),
        ("PUT", "/connectors/nope/pause"),
        ("PUT", "/connectors/nope/resume"),
        ("PUT", "/connectors/nope/stop"),
        ("POST", "/connectors/nope/restart"),
        ("POST", "/connectors/src/tasks/9/restart"),
    ] {
        let (status, _) = rest.call(method, path, None).await;
        assert_eq!(status, 404, "{method} {path}");
    }
    let (status, error) = rest.call("GET", "/no/such/route", None).await;
    assert_eq!((status, error["error_code"].as_u64()), (404, Some(404)));
    let (status, _) = rest.call("DELETE", "/connector-plugins", None).await;
    assert_eq!(status, 405);

    // The data flowed: three lines in the output file.
    wait_until(WAIT, "the sink to write three lines", || {
        std::fs::read_to_string(&output).is_ok_and(|t| t == "one\ntwo\nthree\n")
    })
    .await;

    // PATCH config (KIP-477).
    let (status, patched) = rest
        .call(
            "PATCH",
            "/connectors/src/config",
            Some(r#"{"batch.size":"10"}"#),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["config"]["batch.size"], "10");

    // Pause, resume, restart.
    let (status, _) = rest.call("PUT", "/connectors/src/pause", None).await;
    assert_eq!(status, 202);
    rest.wait_for("/connectors/src/status", WAIT, |s| {
        s["connector"]["state"] == "PAUSED" && s["tasks"][0]["state"] == "PAUSED"
    })
    .await;
    let (status, _) = rest.call("PUT", "/connectors/src/resume", None).await;
    assert_eq!(status, 202);
    rest.wait_for("/connectors/src/status", WAIT, |s| all_running(s, 1))
        .await;
    let (status, body) = rest.call("POST", "/connectors/src/restart", None).await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, planned) = rest
        .call(
            "POST",
            "/connectors/src/restart?includeTasks=true&onlyFailed=false",
            None,
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(planned["tasks"][0]["state"], "RESTARTING");
    let (status, _) = rest
        .call("POST", "/connectors/src/tasks/0/restart", None)
        .await;
    assert_eq!(status, 204);
    rest.wait_for("/connectors/src/status", WAIT, |s| all_running(s, 1))
        .await;

    // Offsets (KIP-875): readable while running, changeable only when stopped.
    let offsets = rest
        .wait_for("/connectors/src/offsets", WAIT, |o| {
            o["offsets"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(
        offsets["offsets"][0]["partition"]["filename"],
        input.to_str().unwrap()
    );
    assert_eq!(offsets["offsets"][0]["offset"]["position"], 14);
    let alter = json!({"offsets": [{"partition": {"filename": input.to_str().unwrap()}, "offset": {"position": 4}}]}).to_string();
    let (status, error) = rest
        .call("PATCH", "/connectors/src/offsets", Some(&alter))
        .await;
    assert_eq!(status, 400);
    assert!(
        error["message"].as_str().unwrap().contains("STOPPED"),
        "{error}"
    );
    let (status, _) = rest.call("PUT", "/connectors/src/stop", None).await;
    assert_eq!(status, 202);
    rest.wait_for("/connectors/src/status", WAIT, |s| {
        s["connector"]["state"] == "STOPPED" && s["tasks"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    let (status, done) = rest
        .call("PATCH", "/connectors/src/offsets", Some(&alter))
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        rest.get("/connectors/src/offsets").await["offsets"][0]["offset"]["position"],
        4
    );
    let (status, _) = rest
        .call(
            "PATCH",
            "/connectors/src/offsets",
            Some(r#"{"offsets":[{"partition":5}]}"#),
        )
        .await;
    assert_eq!(status, 400);
    // Resuming from position 4 re-reads "two" and "three".
    let (status, _) = rest.call("PUT", "/connectors/src/resume", None).await;
    assert_eq!(status, 202);
    wait_until(WAIT, "the re-read lines", || {
        std::fs::read_to_string(&output).is_ok_and(|t| t == "one\ntwo\nthree\ntwo\nthree\n")
    })
    .await;
    rest.call("PUT", "/connectors/src/stop", None).await;
    rest.wait_for("/connectors/src/status", WAIT, |s| {
        s["connector"]["state"] == "STOPPED"
    })
    .await;
    let (status, _) = rest.call("DELETE", "/connectors/src/offsets", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        rest.get("/connectors/src/offsets").await["offsets"],
        json!([])
    );

    // Sink offsets are the consumer group's.
    let sink_offsets = rest
        .wait_for("/connectors/sink/offsets", WAIT, |o| {
            o["offsets"][0]["offset"]["kafka_offset"] == 5
        })
        .await;
    assert_eq!(
        sink_offsets["offsets"][0]["partition"],
        json!({"kafka_topic": "lines", "kafka_partition": 0})
    );
    rest.call("PUT", "/connectors/sink/stop", None).await;
    rest.wait_for("/connectors/sink/status", WAIT, |s| {
        s["connector"]["state"] == "STOPPED"
    })
    .await;
    let alter = json!({"offsets": [{"partition": {"kafka_topic": "lines", "kafka_partition": 0}, "offset": {"kafka_offset": 1}}]}).to_string();
    let (status, body) = rest
        .call("PATCH", "/connectors/sink/offsets", Some(&alter))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        rest.get("/connectors/sink/offsets").await["offsets"][0]["offset"]["kafka_offset"],
        1
    );
    let (status, body) = rest.call("DELETE", "/connectors/sink/offsets", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        rest.get("/connectors/sink/offsets").await["offsets"],
        json!([])
    );

    // Delete.
    let (status, _) = rest.call("DELETE", "/connectors/src", None).await;
    assert_eq!(status, 204);
    let (status, _) = rest.call("GET", "/connectors/src", None).await;
    assert_eq!(status, 404);
    assert_eq!(rest.get("/connectors").await, json!(["sink"]));
    worker.stop().await;
}
