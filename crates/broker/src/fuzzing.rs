//! Bodies of the broker's fuzz targets (`fuzz/` runs them under cargo-fuzz;
//! `tests/fuzz_corpus.rs` replays the committed corpus with plain `cargo
//! test`). Each takes arbitrary bytes and panics only on a bug.
//!
//! - [`frames`]: the framing of a connection ([`crate::connection::read_frame`])
//!   over a byte stream delivered in fuzzer-chosen pieces;
//! - [`request`]: the request decoder of every API key and version in
//!   [`crate::handlers::SUPPORTED`] (the first two bytes pick one, the rest
//!   is the frame after its API key and version).
//!
//! Both also check that no input makes the broker commit memory beyond
//! [`commit_bound`] (counted by the allocator, see [`crate::alloc`]).

use crate::connection::{read_frame, ConnectionError};
use crate::handlers::{decode_request, SUPPORTED};
use bytes::{BufMut, Bytes, BytesMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// The most the decoders may commit for an input of `len` bytes: each
/// nested array may reserve just under [`crate::alloc::LARGE_ALLOCATION`]
/// for a hostile count (larger reservations are address space only), plus
/// what decoded elements take, a bounded multiple of the input.
pub fn commit_bound(len: usize) -> usize {
    4 * crate::alloc::LARGE_ALLOCATION + 64 * len + (1 << 20)
}

/// Starts measuring; returns the bytes committed now.
fn start_measuring() -> usize {
    crate::alloc::reset_peak();
    crate::alloc::stats().committed
}

fn check_commit(baseline: usize, len: usize, what: &str) {
    let used = crate::alloc::stats()
        .peak_committed
        .saturating_sub(baseline);
    assert!(
        used <= commit_bound(len),
        "{what}: a {len}-byte input committed {used} bytes (bound {})",
        commit_bound(len)
    );
}

/// A reader that hands out its bytes in pieces of the given sizes.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: std::iter::Cycle<std::slice::Iter<'a, u8>>,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let piece = usize::from(*self.sizes.next().unwrap_or(&255)).max(1);
        let n = piece.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

/// Framing: `data[0]` is the frame size limit in KiB, `data[1..9]` the
/// sizes of the pieces the stream arrives in, the rest is the stream. Every
/// frame read must have the size its prefix claimed, within the limit; the
/// buffer must grow only with bytes that arrived.
pub fn frames(data: &[u8]) {
    if data.len() < 9 {
        return;
    }
    let max = (usize::from(data[0]) + 1) * 1024;
    let sizes = &data[1..9];
    let stream = &data[9..];
    let memory = Arc::new(tokio::sync::Semaphore::new(max));
    let baseline = start_measuring();
    runtime().block_on(async {
        let mut reader = Pieces {
            data: stream,
            sizes: sizes.iter().cycle(),
        };
        let mut buf = BytesMut::new();
        let mut consumed = 0usize;
        loop {
            let idle = std::time::Duration::from_secs(5);
            match read_frame(&mut reader, &mut buf, max, Some(&memory), idle).await {
                Ok(Some(frame)) => {
                    let size = frame.bytes.len();
                    assert!(
                        size <= max,
                        "a {size}-byte frame passed the {max}-byte limit"
                    );
                    let claimed = i32::from_be_bytes(
                        stream[consumed..consumed + 4].try_into().expect("4 bytes"),
                    );
                    assert_eq!(claimed as usize, size, "frame size differs from its prefix");
                    assert_eq!(&frame.bytes[..], &stream[consumed + 4..consumed + 4 + size]);
                    consumed += 4 + size;
                }
                Ok(None) => break,
                Err(
                    ConnectionError::FrameTooLarge { .. }
                    | ConnectionError::NegativeFrameSize(_)
                    | ConnectionError::Malformed(_)
                    | ConnectionError::Io(_),
                ) => break,
                Err(e) => panic!("unexpected framing error: {e}"),
            }
            assert!(
                buf.capacity() <= 2 * 64 * 1024 + stream.len(),
                "the read buffer grew to {} for a {}-byte stream",
                buf.capacity(),
                stream.len()
            );
        }
        assert_eq!(
            memory.available_permits(),
            max,
            "frame memory was not given back"
        );
    });
    check_commit(baseline, data.len(), "framing");
}

/// The request decoder: `data[0]` picks an entry of [`SUPPORTED`],
/// `data[1]` a version in its range; the rest follows the API key and
/// version in the frame (correlation id, client id, body). Decoding either
/// fails cleanly or yields a request; memory stays within [`commit_bound`].
pub fn request(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let (api_key, min, max) = SUPPORTED[usize::from(data[0]) % SUPPORTED.len()];
    let span = (max - min + 1) as u8;
    let version = min + i16::from(data[1] % span);
    let mut frame = BytesMut::with_capacity(data.len() + 2);
    frame.put_i16(api_key as i16);
    frame.put_i16(version);
    frame.put_slice(&data[2..]);
    let baseline = start_measuring();
    let decoded = decode_request(api_key, version, Bytes::from(frame));
    check_commit(baseline, data.len(), &format!("{api_key:?} v{version}"));
    drop(decoded);
}

/// A corpus input for [`request`] that selects `api_key` at `version`
/// (for seeding the corpus from real requests).
pub fn request_input(
    api_key: kafka_protocol::messages::ApiKey,
    version: i16,
    rest: &[u8],
) -> Vec<u8> {
    let index = SUPPORTED
        .iter()
        .position(|(k, _, _)| *k == api_key)
        .expect("a supported API");
    let (_, min, _) = SUPPORTED[index];
    let mut out = vec![index as u8, (version - min) as u8];
    out.extend_from_slice(rest);
    out
}
