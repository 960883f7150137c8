//! When each record is meant to be sent, and the clock every bench thread
//! shares.
//!
//! A fixed-rate run lays its records on a schedule: record `i` (counted over
//! all producers) is due at `origin + i / rate`. Its latency counts from that
//! due time, not from when the producer got round to sending it, so a stall
//! delays every record behind it and shows up in the percentiles, instead of
//! quietly thinning out the samples (coordinated omission).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How fast producers send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the client takes records; latency counts from each send call.
    Max,
    /// This many records per second over all producers, evenly spaced.
    Fixed { records_per_sec: f64 },
}

impl Pace {
    /// A rate of 0 means unlimited.
    pub fn from_rate(records_per_sec: f64) -> Pace {
        if records_per_sec > 0.0 {
            Pace::Fixed { records_per_sec }
        } else {
            Pace::Max
        }
    }

    /// The records per second asked for, 0 when unlimited.
    pub fn rate(self) -> f64 {
        match self {
            Pace::Max => 0.0,
            Pace::Fixed { records_per_sec } => records_per_sec,
        }
    }

    /// When record `index` of the run is due, relative to the schedule's
    /// origin; `None` when the pace is unlimited.
    pub fn due(self, index: u64) -> Option<Duration> {
        match self {
            Pace::Max => None,
            // Computed from the index, not by adding intervals, so rounding
            // never accumulates into drift.
            Pace::Fixed { records_per_sec } => Some(Duration::from_nanos(
                (index as f64 * 1e9 / records_per_sec).round() as u64,
            )),
        }
    }
}

/// The record indices that producer `worker` of `workers` sends: `worker`,
/// `worker + workers`, … Interleaving the producers keeps their combined
/// schedule evenly spaced.
pub fn share(worker: u64, workers: u64) -> impl Iterator<Item = u64> {
    let step = usize::try_from(workers.max(1)).unwrap_or(usize::MAX);
    (worker..).step_by(step)
}

/// The run's clock: monotonic offsets from the start, and the wall-clock time
/// of the start so that an offset can be written into a record as a
/// timestamp that another process could read.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    start: Instant,
    start_unix_nanos: u64,
}

impl RunClock {
    pub fn start() -> RunClock {
        let start_unix_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, duration_nanos);
        RunClock {
            start: Instant::now(),
            start_unix_nanos,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Nanoseconds since the UNIX epoch of the instant `offset` after the
    /// start. Later instants are derived from the monotonic clock, so a
    /// wall-clock step during the run does not distort latencies.
    pub fn unix_nanos_at(&self, offset: Duration) -> u64 {
        self.start_unix_nanos.saturating_add(duration_nanos(offset))
    }

    pub fn unix_nanos_now(&self) -> u64 {
        self.unix_nanos_at(self.elapsed())
    }

    /// Sleeps until `offset` after the start; returns at once if that has passed.
    pub fn sleep_until(&self, offset: Duration) {
        let now = self.elapsed();
        if offset > now {
            std::thread::sleep(offset - now);
        }
    }
}

/// A duration in whole nanoseconds, saturating (after 584 years).
pub fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_pace_spaces_records_evenly() {
        let pace = Pace::from_rate(1000.0);
        assert_eq!(pace.due(0), Some(Duration::ZERO));
        assert_eq!(pace.due(1), Some(Duration::from_millis(1)));
        assert_eq!(pace.due(1500), Some(Duration::from_millis(1500)));
        // A rate that does not divide a second evenly still does not drift.
        let pace = Pace::from_rate(3.0);
        assert_eq!(pace.due(1), Some(Duration::from_nanos(333_333_333)));
        assert_eq!(pace.due(2), Some(Duration::from_nanos(666_666_667)));
        assert_eq!(pace.due(3_000_000), Some(Duration::from_secs(1_000_000)));
    }

    #[test]
    fn unlimited_pace_has_no_schedule() {
        assert_eq!(Pace::from_rate(0.0), Pace::Max);
        assert_eq!(Pace::Max.due(5), None);
        assert_eq!(Pace::Max.rate(), 0.0);
        assert_eq!(Pace::from_rate(42.0).rate(), 42.0);
    }

    #[test]
    fn a_duration_holds_rate_times_duration_records() {
        let pace = Pace::from_rate(1000.0);
        let window = Duration::from_secs(2);
        let planned = share(0, 1)
            .take_while(|&index| pace.due(index).unwrap() < window)
            .count();
        assert_eq!(planned, 2000);
    }

    #[test]
    fn producers_share_one_schedule() {
        let pace = Pace::from_rate(10_000.0);
        let mut all: Vec<u64> = Vec::new();
        for worker in 0..3 {
            let mine: Vec<u64> = share(worker, 3).take_while(|&i| i < 100).collect();
            // Each producer's records come due in order.
            assert!(mine.windows(2).all(|w| pace.due(w[0]) < pace.due(w[1])));
            all.extend(mine);
        }
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn clock_offsets_map_to_wall_time() {
        let clock = RunClock::start();
        let base = clock.unix_nanos_at(Duration::ZERO);
        assert!(base > 1_600_000_000_000_000_000, "after 2020");
        assert_eq!(
            clock.unix_nanos_at(Duration::from_millis(5)),
            base + 5_000_000
        );
        clock.sleep_until(Duration::from_millis(2));
        assert!(clock.elapsed() >= Duration::from_millis(2));
        assert!(clock.unix_nanos_now() >= base + 2_000_000);
    }
}
