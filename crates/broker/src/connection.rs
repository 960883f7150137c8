//! One client connection: length-prefixed frames in, responses out, one
//! request at a time in arrival order (as Kafka processes a connection).
//!
//! Memory: a frame's bytes are taken from the broker-wide request memory
//! pool (`queued.max.request.bytes`) before its body is read, and given back
//! once it is answered. While the pool is empty the connection stops reading
//! its socket, so overload turns into TCP backpressure, not into memory. The
//! read buffer grows with the bytes that actually arrive, never by a size a
//! client merely claims. A request must arrive whole within
//! `connections.max.idle.ms` of the previous answer (or of connecting), which
//! also bounds slow partial frames (slowloris).

use crate::handlers;
use crate::metrics::RequestTimes;
use crate::response::{Part, Response};
use crate::server::BrokerContext;
use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout_at, Duration};

/// Why a connection is closed rather than answered.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("frame of {size} bytes exceeds socket.request.max.bytes ({max})")]
    FrameTooLarge { size: i64, max: usize },
    #[error("negative frame size {0}")]
    NegativeFrameSize(i32),
    /// No whole request arrived within `connections.max.idle.ms`.
    #[error("no complete request within connections.max.idle.ms ({0:?})")]
    Idle(std::time::Duration),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of API {api}")]
    UnsupportedVersion { api: String, version: i16 },
    /// A response Strom built cannot be encoded at the negotiated version:
    /// a bug in Strom, not the client.
    #[error("cannot encode response (a Strom bug): {0}")]
    Encode(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Bytes read per step while a frame's body arrives.
const READ_CHUNK: usize = 64 * 1024;

/// A frame read whole, holding its share of the request memory pool until
/// it is dropped (after the request was answered).
pub struct Frame {
    pub bytes: BytesMut,
    pub permit: Option<OwnedSemaphorePermit>,
    /// How long the frame waited for request memory before its body was
    /// read (counted as queue time).
    pub memory_wait: std::time::Duration,
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
/// `memory` is the request memory pool (`queued.max.request.bytes`); the
/// frame's size is taken from it before the body is read. The whole frame
/// must arrive within `idle`, not counting the wait for memory.
pub async fn read_frame(
    stream: &mut (impl AsyncReadExt + Unpin),
    buf: &mut BytesMut,
    max: usize,
    memory: Option<&Arc<Semaphore>>,
    idle: Duration,
) -> Result<Option<Frame>, ConnectionError> {
    let mut deadline = tokio::time::Instant::now() + idle;
    let timed_out = |_| ConnectionError::Idle(idle);
    let size = match timeout_at(deadline, stream.read_i32())
        .await
        .map_err(timed_out)?
    {
        Ok(size) => size,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if size < 0 {
        return Err(ConnectionError::NegativeFrameSize(size));
    }
    if size as usize > max {
        return Err(ConnectionError::FrameTooLarge {
            size: size as i64,
            max,
        });
    }
    let size = size as usize;
    let waiting = tokio::time::Instant::now();
    let permit = match memory {
        // `size` fits u32: it is a non-negative i32.
        Some(pool) if size > 0 => Some(
            Arc::clone(pool)
                .acquire_many_owned(size as u32)
                .await
                .map_err(|_| ConnectionError::Malformed("request memory pool closed".into()))?,
        ),
        _ => None,
    };
    let memory_wait = waiting.elapsed();
    deadline += memory_wait;
    buf.clear();
    while buf.len() < size {
        let want = (size - buf.len()).min(READ_CHUNK);
        buf.reserve(want);
        let mut limited = (&mut *stream).take(want as u64);
        let n = timeout_at(deadline, limited.read_buf(buf))
            .await
            .map_err(timed_out)??;
        if n == 0 {
            return Err(ConnectionError::Malformed(format!(
                "connection closed {} bytes into a {size}-byte frame",
                buf.len()
            )));
        }
    }
    let bytes = buf.split_to(size);
    if buf.capacity() > READ_CHUNK {
        // Give a big frame's buffer back instead of keeping it per connection.
        *buf = BytesMut::new();
    }
    Ok(Some(Frame {
        bytes,
        permit,
        memory_wait,
    }))
}

pub async fn serve(context: Arc<BrokerContext>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    let mut shutdown = context.shutdown.clone();
    let mut buf = BytesMut::new();
    let max = context.config.socket_request_max_bytes;
    let idle = context.config.connections_max_idle;
    let memory = context.request_memory.as_ref();
    tracing::debug!(%peer, "connection opened");
    let _open = context.metrics.connection_opened();
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, &mut buf, max, memory, idle) => frame,
            _ = shutdown.changed() => break,
        };
        // `_permit` gives the frame's memory back once it is answered.
        let (frame, _permit, memory_wait) = match frame {
            Ok(Some(Frame {
                bytes,
                permit,
                memory_wait,
            })) => (bytes.freeze(), permit, memory_wait),
            Ok(None) => break,
            Err(ConnectionError::Io(e)) => {
                tracing::debug!(%peer, error = %e, "connection error");
                break;
            }
            Err(e) => {
                context.metrics.connection_error(peer, None, &e);
                break;
            }
        };
        // The wait for request memory happened before the body was read;
        // it counts as the request's queue time (the broker held it back).
        let dispatched = Instant::now();
        let received = dispatched.checked_sub(memory_wait).unwrap_or(dispatched);
        let header = peek_header(&frame);
        let api = header.map(|(key, _, _)| key);
        let result = handlers::handle(&context, frame, peer).await;
        let processed = Instant::now();
        let mut times = RequestTimes {
            received,
            dispatched,
            processed,
            sent: None,
        };
        match result {
            Ok(Some(response)) => {
                if let Err(e) = write_response(&mut writer, &response).await {
                    context.metrics.request_done(header, times);
                    tracing::debug!(%peer, error = %e, "write failed");
                    break;
                }
                times.sent = Some(Instant::now());
                context.metrics.request_done(header, times);
            }
            Ok(None) => context.metrics.request_done(header, times),
            Err(e) => {
                context.metrics.request_done(header, times);
                // Logged there, rate-limited (bad input can arrive in floods).
                context.metrics.connection_error(peer, api, &e);
                break;
            }
        }
    }
    tracing::debug!(%peer, "connection closed");
}

