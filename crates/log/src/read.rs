//! Reads for the network: [`PartitionLog::read_slice`] finds *where* the
//! batches a Fetch returns are stored without reading them, so the broker
//! can send them from the file to the socket (sendfile) without copying
//! them through memory.
//!
//! Like Kafka's `LogSegment.read`, one read stays within one segment: the
//! slice starts at the batch holding the requested offset and ends at the
//! last whole batch that fits the byte budget and lies below the upper
//! bound. Finding that end reads batch headers only, starting from the
//! offset index entry nearest to it, so the cost does not grow with the
//! size of the read.

use std::fs::File;
use std::io;
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::HEADER_LEN;
use crate::error::LogError;
use crate::log::PartitionLog;
use crate::segment::{self, SegmentFiles};

/// A range of a segment's `.log` file holding whole batches. It keeps the
/// file open, so the bytes stay readable even if retention or compaction
/// removes the segment before they are sent.
#[derive(Clone, Debug)]
pub struct FileSlice {
    files: Arc<SegmentFiles>,
    position: u64,
    len: u64,
    base_offset: i64,
    next_offset: i64,
}

impl FileSlice {
    /// Where the slice starts in its file.
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Base offset of the first batch in the slice.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// The offset after the last batch in the slice.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// The open file, when the storage is the real file system (for
    /// sendfile); `None` for simulated storage.
    pub fn file(&self) -> Option<&File> {
        self.files.log.std_file()
    }

    /// The slice's bytes, read into memory.
    pub fn read(&self) -> Result<Bytes, LogError> {
        let mut buf = vec![0u8; self.len as usize];
        self.files
            .log
            .read_at(&mut buf, self.position)
            .map_err(|e| LogError::io("reading", &self.files.log_path, e))?;
        Ok(Bytes::from(buf))
    }

    /// Describes an I/O error that happened while sending the slice.
    pub fn describe_error(&self, error: io::Error) -> LogError {
        LogError::io("sending", &self.files.log_path, error)
    }
}

/// What [`PartitionLog::read_slice`] found.
#[derive(Clone, Debug)]
pub struct SliceRead {
    /// `None` when there is nothing to return (at or past the upper bound).
    pub slice: Option<FileSlice>,
    pub log_start_offset: i64,
    /// The high watermark on a single node.
    pub log_end_offset: i64,
}

impl PartitionLog {
    /// Where the whole batches starting with the one that contains `offset`
    /// are stored, within one segment. The first batch counts whole even if
    /// larger than `max_bytes` (KIP-74); further batches only while the
    /// total stays within `max_bytes`. Nothing at or beyond `upper_bound`
    /// (exclusive; `None` = log end offset) is included, nor a batch
    /// straddling it.
    pub fn read_slice(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: Option<i64>,
    ) -> Result<SliceRead, LogError> {
        let (candidates, log_start_offset, log_end_offset, upper) =
            self.read_candidates(offset, upper_bound)?;
        let mut slice = None;
        for c in candidates {
            let log = &*c.files.log;
            let path = &c.files.log_path;
            let Some((start, first)) = segment::find_batch(log, path, c.start, c.end, offset)?
            else {
                // Nothing at or after `offset` in this segment (compaction
                // may have emptied its tail): look in the next one.
                continue;
            };
            if first.last_offset() >= upper {
                break;
            }
            let limit = c.end.min(start + max_bytes.max(first.total_size()) as u64);
            // Walk headers from the last indexed batch that starts within the
            // budget and lies below `upper` (so do all batches before it).
            let walk_from = {
                let state = self.state.read();
                let s = &state.segments[state.segment_index(c.base_offset)];
                // The same file: compaction may have swapped the segment.
                Arc::ptr_eq(&s.files, &c.files)
                    .then(|| {
                        s.indexer
                            .offset_index
                            .last_position_within(s.base_offset, upper, limit)
                    })
                    .flatten()
            };
            let mut position = walk_from.filter(|&p| p > start).unwrap_or(start);
            let mut header = if position == start {
                first
            } else {
                segment::read_header(log, path, position)?
            };
            let mut next_offset;
            loop {
                let end = position + header.total_size() as u64;
                if header.last_offset() >= upper || end > limit {
                    next_offset = header.base_offset;
                    break;
                }
                position = end;
                next_offset = header.next_offset();
                if position + HEADER_LEN as u64 > limit {
                    break;
                }
                header = segment::read_header(log, path, position)?;
            }
            if position > start {
                slice = Some(FileSlice {
                    files: c.files,
                    position: start,
                    len: position - start,
                    base_offset: first.base_offset,
                    next_offset,
                });
            }
            break;
        }
        Ok(SliceRead {
            slice,
            log_start_offset,
            log_end_offset,
        })
    }
}

/// A segment range a read may take batches from.
pub(crate) struct Candidate {
    pub files: Arc<SegmentFiles>,
    pub base_offset: i64,
    /// From the offset index: at or before the batch holding the offset.
    pub start: u64,
    /// Before the first batch at or past the upper bound, or the size.
    pub end: u64,
}

impl PartitionLog {
    /// The segments a read at `offset` below `upper_bound` (exclusive;
    /// `None` = the log end offset) may take batches from, with the log
    /// start and end offsets and the effective upper bound; an offset
    /// outside the log is out of range.
    pub(crate) fn read_candidates(
        &self,
        offset: i64,
        upper_bound: Option<i64>,
    ) -> Result<(Vec<Candidate>, i64, i64, i64), LogError> {
        let state = self.state.read();
        let (log_start, log_end) = (state.log_start_offset, state.log_end_offset);
        if offset < log_start || offset > log_end {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start,
                log_end,
            });
        }
        let upper = upper_bound.map_or(log_end, |u| u.min(log_end));
        if offset >= upper {
            return Ok((Vec::new(), log_start, log_end, upper));
        }
        let first = state.segment_index(offset);
        let candidates = state.segments[first..]
            .iter()
            .take_while(|s| s.base_offset < upper)
            .enumerate()
            .map(|(i, s)| {
                let index = &s.indexer.offset_index;
                Candidate {
                    files: Arc::clone(&s.files),
                    base_offset: s.base_offset,
                    start: if i == 0 {
                        index.lookup(s.base_offset, offset)
                    } else {
                        0
                    },
                    end: index
                        .position_at_or_after(s.base_offset, upper)
                        .map_or(s.size, |p| p.min(s.size)),
                }
            })
            .collect();
        Ok((candidates, log_start, log_end, upper))
    }
}
