//! A raw Kafka wire client: exact bytes, for protocol edge cases.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct Wire {
    stream: TcpStream,
    correlation_id: i32,
}

impl Wire {
    pub fn connect(bootstrap: &str) -> Wire {
        let stream = TcpStream::connect(bootstrap).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Wire {
            stream,
            correlation_id: 0,
        }
    }

    /// Wraps a connected stream.
    pub fn from_stream(stream: TcpStream) -> Wire {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Wire {
            stream,
            correlation_id: 0,
        }
    }

    /// True if the broker has closed the connection already (no waiting).
    pub fn closed_now(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let mut byte = [0u8; 1];
        let closed = match self.stream.read(&mut byte) {
            Ok(n) => n == 0,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        closed
    }

    /// Encodes header + body for `Req` at `version`, without the size prefix.
    pub fn encode<Req: Request>(&mut self, version: i16, body: &Req) -> BytesMut {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(Req::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("wire-test")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, Req::header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf
    }

    pub fn send_frame(&mut self, payload: &[u8]) {
        let mut framed = BytesMut::with_capacity(payload.len() + 4);
        framed.put_i32(payload.len() as i32);
        framed.put_slice(payload);
        self.stream.write_all(&framed).unwrap();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        // The broker may already have closed the connection; that is fine.
        let _ = self.stream.write_all(bytes);
    }

    /// Reads one response frame; None if the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let size = i32::from_be_bytes(size) as usize;
        let mut body = vec![0u8; size];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    pub fn request<Req: Request>(&mut self, version: i16, body: &Req) -> Req::Response {
        let payload = self.encode(version, body);
        self.send_frame(&payload);
        let mut frame = self.read_frame().expect("response frame");
        let header =
            ResponseHeader::decode(&mut frame, Req::Response::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        Req::Response::decode(&mut frame, version).expect("decodable response")
    }

    /// True once the broker has closed the connection (EOF within the timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0))
            || {
                // A reset also counts as closed.
                matches!(self.stream.read(&mut byte), Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset)
            }
    }
}

/// Reads a big-endian i16 at `at` of a frame.
pub fn i16_at(frame: &Bytes, at: usize) -> i16 {
    (&frame[at..]).get_i16()
}