/// Sends one response with its size prefix; file ranges go from the page
/// cache to the socket with sendfile.
pub async fn write_response(
    writer: &mut BufWriter<OwnedWriteHalf>,
    response: &Response,
) -> std::io::Result<()> {
    writer.write_u32(response.len() as u32).await?;
    for part in response.parts() {
        match part {
            Part::Bytes(bytes) => writer.write_all(bytes).await?,
            Part::File(slice) => {
                writer.flush().await?;
                let stream: &TcpStream = writer.get_ref().as_ref();
                match slice.file() {
                    Some(file) => send_file(stream, file, slice.position(), slice.len()).await?,
                    // Not from real files (the fetch handler copies those).
                    None => {
                        let bytes = slice
                            .read()
                            .map_err(|e| std::io::Error::other(e.to_string()))?;
                        writer.write_all(&bytes).await?;
                    }
                }
            }
        }
    }
    writer.flush().await
}

/// Sends `len` bytes of `file` from `position` with sendfile(2), waiting
/// for the socket whenever its buffer is full. A file that ends early (it
/// cannot, while the range names whole stored batches) is an error: the
/// size prefix is already sent, so the connection must close.
async fn send_file(
    stream: &TcpStream,
    file: &std::fs::File,
    mut position: u64,
    len: u64,
) -> std::io::Result<()> {
    let end = position + len;
    while position < end {
        stream.writable().await?;
        // sendfile moves at most 0x7ffff000 bytes per call.
        let want = (end - position).min(1 << 30) as usize;
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, file, Some(&mut position), want)
                .map_err(std::io::Error::from)
        });
        match sent {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "log file ended before the fetched range was sent",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads `api_key`, `api_version` and `correlation_id` without decoding the
/// rest, for answering requests whose body cannot be decoded.
pub fn peek_header(frame: &[u8]) -> Option<(i16, i16, i32)> {
    if frame.len() < 8 {
        return None;
    }
    let mut b = frame;
    Some((b.get_i16(), b.get_i16(), b.get_i32()))
}
