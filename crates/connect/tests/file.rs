//! file → topic → file, byte-exact, across a worker restart: the source
//! resumes at its stored byte position, the sink at its committed offset.

mod common;

use common::*;
use serde_json::json;
use std::io::Write as _;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn lines(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| format!("line {i}: {}\n", "x".repeat(i % 50)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_to_topic_to_file_across_a_restart() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "file-lines", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    let offsets = dir.path().join("offsets.json");
    let config = || {
        worker_config(
            &bootstrap,
            &[
                ("offset.storage.file.filename", offsets.to_str().unwrap()),
                (
                    "value.converter",
                    "org.apache.kafka.connect.converters.ByteArrayConverter",
                ),
            ],
        )
    };
    let connectors = || {
        vec![
            json!({"name": "in", "connector.class": "FileStreamSource", "file": input.to_str().unwrap(), "topic": "file-lines", "batch.size": "100"}),
            json!({"name": "out", "connector.class": "FileStreamSink", "file": output.to_str().unwrap(), "topics": "file-lines"}),
        ]
    };
    // UTF-8 beyond ASCII and a line that is not UTF-8 at all.
    let mut first = lines(0, 3000).into_bytes();
    first.extend_from_slice("grüße, 温度 21.5°C\n".as_bytes());
    first.extend_from_slice(b"\xff\xfe raw bytes\n");
    std::fs::write(&input, &first).unwrap();

    let worker = standalone(config(), connectors()).await;
    wait_until(WAIT, "the first part in the output", || {
        std::fs::read(&output).is_ok_and(|o| o.len() >= first.len() / 2)
    })
    .await;
    // Restart in the middle, while lines are still being appended.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    file.write_all(lines(3000, 4000).as_bytes()).unwrap();
    worker.stop().await;
    file.write_all(lines(4000, 5000).as_bytes()).unwrap();
    // A partial line: not produced until its newline arrives.
    file.write_all(b"partial").unwrap();
    drop(file);

    let worker = standalone(config(), connectors()).await;
    let rest = Rest::new(&worker.rest_url());
    rest.wait_for("/connectors/in/status", WAIT, |s| all_running(s, 1))
        .await;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    file.write_all(b" line, completed\n").unwrap();
    file.write_all(lines(5000, 6000).as_bytes()).unwrap();
    drop(file);
    let expected = std::fs::read(&input).unwrap();
    wait_until(WAIT, "the output to equal the input", || {
        std::fs::read(&output).is_ok_and(|o| o.len() >= expected.len())
    })
    .await;
    worker.stop().await;
    let got = std::fs::read(&output).unwrap();
    assert!(
        got == expected,
        "output ({} bytes) differs from input ({} bytes)",
        got.len(),
        expected.len()
    );
}
