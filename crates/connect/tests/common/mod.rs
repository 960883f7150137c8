//! Shared by the Connect integration tests: a real broker (in-process, port
//! 0), workers, a REST client, Kafka helpers, and Mosquitto and PostgreSQL
//! servers started by the tests themselves on free loopback ports.
#![allow(dead_code)]

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use strom_connect::{PluginRegistry, Worker, WorkerConfig};

/// The in-process broker (strom-testkit), started and dropped off the
/// async test's runtime (it has a runtime of its own).
pub struct TestBroker(Option<strom_testkit::TestBroker>);

impl TestBroker {
    pub fn start() -> TestBroker {
        TestBroker(Some(
            std::thread::spawn(strom_testkit::TestBroker::start)
                .join()
                .expect("broker starts"),
        ))
    }

    pub fn bootstrap(&self) -> String {
        self.0.as_ref().expect("running").bootstrap()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(broker) = self.0.take() {
            let _ = std::thread::spawn(move || drop(broker)).join();
        }
    }
}

/// A free loopback port (bound and released; the race is acceptable here).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            [&NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        )
        .await
        .expect("create topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
}

/// A record to produce: key and value.
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

pub async fn produce(bootstrap: &str, topic: &str, records: Vec<KeyValue>) {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || produce_blocking(&bootstrap, &topic, &records))
        .await
        .unwrap()
}

fn produce_blocking(bootstrap: &str, topic: &str, records: &[KeyValue]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for (key, value) in records {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(k) = key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = value {
            record = record.payload(v.as_slice());
        }
        producer.send(record).map_err(|(e, _)| e).expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// A record as read back: key, value, headers.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Reads every partition of `topic` from the start until `count` records
/// came or `timeout` passed.
pub async fn consume(
    bootstrap: &str,
    topic: &str,
    count: usize,
    timeout: Duration,
) -> Vec<Consumed> {
    let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || consume_blocking(&bootstrap, &topic, count, timeout))
        .await
        .unwrap()
}

fn consume_blocking(
    bootstrap: &str,
    topic: &str,
    count: usize,
    timeout: Duration,
) -> Vec<Consumed> {
    use rdkafka::message::Headers as _;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-reader-{}", uuid()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let deadline = Instant::now() + timeout;
    // The topic may not exist yet (a dead-letter queue is created on demand).
    let mut tpl = TopicPartitionList::new();
    while tpl.count() == 0 && Instant::now() < deadline {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        for p in metadata.topics()[0].partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        if tpl.count() == 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    while out.len() < count && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Consumed {
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers,
            });
        }
    }
    out
}

pub fn uuid() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// A worker config for tests: fast offset flushes, a REST port of its own.
pub fn worker_config(bootstrap: &str, extra: &[(&str, &str)]) -> WorkerConfig {
    let mut props = strom_connect::sdk::config::ConfigMap::new();
    for (k, v) in [
        ("bootstrap.servers", bootstrap),
        ("listeners", "http://127.0.0.1:0"),
        ("offset.flush.interval.ms", "500"),
        ("heartbeat.interval.ms", "500"),
        ("session.timeout.ms", "6000"),
    ] {
        props.insert(k.into(), v.into());
    }
    for (k, v) in extra {
        props.insert(k.to_string(), v.to_string());
    }
    WorkerConfig::from_props(props).expect("worker config")
}

