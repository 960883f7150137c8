//! Window definitions: tumbling and hopping (`TimeWindows`), sliding,
//! session, and the join window of a stream–stream join. Times are in
//! milliseconds of event time.

use std::time::Duration;

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Kafka Streams keeps windows at least a day unless told otherwise.
pub(crate) const DEFAULT_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// Fixed-size windows `[start, start + size)` starting every `advance`
/// (tumbling when `advance == size`). A record is late, and dropped, when
/// stream time has reached its window's end plus the grace period.
#[derive(Debug, Clone, Copy)]
pub struct TimeWindows {
    pub(crate) size: i64,
    pub(crate) advance: i64,
    pub(crate) grace: i64,
}

impl TimeWindows {
    /// Tumbling windows; records later than their window's end are dropped.
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        Self::of_size_and_grace(size, Duration::ZERO)
    }
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        let size = ms(size).max(1);
        TimeWindows {
            size,
            advance: size,
            grace: ms(grace),
        }
    }
    /// Hopping windows: a new window every `advance` (≤ size).
    pub fn advance_by(mut self, advance: Duration) -> Self {
        self.advance = ms(advance).clamp(1, self.size);
        self
    }
    /// `(start, end)` of every window holding `ts`, oldest first.
    pub(crate) fn windows_for(&self, ts: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut start = ts - ts.rem_euclid(self.advance);
        while start > ts - self.size {
            if start >= 0 {
                out.push((start, start + self.size));
            }
            start -= self.advance;
        }
        out.reverse();
        out
    }
}

/// Kafka Streams' sliding windows (KIP-450): windows `[start, start +
/// difference]` (both ends inclusive) that begin or end at a record; every
/// distinct set of records within `difference` of each other is one window.
#[derive(Debug, Clone, Copy)]
pub struct SlidingWindows {
    pub(crate) difference: i64,
    pub(crate) grace: i64,
}

impl SlidingWindows {
    pub fn with_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        SlidingWindows {
            difference: ms(difference),
            grace: ms(grace),
        }
    }
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        Self::with_time_difference_and_grace(difference, Duration::ZERO)
    }
}

/// Sessions: records of a key closer than `gap` to each other form one
/// window `[first, last]`; a record bridging two sessions merges them.
#[derive(Debug, Clone, Copy)]
pub struct SessionWindows {
    pub(crate) gap: i64,
    pub(crate) grace: i64,
}

impl SessionWindows {
    pub fn with_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        SessionWindows {
            gap: ms(gap),
            grace: ms(grace),
        }
    }
    pub fn with_inactivity_gap(gap: Duration) -> Self {
        Self::with_inactivity_gap_and_grace(gap, Duration::ZERO)
    }
}

/// A stream–stream join matches records of the same key whose timestamps
/// differ by at most `before` (other earlier) / `after` (other later).
#[derive(Debug, Clone, Copy)]
pub struct JoinWindows {
    pub(crate) before: i64,
    pub(crate) after: i64,
    pub(crate) grace: i64,
}

impl JoinWindows {
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        JoinWindows {
            before: ms(difference),
            after: ms(difference),
            grace: ms(grace),
        }
    }
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        Self::of_time_difference_and_grace(difference, Duration::ZERO)
    }
    pub fn before(mut self, before: Duration) -> Self {
        self.before = ms(before);
        self
    }
    pub fn after(mut self, after: Duration) -> Self {
        self.after = ms(after);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_and_hopping_window_assignment() {
        let tumbling = TimeWindows::of_size_with_no_grace(Duration::from_millis(10));
        assert_eq!(tumbling.windows_for(0), vec![(0, 10)]);
        assert_eq!(tumbling.windows_for(19), vec![(10, 20)]);
        let hopping = tumbling.advance_by(Duration::from_millis(5));
        assert_eq!(hopping.windows_for(12), vec![(5, 15), (10, 20)]);
        assert_eq!(hopping.windows_for(3), vec![(0, 10)]);
    }
}
