//! A log-line rate limiter: at most N lines per window, counting the ones
//! it holds back so that the next line admitted can say how many were
//! suppressed. Used for errors caused by bad input (malformed frames), which
//! a misbehaving or hostile client can trigger as fast as it can send.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    max_per_window: u32,
    window: Duration,
    state: Mutex<State>,
}

struct State {
    window_start: Option<Instant>,
    admitted: u32,
    suppressed: u64,
}

impl RateLimiter {
    pub fn new(max_per_window: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            max_per_window,
            window,
            state: Mutex::new(State {
                window_start: None,
                admitted: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(suppressed)` if a line may be written at `now`, with the number
    /// of lines held back since the last admitted one; `None` if this one
    /// must be dropped (it is counted).
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock();
        let expired = state
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.window);
        if expired {
            state.window_start = Some(now);
            state.admitted = 0;
        }
        if state.admitted < self.max_per_window {
            state.admitted += 1;
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_per_window_then_reports_suppressed() {
        let limiter = RateLimiter::new(3, Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(limiter.admit(t0), Some(0));
        assert_eq!(limiter.admit(t0), Some(0));
        assert_eq!(limiter.admit(t0 + Duration::from_millis(10)), Some(0));
        for i in 0..5 {
            assert_eq!(limiter.admit(t0 + Duration::from_millis(20 + i)), None);
        }
        // Still the same window.
        assert_eq!(limiter.admit(t0 + Duration::from_millis(999)), None);
        // A new window: the first line carries the count of the dropped ones.
        assert_eq!(limiter.admit(t0 + Duration::from_secs(1)), Some(6));
        assert_eq!(limiter.admit(t0 + Duration::from_secs(1)), Some(0));
    }

    #[test]
    fn a_flood_is_bounded_by_elapsed_time_not_by_volume() {
        let limiter = RateLimiter::new(10, Duration::from_secs(1));
        let t0 = Instant::now();
        // 100 000 bad frames over 2.5 simulated seconds.
        let mut lines = 0;
        let mut reported = 0;
        for i in 0..100_000u64 {
            let now = t0 + Duration::from_micros(i * 25);
            if let Some(suppressed) = limiter.admit(now) {
                lines += 1;
                reported += suppressed;
            }
        }
        assert_eq!(lines, 30, "three windows of ten lines");
        // Everything not written is accounted for, except what the last
        // window dropped (reported with the next admitted line).
        let last_window_dropped = limiter.state.lock().suppressed;
        assert_eq!(lines + reported + last_window_dropped, 100_000);
    }
}
