//! A small Kafka wire client for what librdkafka cannot do: join a group
//! with protocol type `connect`, and delete committed offsets. One
//! connection, one request at a time (as brokers answer them in order),
//! versions negotiated with ApiVersions.

use crate::error::{ConnectError, Result};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FindCoordinatorRequest, RequestHeader,
    ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

pub struct Connection {
    stream: TcpStream,
    correlation_id: i32,
    versions: HashMap<i16, (i16, i16)>,
    pub address: String,
}

impl Connection {
    /// Connects to the first reachable of `bootstrap` (`HOST:PORT,...`).
    pub async fn connect_any(bootstrap: &str) -> Result<Connection> {
        let mut last = None;
        for address in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match Self::connect(address).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ConnectError::WorkerConfig("no bootstrap servers".into())))
    }

    pub async fn connect(address: &str) -> Result<Connection> {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(address))
            .await
            .map_err(|_| ConnectError::retriable(format!("connecting to {address} timed out")))?
            .map_err(|e| ConnectError::retriable(format!("connecting to {address}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let mut connection = Connection {
            stream,
            correlation_id: 0,
            versions: HashMap::new(),
            address: address.to_string(),
        };
        let response: ApiVersionsResponse = connection
            .send_at(0, &ApiVersionsRequest::default(), Duration::from_secs(10))
            .await?;
        if response.error_code != 0 {
            return Err(ConnectError::Protocol(format!(
                "ApiVersions from {address}: error {}",
                response.error_code
            )));
        }
        for api in response.api_keys {
            connection
                .versions
                .insert(api.api_key, (api.min_version, api.max_version));
        }
        Ok(connection)
    }

    /// The highest version both sides support, up to `ours`.
    pub fn version(&self, key: ApiKey, ours: i16) -> Result<i16> {
        let (min, max) = self.versions.get(&(key as i16)).copied().ok_or_else(|| {
            ConnectError::Protocol(format!("the broker does not support {key:?}"))
        })?;
        let version = ours.min(max);
        if version < min {
            return Err(ConnectError::Protocol(format!(
                "the broker supports {key:?} v{min}-v{max}, this client up to v{ours}"
            )));
        }
        Ok(version)
    }

    /// Sends `request` at the best version up to `ours`.
    pub async fn send<Req: Request>(
        &mut self,
        request: &Req,
        ours: i16,
        timeout: Duration,
    ) -> Result<(i16, Req::Response)> {
        let key = ApiKey::try_from(Req::KEY)
            .map_err(|_| ConnectError::Protocol(format!("unknown API key {}", Req::KEY)))?;
        let version = self.version(key, ours)?;
        let response = self.send_at(version, request, timeout).await?;
        Ok((version, response))
    }

    async fn send_at<Req: Request>(
        &mut self,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> Result<Req::Response> {
        match tokio::time::timeout(timeout, self.exchange(version, request)).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::retriable(format!(
                "no answer from {} to API {} within {timeout:?}",
                self.address,
                Req::KEY
            ))),
        }
    }

    async fn exchange<Req: Request>(
        &mut self,
        version: i16,
        request: &Req,
    ) -> Result<Req::Response> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let header = RequestHeader::default()
            .with_request_api_key(Req::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("strom-connect")));
        let mut frame = vec![0u8; 4];
        header
            .encode(&mut frame, Req::header_version(version))
            .and_then(|()| request.encode(&mut frame, version))
            .map_err(|e| {
                ConnectError::Protocol(format!("encoding API {} v{version}: {e}", Req::KEY))
            })?;
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        let io =
            |e: std::io::Error| ConnectError::retriable(format!("connection to the broker: {e}"));
        self.stream.write_all(&frame).await.map_err(io)?;
        let size = self.stream.read_i32().await.map_err(io)?;
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| ConnectError::Protocol(format!("bad response size {size}")))?;
        let mut body = vec![0u8; size];
        self.stream.read_exact(&mut body).await.map_err(io)?;
        let mut buf = bytes::Bytes::from(body);
        let header = ResponseHeader::decode(&mut buf, Req::Response::header_version(version))
            .map_err(|e| ConnectError::Protocol(format!("decoding a response header: {e}")))?;
        if header.correlation_id != correlation_id {
            return Err(ConnectError::Protocol(format!(
                "response for correlation id {}, expected {correlation_id}",
                header.correlation_id
            )));
        }
        Req::Response::decode(&mut buf, version).map_err(|e| {
            ConnectError::Protocol(format!("decoding API {} v{version}: {e}", Req::KEY))
        })
    }
}

/// Finds the coordinator of `group` and connects to it.
pub async fn connect_to_coordinator(bootstrap: &str, group: &str) -> Result<Connection> {
    let mut connection = Connection::connect_any(bootstrap).await?;
    let version = connection.version(ApiKey::FindCoordinator, 4)?;
    let request = if version >= 4 {
        FindCoordinatorRequest::default()
            .with_coordinator_keys(vec![StrBytes::from_string(group.to_string())])
    } else {
        FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string()))
    }
    .with_key_type(0);
    let (version, response) = connection
        .send(&request, version, Duration::from_secs(10))
        .await?;
    let (error, host, port) = if version >= 4 {
        let c = response
            .coordinators
            .first()
            .ok_or_else(|| ConnectError::Protocol("FindCoordinator: no coordinator".into()))?;
        (c.error_code, c.host.to_string(), c.port)
    } else {
        (
            response.error_code,
            response.host.to_string(),
            response.port,
        )
    };
    if error != 0 {
        return Err(ConnectError::retriable(format!(
            "FindCoordinator for {group}: {}",
            error_name(error)
        )));
    }
    let address = format!("{host}:{port}");
    if address == connection.address {
        return Ok(connection);
    }
    Connection::connect(&address).await
}

/// A Kafka error code's name, for messages.
pub fn error_name(code: i16) -> String {
    let error = kafka_protocol::ResponseError::try_from_code(code);
    match error {
        Some(e) => format!("{e:?} ({code})"),
        None => format!("error {code}"),
    }
}
