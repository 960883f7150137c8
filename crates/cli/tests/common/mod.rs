//! The harness shared by the CLI's end-to-end tests: a broker started from
//! the built `strom` binary (`strom serve` on free ports, killed on drop, its
//! log kept for failures), and helpers to run `strom` commands against it.
//!
//! With `STROM_TEST_BOOTSTRAP=HOST:PORT` the tests run against that cluster
//! instead (e.g. Apache Kafka, to check that Strom behaves the same).
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const STROM: &str = env!("CARGO_BIN_EXE_strom");
pub const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A broker child process, killed when dropped (also when the test panics),
/// or an external cluster named by STROM_TEST_BOOTSTRAP.
pub struct Broker {
    pub child: Option<Child>,
    pub bootstrap: String,
    pub data_dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        Self::start_with_env(&[])
    }

    /// A broker with broker settings as `STROM_*` variables, e.g.
    /// `("STROM_MAX_CONNECTIONS", "100")`.
    pub fn start_with_env(env: &[(&str, &str)]) -> Broker {
        let data_dir = tempfile::tempdir().expect("tempdir");
        if let Ok(bootstrap) = std::env::var("STROM_TEST_BOOTSTRAP") {
            return Broker {
                child: None,
                bootstrap,
                data_dir,
            };
        }
        let log = std::fs::File::create(data_dir.path().join("broker.log")).expect("log file");
        let mut child = Command::new(STROM)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data_dir.path().join("data"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn strom serve");

        // Keep draining stdout so the broker never blocks on a full pipe.
        let address_rx = listening_address(&mut child);
        let mut broker = Broker {
            child: Some(child),
            bootstrap: String::new(),
            data_dir,
        };
        match address_rx.recv_timeout(BROKER_START_TIMEOUT) {
            Ok(address) => broker.bootstrap = address,
            Err(_) => panic!(
                "broker did not print `listening on HOST:PORT` within {BROKER_START_TIMEOUT:?}"
            ),
        }
        broker
    }

    /// The broker process's resident set size in bytes (`VmRSS`).
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// Whether the broker process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.path().join("broker.log")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(STROM);
        command
            .args(args)
            .env("STROM_BOOTSTRAP", &self.bootstrap)
            .env("RUST_LOG", "warn");
        command
    }

    /// Runs `strom ARGS` against this broker, feeding `stdin`, and waits at
    /// most COMMAND_TIMEOUT for it.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn strom");
        let mut input = child.stdin.take().expect("piped stdin");
        input.write_all(stdin).expect("write stdin");
        drop(input);
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let status = wait_at_most(&mut child, COMMAND_TIMEOUT, args);
        Output {
            status,
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        }
    }

    /// Like `run`, but the command must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str], stdin: &[u8]) -> String {
        let output = self.run(args, stdin);
        assert!(
            output.status.success(),
            "`strom {}` failed with {}\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 stdout")
    }

    /// Like `run`, but the command must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args, b"");
        assert!(
            !output.status.success(),
            "`strom {}` should have failed\nstdout:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args, b"");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let _ = child.kill();
        let _ = child.wait();
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(self.log_path()) {
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- last broker log lines ---");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

pub fn wait_at_most(child: &mut Child, limit: Duration, args: &[&str]) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for strom") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`strom {}` did not finish within {limit:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// A name unique to this run, so the scenario can share a cluster.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// Keeps draining a `strom serve` child's stdout (so the broker never blocks
/// on a full pipe) and sends the address of its first `listening on` line.
pub fn listening_address(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("strom serve with piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(address) = line.trim().strip_prefix("listening on ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(address.to_string());
                }
            }
        }
    });
    rx
}
