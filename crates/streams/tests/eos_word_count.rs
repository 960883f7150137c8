//! Exactly-once word count under SIGKILL: the application runs in a child
//! process (this test binary again, running only [`word_count_app`]) and is
//! killed with SIGKILL twice mid-run; each restart uses the same state dir
//! (so the same process id and transactional id, which fences the killed
//! instance's open transaction) and the same static group member id.
//! Afterwards every word's committed counts, read with read_committed, are
//! exactly 1, 2, ..., n: nothing counted twice, nothing lost.
//!
//! 20 000 input lines (40 000 words) by default; `STROM_FULL=1` runs
//! 100 000. `STROM_STREAMS_GUARANTEE=at_least_once` runs the application
//! without transactions, to see the test fail.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use strom_streams::*;

const CHILD_ENV: &str = "STROM_STREAMS_APP_BOOTSTRAP";
const INPUT: &str = "wc-lines";
const OUTPUT: &str = "wc-counts";

/// Not a test of its own: the application process of
/// `exactly_once_word_count_survives_sigkill`.
#[test]
#[ignore = "the application process of the SIGKILL test, started by it"]
fn word_count_app() {
    let bootstrap = std::env::var(CHILD_ENV).expect("run only by the SIGKILL test");
    let state_dir = std::env::var("STROM_STREAMS_APP_STATE").expect("state dir");
    let guarantee = match std::env::var("STROM_STREAMS_GUARANTEE").as_deref() {
        Ok("at_least_once") => ProcessingGuarantee::AtLeastOnce,
        _ => ProcessingGuarantee::ExactlyOnce,
    };
    let config = StreamsConfig::new("wc-app", &bootstrap)
        .guarantee(guarantee)
        .commit_interval(Duration::from_millis(100))
        .state_dir(state_dir)
        .set("group.instance.id", "wc-app-0")
        .set("session.timeout.ms", "10000");
    let mut streams = KafkaStreams::new(word_count(INPUT, OUTPUT), config);
    streams.start().expect("start");
    eprintln!("app: pid {} started", std::process::id());
    let result = streams.join();
    eprintln!("app: stream thread ended: {result:?}");
    std::process::exit(3);
}

struct App {
    child: Option<Child>,
    bootstrap: String,
    state: std::path::PathBuf,
    logs: std::path::PathBuf,
    runs: usize,
}

impl App {
    fn start(&mut self) {
        self.runs += 1;
        let log =
            std::fs::File::create(self.logs.join(format!("app-{}.log", self.runs))).expect("log");
        let mut cmd = Command::new(std::env::current_exe().expect("exe"));
        cmd.args([
            "word_count_app",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &self.bootstrap)
        .env("STROM_STREAMS_APP_STATE", &self.state)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn the application"));
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reap");
        }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().expect("try_wait")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.logs.join(format!("app-{}.log", self.runs)))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn exactly_once_word_count_survives_sigkill() {
    let full = std::env::var("STROM_FULL").is_ok_and(|v| v == "1");
    let n: u64 = if full { 100_000 } else { 20_000 };
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, INPUT, 3, &[]);
    create_topic(&bootstrap, OUTPUT, 3, &[]);
    produce_lines(&bootstrap, INPUT, 0..n);
    let expected = expected_counts(0..n);
    let words: i64 = expected.values().sum();

    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = App {
        child: None,
        bootstrap: bootstrap.clone(),
        state: dir.path().join("state"),
        logs: dir.path().to_path_buf(),
        runs: 0,
    };
    let started = Instant::now();
    app.start();
    let reader = reader(&bootstrap, OUTPUT, 3);
    let mut log = CountLog::default();
    // SIGKILL at about a quarter and at about 60 % of the committed output.
    let mut kills_at = vec![words as usize / 4, words as usize * 3 / 5];
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(if full { 600 } else { 240 });
    let mut last_progress = (0, Instant::now());
    while log.latest() != expected || !kills_at.is_empty() {
        if log.records != last_progress.0 {
            last_progress = (log.records, Instant::now());
        } else if log.records >= words as usize
            && last_progress.1.elapsed() > Duration::from_secs(5)
        {
            // Everything was counted (more than once, evidently): report.
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no exact counts after {:?}: {} records read, {} kills; last app log:\n{}",
            started.elapsed(),
            log.records,
            kills,
            app.log_tail()
        );
        if let Some(status) = app.exited() {
            panic!(
                "the application exited on its own ({status}):\n{}",
                app.log_tail()
            );
        }
        log.poll(&reader, Duration::from_millis(100));
        if kills_at.first().is_some_and(|at| log.records >= *at) {
            kills_at.remove(0);
            app.kill();
            kills += 1;
            eprintln!(
                "SIGKILL {kills} after {} committed counts ({:?})",
                log.records,
                started.elapsed()
            );
            app.start();
        }
        if log.records >= words as usize && !kills_at.is_empty() {
            panic!("finished before the kills: the input is too small to test anything");
        }
    }
    // Anything a zombie could still add would show up now.
    std::thread::sleep(Duration::from_millis(500));
    log.poll(&reader, Duration::from_secs(1));
    eprintln!(
        "FIGURES: {n} lines, {words} words, {} count records, {kills} SIGKILLs, {} application runs, {:.1} s",
        log.records,
        app.runs,
        started.elapsed().as_secs_f64()
    );
    let problems = log.exactly(&expected);
    assert!(
        problems.is_empty(),
        "counts are not exact:\n{}",
        problems.join("\n")
    );
    assert_eq!(
        log.records as i64, words,
        "one count update per word, exactly"
    );
    assert_eq!(kills, 2);
}
