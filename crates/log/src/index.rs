//! Sparse per-segment indexes, kept in memory and persisted in Kafka's format:
//!
//! * `.index`: 8-byte entries, relative offset (u32 BE) → file position (u32 BE).
//!   The key is the *last* offset of an indexed batch, the value the position
//!   where that batch starts (Kafka's convention).
//! * `.timeindex`: 12-byte entries, timestamp (i64 BE) → relative offset (u32 BE):
//!   "the largest timestamp seen so far is T, first carried by the batch
//!   containing offset O". Timestamps strictly increase.
//!
//! [`SegmentIndexer`] decides when to add entries. Appends and recovery feed
//! it the same batches in the same order, so a rebuilt index is identical to
//! the one written while appending.

use crate::batch::BatchHeader;

pub(crate) const OFFSET_ENTRY_LEN: usize = 8;
pub(crate) const TIME_ENTRY_LEN: usize = 12;
/// Kafka's "no timestamp".
pub(crate) const NO_TIMESTAMP: i64 = -1;

/// Offset → position, sparse.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn append(&mut self, relative_offset: u32, position: u32) {
        debug_assert!(self
            .entries
            .last()
            .is_none_or(|&(o, p)| o < relative_offset && p < position));
        self.entries.push((relative_offset, position));
    }

    pub fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    /// The position to start scanning from to find `offset`: the entry with
    /// the largest offset `<= offset`, or the start of the segment.
    pub fn lookup(&self, base_offset: i64, offset: i64) -> u64 {
        let relative = offset - base_offset;
        let n = self
            .entries
            .partition_point(|&(o, _)| i64::from(o) <= relative);
        if n == 0 {
            0
        } else {
            u64::from(self.entries[n - 1].1)
        }
    }

    /// A position at or after the start of the batch holding `offset`, if the
    /// index knows one: the first entry whose key is `>= offset`.
    pub fn position_at_or_after(&self, base_offset: i64, offset: i64) -> Option<u64> {
        let relative = offset - base_offset;
        let n = self
            .entries
            .partition_point(|&(o, _)| i64::from(o) < relative);
        self.entries.get(n).map(|&(_, p)| u64::from(p))
    }

    /// The position of the last indexed batch that starts at or before
    /// `limit` and ends below `upper` (its key is its last offset).
    pub fn last_position_within(&self, base_offset: i64, upper: i64, limit: u64) -> Option<u64> {
        let relative = upper - base_offset;
        let n = self
            .entries
            .partition_point(|&(o, p)| i64::from(o) < relative && u64::from(p) <= limit);
        n.checked_sub(1).map(|i| u64::from(self.entries[i].1))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_LEN);
        for &(o, p) in &self.entries {
            out.extend_from_slice(&o.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    /// Parses an index file, rejecting it (so it gets rebuilt) unless its size
    /// is a multiple of the entry size, keys and positions strictly increase,
    /// and every position lies inside the log file.
    pub fn from_bytes(bytes: &[u8], log_size: u64) -> Result<OffsetIndex, String> {
        if bytes.len() % OFFSET_ENTRY_LEN != 0 {
            return Err(format!(
                "size {} is not a multiple of {OFFSET_ENTRY_LEN}",
                bytes.len()
            ));
        }
        let mut index = OffsetIndex::default();
        for chunk in bytes.chunks_exact(OFFSET_ENTRY_LEN) {
            let o = u32::from_be_bytes(chunk[0..4].try_into().expect("4 bytes"));
            let p = u32::from_be_bytes(chunk[4..8].try_into().expect("4 bytes"));
            if let Some((lo, lp)) = index.last() {
                if o <= lo || p <= lp {
                    return Err(format!(
                        "entry ({o}, {p}) does not follow ({lo}, {lp}) monotonically"
                    ));
                }
            }
            if u64::from(p) >= log_size {
                return Err(format!(
                    "entry ({o}, {p}) points past the log's {log_size} bytes"
                ));
            }
            index.entries.push((o, p));
        }
        Ok(index)
    }
}

/// Timestamp → offset, sparse.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Appends unless the timestamp does not exceed the last entry's (Kafka's
    /// `maybeAppend`; an empty index behaves as if its last timestamp were -1).
    pub fn maybe_append(&mut self, timestamp: i64, relative_offset: u32) {
        let last = self.entries.last().map_or(NO_TIMESTAMP, |&(t, _)| t);
        if timestamp > last {
            self.entries.push((timestamp, relative_offset));
        }
    }

    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    /// The offset to start searching from for the first batch with a max
    /// timestamp `>= timestamp`: the entry with the largest timestamp
    /// `<= timestamp`, or the start of the segment.
    pub fn lookup(&self, base_offset: i64, timestamp: i64) -> i64 {
        let n = self.entries.partition_point(|&(t, _)| t <= timestamp);
        if n == 0 {
            base_offset
        } else {
            base_offset + i64::from(self.entries[n - 1].1)
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_LEN);
        for &(t, o) in &self.entries {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&o.to_be_bytes());
        }
        out
    }

    /// Parses a time index file, rejecting it unless its size is a multiple of
    /// the entry size, timestamps strictly increase, offsets never decrease
    /// and every offset is below `relative_limit`.
    pub fn from_bytes(bytes: &[u8], relative_limit: Option<u64>) -> Result<TimeIndex, String> {
        if bytes.len() % TIME_ENTRY_LEN != 0 {
            return Err(format!(
                "size {} is not a multiple of {TIME_ENTRY_LEN}",
                bytes.len()
            ));
        }
        let mut index = TimeIndex::default();
        for chunk in bytes.chunks_exact(TIME_ENTRY_LEN) {
            let t = i64::from_be_bytes(chunk[0..8].try_into().expect("8 bytes"));
            let o = u32::from_be_bytes(chunk[8..12].try_into().expect("4 bytes"));
            let (lt, lo) = index.last().unwrap_or((NO_TIMESTAMP, 0));
            if t <= lt || o < lo {
                return Err(format!(
                    "entry ({t}, {o}) does not follow ({lt}, {lo}) monotonically"
                ));
            }
            if relative_limit.is_some_and(|limit| u64::from(o) >= limit) {
                return Err(format!(
                    "entry ({t}, {o}) points past the segment's records"
                ));
            }
            index.entries.push((t, o));
        }
        Ok(index)
    }
}