pub async fn standalone(config: WorkerConfig, connectors: Vec<Value>) -> Worker {
    let connectors = connectors
        .into_iter()
        .map(|c| {
            c.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .collect();
    Worker::standalone(config, PluginRegistry::builtin(), connectors)
        .await
        .expect("standalone worker starts")
}

/// A JSON REST client for a worker.
#[derive(Clone)]
pub struct Rest {
    pub base: String,
    client: reqwest::Client,
}

impl Rest {
    pub fn new(base: &str) -> Rest {
        strom_connect::install_crypto_provider();
        Rest {
            base: base.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("REST request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, value) = self.call("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {value}");
        value
    }

    /// Polls `path` until `check` holds (or panics after `timeout`).
    pub async fn wait_for(
        &self,
        path: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, value) = self.call("GET", path, None).await;
            if status == 200 && check(&value) {
                return value;
            }
            if Instant::now() > deadline {
                panic!("GET {path} did not reach the expected state within {timeout:?}; last: {status} {value}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// True when the connector and all of its (at least `tasks`) tasks run.
pub fn all_running(status: &Value, tasks: usize) -> bool {
    status["connector"]["state"] == "RUNNING"
        && status["tasks"]
            .as_array()
            .is_some_and(|t| t.len() >= tasks && t.iter().all(|t| t["state"] == "RUNNING"))
}

pub async fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// --- external servers ------------------------------------------------------

fn find_binary(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    // SAFETY-free: `id -u` rather than libc.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A Mosquitto broker of the test's own, on a free loopback port, with
/// persistence (sessions and queued QoS 1 messages survive a restart).
pub struct Mosquitto {
    binary: PathBuf,
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    extra_config: String,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Self::start_with("")
    }

    /// `extra` is appended to the generated config (e.g. a password file).
    pub fn start_with(extra: &str) -> Mosquitto {
        let binary = find_binary("mosquitto", &["/usr/sbin", "/usr/local/sbin"]).unwrap_or_else(|| {
            panic!("the mosquitto binary is not installed: install the Debian package `mosquitto` (scripts/test.sh does)")
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let mut mosquitto = Mosquitto {
            binary,
            dir,
            port: free_port(),
            child: None,
            extra_config: extra.to_string(),
        };
        mosquitto.spawn();
        mosquitto
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self) {
        let dir = self.dir.path();
        let mut config = format!(
            "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\nlog_dest file {}/mosquitto.log\nmax_queued_messages 100000\n",
            self.port,
            dir.display(),
            dir.display()
        );
        if is_root() {
            // Do not drop privileges to the `mosquitto` user: it could not
            // write the temporary directory.
            config.push_str("user root\n");
        }
        config.push_str(&self.extra_config);
        std::fs::write(dir.join("mosquitto.conf"), config).expect("config");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10), "mosquitto");
    }

    pub fn uri(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Stops it with SIGTERM (it saves its persistence file) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for_port(port: u16, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            panic!("{what} did not listen on 127.0.0.1:{port} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PostgreSQL server of the test's own: initdb into a temporary
/// directory, pg_ctl start on a free loopback port (as the `postgres` user
/// when the tests run as root, since PostgreSQL refuses root).
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    _holder: tempfile::TempDir,
    pub port: u16,
    as_postgres: bool,
}

fn postgres_bin_dir() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates
        .into_iter()
        .rev()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .or_else(|| find_binary("initdb", &[]).and_then(|p| p.parent().map(Path::to_path_buf)))
        .unwrap_or_else(|| {
            panic!("PostgreSQL's initdb and pg_ctl are not installed: install the Debian package `postgresql` (scripts/test.sh does)")
        })
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = postgres_bin_dir();
        let holder = tempfile::Builder::new()
            .prefix("strom-pg")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let dir = holder.path().join("data");
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(holder.path())
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "chown the data directory to postgres (is the postgres user there?)"
            );
            let _ = Command::new("chmod")
                .args(["755"])
                .arg(holder.path())
                .status();
        }
        let pg = Postgres {
            bin,
            dir,
            _holder: holder,
            port: free_port(),
            as_postgres,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                pg.dir.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            pg.port,
            pg._holder.path().display()
        );
        pg.run(
            "pg_ctl",
            &[
                "-D",
                pg.dir.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                pg._holder.path().join("pg.log").to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        pg
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let output = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        }
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
        assert!(
            output.status.success(),
            "{tool} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL");
        tokio::spawn(connection);
        client
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let args = [
            "-D",
            self.dir.to_str().unwrap_or(""),
            "-m",
            "immediate",
            "stop",
        ];
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        };
    }
}
