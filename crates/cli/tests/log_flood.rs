//! A flood of bad frames must not flood the broker's log: 100 000 frames
//! with a negative size, each closing its connection, against `strom
//! serve`; the warnings they cause are rate limited, and the broker keeps
//! answering a real client afterwards.

mod common;

use common::Broker;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const FRAMES: usize = 100_000;
const THREADS: usize = 4;
/// The broker's budget for bad-input lines (metrics.rs).
const LINES_PER_SECOND: f64 = 10.0;

/// Sends one frame with size -1 and waits for the broker to close: the
/// broker closes first, so the client's port is free again at once (no
/// TIME_WAIT on this side to run out of ports).
fn bad_frame(bootstrap: &str) {
    let mut stream = TcpStream::connect(bootstrap).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(&(-1i32).to_be_bytes()).expect("send");
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "no answer to a bad frame"),
        // A reset is a close too.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("broker did not close the connection: {e}"),
    }
}

#[test]
fn bad_frames_are_logged_at_a_bounded_rate() {
    let broker = Broker::start();
    if broker.child.is_none() {
        eprintln!("STROM_TEST_BOOTSTRAP is set: this test needs Strom's own log; skipped");
        return;
    }
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..FRAMES / THREADS {
                    bad_frame(&broker.bootstrap);
                }
            });
        }
    });
    let elapsed = started.elapsed();
    // One more, in a fresh window: its line reports everything held back.
    std::thread::sleep(Duration::from_millis(1100));
    bad_frame(&broker.bootstrap);

    // Still serving: a real client creates and lists a topic.
    let created = common::unique("after-flood");
    broker.ok(&["topic", "create", &created, "--partitions", "1"], b"");
    assert!(broker.ok(&["topic", "list"], b"").contains(&created));

    let log = std::fs::read_to_string(broker.log_path()).expect("broker log");
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("closing connection") && l.contains("negative_frame_size"))
        .collect();
    let suppressed: u64 = warnings
        .iter()
        .filter_map(|l| l.split("suppressed=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    // One window's worth per second elapsed, plus the window in progress.
    let bound = (LINES_PER_SECOND * (elapsed.as_secs_f64() + 2.0)).ceil() as usize;
    eprintln!(
        "{FRAMES} bad frames in {elapsed:.1?}: {} log lines (bound {bound}), {suppressed} reported as suppressed, log {} bytes",
        warnings.len(),
        log.len()
    );
    assert!(!warnings.is_empty(), "bad input is logged at all");
    assert!(
        warnings.len() <= bound,
        "{} lines for {FRAMES} bad frames in {elapsed:?}",
        warnings.len()
    );
    // Every frame is either a line or counted in a later line's
    // `suppressed=`: the last one's line carries the rest.
    assert_eq!(
        warnings.len() as u64 + suppressed,
        FRAMES as u64 + 1,
        "every bad frame accounted for"
    );
    // The whole log stays small (under 100 bytes of log per 100 bad frames).
    assert!(log.len() < FRAMES, "log grew to {} bytes", log.len());
}