/// Both indexes of one segment plus the running state that decides when to
/// add entries (Kafka's `LogSegment.append`): an offset entry, and maybe a
/// time entry, once more than `index.interval.bytes` were appended since the
/// last one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentIndexer {
    pub base_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Largest batch max timestamp so far, or -1.
    pub max_timestamp: i64,
    /// Last offset of the first batch that carried `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// Last offset of the last batch that carried `max_timestamp`.
    pub last_offset_of_max_timestamp: i64,
    bytes_since_last_entry: u64,
}

impl SegmentIndexer {
    pub fn new(base_offset: i64) -> SegmentIndexer {
        SegmentIndexer {
            base_offset,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
            last_offset_of_max_timestamp: base_offset,
            bytes_since_last_entry: 0,
        }
    }

    /// Resumes from loaded indexes. The resulting state matches the state just
    /// after the batch of the last offset-index entry was indexed, except for
    /// the byte counter; the caller re-feeds that batch and everything after
    /// it through [`SegmentIndexer::resume_batch`] / [`SegmentIndexer::on_batch`].
    pub fn from_indexes(
        base_offset: i64,
        offset_index: OffsetIndex,
        time_index: TimeIndex,
    ) -> Self {
        let mut indexer = SegmentIndexer::new(base_offset);
        if let Some((t, o)) = time_index.last() {
            indexer.max_timestamp = t;
            indexer.offset_of_max_timestamp = base_offset + i64::from(o);
            indexer.last_offset_of_max_timestamp = indexer.offset_of_max_timestamp;
        }
        indexer.offset_index = offset_index;
        indexer.time_index = time_index;
        indexer
    }

    fn relative(&self, offset: i64) -> u32 {
        u32::try_from(offset - self.base_offset)
            .expect("relative offset fits in u32 (segments roll before)")
    }

