//! One client connection: length-prefixed frames in, responses out, one
//! request at a time in arrival order (as Kafka processes a connection).

use crate::handlers;
use crate::metrics::RequestTimes;
use crate::server::BrokerContext;
use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;

/// Why a connection is closed rather than answered.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("frame of {size} bytes exceeds socket.request.max.bytes ({max})")]
    FrameTooLarge { size: i64, max: usize },
    #[error("negative frame size {0}")]
    NegativeFrameSize(i32),
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

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
async fn read_frame(
    stream: &mut (impl AsyncReadExt + Unpin),
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<BytesMut>, ConnectionError> {
    let size = match stream.read_i32().await {
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
    buf.clear();
    buf.reserve(size);
    while buf.len() < size {
        let n = (&mut *stream)
            .take((size - buf.len()) as u64)
            .read_buf(buf)
            .await?;
        if n == 0 {
            return Err(ConnectionError::Malformed(format!(
                "connection closed {} bytes into a {size}-byte frame",
                buf.len()
            )));
        }
    }
    Ok(Some(buf.split_to(size)))
}

pub async fn serve(context: Arc<BrokerContext>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    let mut shutdown = context.shutdown.clone();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let max = context.config.socket_request_max_bytes;
    tracing::debug!(%peer, "connection opened");
    let _open = context.metrics.connection_opened();
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, &mut buf, max) => frame,
            _ = shutdown.changed() => break,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame.freeze(),
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
        let received = Instant::now();
        let header = peek_header(&frame);
        let api = header.map(|(key, _, _)| key);
        let dispatched = Instant::now();
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
                let result = async {
                    writer.write_u32(response.len() as u32).await?;
                    writer.write_all(&response).await?;
                    writer.flush().await
                }
                .await;
                if let Err(e) = result {
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

/// Reads `api_key`, `api_version` and `correlation_id` without decoding the
/// rest, for answering requests whose body cannot be decoded.
pub fn peek_header(frame: &[u8]) -> Option<(i16, i16, i32)> {
    if frame.len() < 8 {
        return None;
    }
    let mut b = frame;
    Some((b.get_i16(), b.get_i16(), b.get_i32()))
}
