//! A response ready to send: encoded bytes and, for Fetch, stored batches
//! named as file ranges that the connection sends from the page cache to
//! the socket with sendfile, without copying them through user space (as
//! Kafka's `FileRecords.writeTo` does on plaintext connections).
//!
//! The Fetch handler puts a placeholder (see [`Placeholders`]) where each partition's records
//! go. Its bytes are a 12-byte nonce, random per process and never sent,
//! and a 4-byte index, so they cannot be mistaken for anything else in the
//! encoded response (names, a few ints, and copied records whose senders
//! cannot know the nonce). [`Response::splice`] finds them
//! in order and replaces each, with its length prefix, by the real length
//! and the file range.

use bytes::{BufMut, Bytes, BytesMut};
use strom_log::FileSlice;

use crate::connection::ConnectionError;

/// One piece of a response on the wire.
#[derive(Debug)]
pub enum Part {
    Bytes(Bytes),
    File(FileSlice),
}

#[derive(Debug)]
pub struct Response {
    parts: Vec<Part>,
    len: usize,
}

impl From<BytesMut> for Response {
    fn from(bytes: BytesMut) -> Response {
        Response {
            len: bytes.len(),
            parts: vec![Part::Bytes(bytes.freeze())],
        }
    }
}

/// Stands in for a partition's records until the response is encoded.
#[derive(Debug)]
pub struct Placeholders {
    nonce: [u8; 12],
    slices: Vec<FileSlice>,
}

/// Length of a placeholder's bytes.
const MARKER_LEN: usize = 16;

impl Default for Placeholders {
    fn default() -> Placeholders {
        // One random nonce per process: drawing one per request would cost
        // a system call on every request.
        static NONCE: std::sync::OnceLock<[u8; 12]> = std::sync::OnceLock::new();
        let nonce = *NONCE.get_or_init(|| {
            let mut nonce = [0u8; 12];
            nonce.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..12]);
            nonce
        });
        Placeholders {
            nonce,
            slices: Vec::new(),
        }
    }
}

impl Placeholders {
    /// The bytes to encode in place of `slice`'s records.
    pub fn add(&mut self, slice: FileSlice) -> Bytes {
        let mut marker = BytesMut::with_capacity(MARKER_LEN);
        marker.put_slice(&self.nonce);
        marker.put_u32(self.slices.len() as u32);
        self.slices.push(slice);
        marker.freeze()
    }

    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }
}

impl Response {
    /// Bytes on the wire, without the 4-byte size prefix.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Replaces the placeholders in `encoded` by their file ranges. Records
    /// are `NULLABLE_BYTES` (an int32 length) in non-flexible versions and
    /// `COMPACT_NULLABLE_BYTES` (an unsigned varint of length + 1) in
    /// flexible ones.
    pub fn splice(
        encoded: BytesMut,
        placeholders: Placeholders,
        flexible: bool,
    ) -> Result<Response, ConnectionError> {
        let mut rest = encoded.freeze();
        let mut parts = Vec::with_capacity(3 * placeholders.slices.len() + 1);
        let mut len = 0;
        let prefix = |n: usize| -> BytesMut {
            let mut b = BytesMut::with_capacity(5);
            if flexible {
                put_unsigned_varint(&mut b, n as u64 + 1);
            } else {
                b.put_i32(n as i32);
            }
            b
        };
        let marker_prefix = prefix(MARKER_LEN);
        for (i, slice) in placeholders.slices.into_iter().enumerate() {
            let mut marker = [0u8; MARKER_LEN];
            marker[..12].copy_from_slice(&placeholders.nonce);
            marker[12..].copy_from_slice(&(i as u32).to_be_bytes());
            let at = memchr::memmem::find(&rest, &marker)
                .filter(|&at| at >= marker_prefix.len())
                .filter(|&at| rest[at - marker_prefix.len()..at] == marker_prefix[..])
                .ok_or_else(|| {
                    ConnectionError::Encode(format!("Fetch response lost placeholder {i}"))
                })?;
            let mut head = rest.split_to(at + MARKER_LEN);
            head.truncate(at - marker_prefix.len());
            let length = prefix(slice.len() as usize).freeze();
            len += head.len() + length.len() + slice.len() as usize;
            parts.push(Part::Bytes(head));
            parts.push(Part::Bytes(length));
            parts.push(Part::File(slice));
        }
        len += rest.len();
        if !rest.is_empty() {
            parts.push(Part::Bytes(rest));
        }
        Ok(Response { parts, len })
    }
}

fn put_unsigned_varint(buf: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}
