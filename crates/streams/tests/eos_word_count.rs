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
        .set(
            "group.instance.id",
            &std::env::var("STROM_STREAMS_APP_INSTANCE").unwrap_or_else(|_| "wc-app-0".into()),
        )
        .set("session.timeout.ms", "10000");
    let mut streams = KafkaStreams::new(word_count(INPUT, OUTPUT), config);
    streams.start().expect("start");
    eprintln!("app: pid {} started", std::process::id());
    let mut tasks = Vec::new();
    while matches!(streams.state(), State::Rebalancing | State::Running) {
        let now = streams.local_tasks();
        if now != tasks {
            eprintln!("app: tasks {now:?}");
            tasks = now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
    instance: String,
}

impl App {
    fn start(&mut self) {
        self.runs += 1;
        let log = std::fs::File::create(self.log_path()).expect("log");
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
        .env("STROM_STREAMS_APP_INSTANCE", &self.instance)
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

    fn log_path(&self) -> std::path::PathBuf {
        self.logs
            .join(format!("{}-{}.log", self.instance, self.runs))
    }

    /// The instance's last reported tasks (from its log).
    fn tasks(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix("app: tasks "))
            .unwrap_or("[]")
            .to_string()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
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
        instance: "wc-app-0".into(),
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

/// Two instances share the work; one is SIGKILLed and never comes back.
/// The survivor takes its tasks over once the group notices (session
/// timeout) and once the dead instance's open transaction is aborted (its
/// transaction timeout: until then its pending offsets keep the committed
/// offsets unstable, and the survivor waits), restores their state from the
/// changelogs, and the counts are still exact.
#[test]
fn exactly_once_survivor_takes_over_a_killed_instance() {
    let n: u64 = 20_000;
    let broker = broker();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, INPUT, 3, &[]);
    create_topic(&bootstrap, OUTPUT, 3, &[]);
    let expected = expected_counts(0..n);
    let words: i64 = expected.values().sum();
    let dir = tempfile::tempdir().expect("tempdir");
    let app = |instance: &str| App {
        child: None,
        bootstrap: bootstrap.clone(),
        state: dir.path().join(instance),
        logs: dir.path().to_path_buf(),
        runs: 0,
        instance: instance.into(),
    };
    let (mut a, mut b) = (app("wc-a"), app("wc-b"));
    let started = Instant::now();
    a.start();
    b.start();
    // The input comes once the group has settled with tasks on both.
    wait_until(
        Duration::from_secs(60),
        "both instances owning tasks",
        || a.tasks() != "[]" && b.tasks() != "[]",
    );
    eprintln!("wc-a tasks {}, wc-b tasks {}", a.tasks(), b.tasks());
    let reader = reader(&bootstrap, OUTPUT, 3);
    let mut log = CountLog::default();
    let check_alive = |a: &mut App, b: &mut App| {
        for app in [a, b] {
            if let Some(status) = app.exited() {
                panic!(
                    "{} exited on its own ({status}):\n{}",
                    app.instance,
                    app.log_tail()
                );
            }
        }
    };
    // A third of the input, counted by both.
    produce_lines(&bootstrap, INPUT, 0..n / 3);
    let deadline = Instant::now() + Duration::from_secs(60);
    while log.latest() != expected_counts(0..n / 3) {
        assert!(Instant::now() < deadline, "the first third was not counted");
        check_alive(&mut a, &mut b);
        log.poll(&reader, Duration::from_millis(100));
    }
    // The next third, and SIGKILL wc-a while it processes it.
    produce_lines(&bootstrap, INPUT, n / 3..2 * n / 3);
    a.kill();
    eprintln!(
        "SIGKILL wc-a after {} committed counts ({:?})",
        log.records,
        started.elapsed()
    );
    produce_lines(&bootstrap, INPUT, 2 * n / 3..n);
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last_progress = (log.records, Instant::now());
    while log.latest() != expected {
        assert!(
            Instant::now() < deadline,
            "no exact counts after {:?} ({} records read); survivor log:\n{}",
            started.elapsed(),
            log.records,
            b.log_tail()
        );
        if let Some(status) = b.exited() {
            panic!("wc-b exited on its own ({status}):\n{}", b.log_tail());
        }
        log.poll(&reader, Duration::from_millis(100));
        if log.records != last_progress.0 {
            last_progress = (log.records, Instant::now());
        } else if log.records >= words as usize
            && last_progress.1.elapsed() > Duration::from_secs(5)
        {
            break;
        }
    }
    assert_eq!(
        b.tasks().matches("TaskId").count(),
        6,
        "the survivor runs every task: {}",
        b.tasks()
    );
    std::thread::sleep(Duration::from_millis(500));
    log.poll(&reader, Duration::from_secs(1));
    eprintln!(
        "FIGURES: survivor finished {n} lines, {} count records in {:.1} s",
        log.records,
        started.elapsed().as_secs_f64()
    );
    let problems = log.exactly(&expected);
    assert!(
        problems.is_empty(),
        "counts are not exact:\n{}",
        problems.join("\n")
    );
    assert_eq!(log.records as i64, words);
}
