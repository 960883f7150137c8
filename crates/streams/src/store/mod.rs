//! State stores: key-value and window stores over a byte [`Backend`], each
//! write also sent to the store's changelog topic (partition = the task's
//! partition), from which the store is restored.
//!
//! Window stores keep `len(key) | key | start | end` keys (u32 and i64
//! big-endian, the i64s with the sign bit flipped so that they sort), so one
//! key's windows are contiguous and ordered by start. Stream–stream join
//! buffers and sliding-window record buffers use the same layout with the
//! record's timestamp and a sequence number in place of start and end.

pub mod backend;

use crate::error::Result;
use backend::{Backend, KeyValue};
use std::sync::Arc;

/// Where produced records go: the Kafka producer, or the test driver.
pub(crate) trait Collector: Send + Sync {
    fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<()>;
}

/// What kind of store: decides the changelog topic's cleanup policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    KeyValue,
    /// Windowed data kept for `retention_ms` (changelog `compact,delete`).
    Window {
        retention_ms: i64,
    },
}

/// One store of one task.
pub(crate) struct Store {
    pub name: String,
    pub backend: Arc<dyn Backend>,
    /// `(topic, partition)`; None when logging is off.
    pub changelog: Option<(String, i32)>,
    pub collector: Arc<dyn Collector>,
}

impl Store {
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.backend.get(key)
    }

    pub fn put(&self, key: &[u8], value: &[u8], timestamp: i64) -> Result<()> {
        self.backend.put(key, value)?;
        if let Some((topic, partition)) = &self.changelog {
            self.collector
                .send(topic, Some(*partition), Some(key), Some(value), timestamp)?;
        }
        Ok(())
    }

    pub fn delete(&self, key: &[u8], timestamp: i64) -> Result<()> {
        self.backend.delete(key)?;
        if let Some((topic, partition)) = &self.changelog {
            self.collector
                .send(topic, Some(*partition), Some(key), None, timestamp)?;
        }
        Ok(())
    }

    pub fn range(&self, from: &[u8], to: Option<&[u8]>) -> Result<Vec<KeyValue>> {
        self.backend.range(from, to)
    }

    /// Entries for one window-store key with start (or timestamp) in
    /// `from..=to`.
    pub fn fetch_windows(
        &self,
        key: &[u8],
        from: i64,
        to: i64,
    ) -> Result<Vec<(WindowKey, Vec<u8>)>> {
        let (lo, hi) = window_range(key, from, to);
        Ok(self
            .backend
            .range(&lo, hi.as_deref())?
            .into_iter()
            .filter_map(|(k, v)| WindowKey::decode(&k).map(|wk| (wk, v)))
            .collect())
    }
}

/// Order-preserving i64 encoding.
pub(crate) fn enc_time(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn dec_time(bytes: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

/// A decoded window-store key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WindowKey {
    pub key: Vec<u8>,
    pub start: i64,
    pub end: i64,
}

impl WindowKey {
    pub fn encode(key: &[u8], start: i64, end: i64) -> Vec<u8> {
        let mut out = key_prefix(key);
        out.extend_from_slice(&enc_time(start));
        out.extend_from_slice(&enc_time(end));
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<WindowKey> {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let key = bytes.get(4..4 + len)?.to_vec();
        let times = bytes.get(4 + len..)?;
        if times.len() != 16 {
            return None;
        }
        Some(WindowKey {
            key,
            start: dec_time(&times[..8]),
            end: dec_time(&times[8..]),
        })
    }
}

pub(crate) fn key_prefix(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.len() + 16);
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The backend range of one key's windows with start in `from..=to`.
pub(crate) fn window_range(key: &[u8], from: i64, to: i64) -> (Vec<u8>, Option<Vec<u8>>) {
    let prefix = key_prefix(key);
    let mut lo = prefix.clone();
    lo.extend_from_slice(&enc_time(from));
    let hi = if to == i64::MAX {
        prefix_end(&prefix)
    } else {
        let mut hi = prefix;
        hi.extend_from_slice(&enc_time(to + 1));
        Some(hi)
    };
    (lo, hi)
}

/// The smallest byte string greater than every string starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keys_sort_by_key_then_time() {
        let a = WindowKey::encode(b"k", -5, 0);
        let b = WindowKey::encode(b"k", 3, 10);
        let c = WindowKey::encode(b"k", 1_000_000, 1_000_010);
        let d = WindowKey::encode(b"ka", -100, 0);
        assert!(a < b && b < c);
        assert!(c < d || WindowKey::decode(&d).unwrap().key != b"k");
        assert_eq!(
            WindowKey::decode(&b).unwrap(),
            WindowKey {
                key: b"k".to_vec(),
                start: 3,
                end: 10
            }
        );
        let (lo, hi) = window_range(b"k", 0, 3);
        assert!(lo.as_slice() <= b.as_slice() && b.as_slice() < hi.as_deref().unwrap());
        assert!(a < lo);
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
    }
}