    fn track_timestamp(&mut self, header: &BatchHeader) {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        if header.max_timestamp == self.max_timestamp {
            self.last_offset_of_max_timestamp = header.last_offset();
        }
    }

    /// Feeds the next batch, which starts at byte `position` of the segment.
    pub fn on_batch(&mut self, header: &BatchHeader, position: u64, interval_bytes: u32) {
        self.track_timestamp(header);
        if self.bytes_since_last_entry > u64::from(interval_bytes) {
            let relative = self.relative(header.last_offset());
            let position = u32::try_from(position).expect("segment positions fit in u32");
            self.offset_index.append(relative, position);
            let relative_max = self.relative(self.offset_of_max_timestamp);
            self.time_index
                .maybe_append(self.max_timestamp, relative_max);
            self.bytes_since_last_entry = 0;
        }
        self.bytes_since_last_entry += header.total_size() as u64;
    }

    /// Feeds the batch of the last loaded offset-index entry (already indexed)
    /// or any batch after it when resuming from loaded indexes.
    pub fn resume_batch(&mut self, header: &BatchHeader, position: u64, interval_bytes: u32) {
        if self
            .offset_index
            .last()
            .is_some_and(|(_, p)| u64::from(p) == position)
        {
            self.track_timestamp(header);
            self.bytes_since_last_entry = header.total_size() as u64;
        } else {
            self.on_batch(header, position, interval_bytes);
        }
    }

    /// When the segment stops being active, its time index gets a final entry
    /// for the segment's max timestamp, so that loading the segment later
    /// recovers the max timestamp from the file alone.
    pub fn seal(&mut self) {
        if self.max_timestamp > NO_TIMESTAMP {
            let relative = self.relative(self.offset_of_max_timestamp);
            self.time_index.maybe_append(self.max_timestamp, relative);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let mut idx = OffsetIndex::default();
        idx.append(10, 100);
        idx.append(20, 200);
        assert_eq!(idx.lookup(1000, 1005), 0);
        assert_eq!(idx.lookup(1000, 1010), 100);
        assert_eq!(idx.lookup(1000, 1019), 100);
        assert_eq!(idx.lookup(1000, 1020), 200);
        assert_eq!(idx.lookup(1000, 5000), 200);
        assert_eq!(idx.position_at_or_after(1000, 1011), Some(200));
        assert_eq!(idx.position_at_or_after(1000, 1021), None);
    }

    #[test]
    fn offset_index_bytes_round_trip_and_validation() {
        let mut idx = OffsetIndex::default();
        idx.append(1, 10);
        idx.append(5, 90);
        let bytes = idx.to_bytes();
        assert_eq!(OffsetIndex::from_bytes(&bytes, 100).unwrap(), idx);
        assert!(
            OffsetIndex::from_bytes(&bytes, 90).is_err(),
            "points past log"
        );
        assert!(
            OffsetIndex::from_bytes(&bytes[..7], 100).is_err(),
            "partial entry"
        );
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert!(
            OffsetIndex::from_bytes(&swapped, 100).is_err(),
            "not monotonic"
        );
    }

    #[test]
    fn time_index_only_grows() {
        let mut idx = TimeIndex::default();
        idx.maybe_append(-1, 0);
        assert_eq!(idx.last(), None);
        idx.maybe_append(5, 1);
        idx.maybe_append(5, 2);
        idx.maybe_append(3, 3);
        idx.maybe_append(9, 4);
        assert_eq!(idx.last(), Some((9, 4)));
        assert_eq!(idx.lookup(100, 4), 100);
        assert_eq!(idx.lookup(100, 5), 101);
        assert_eq!(idx.lookup(100, 8), 101);
        assert_eq!(idx.lookup(100, 10), 104);
        let bytes = idx.to_bytes();
        assert_eq!(TimeIndex::from_bytes(&bytes, Some(5)).unwrap(), idx);
        assert!(TimeIndex::from_bytes(&bytes, Some(4)).is_err());
        assert!(TimeIndex::from_bytes(&bytes[..13], None).is_err());
    }
}
