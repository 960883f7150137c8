//! A minimal Kafka wire client for the admin requests librdkafka has no API
//! for (DescribeTransactions, ListTransactions, DescribeProducers).
//!
//! One request per connection to the first reachable bootstrap server, at a
//! fixed version the caller picks (no ApiVersions round trip): a frame is the
//! size as an i32, the request header at the version the API needs, and the
//! body. Only `--bootstrap` is used; `-X` librdkafka properties (TLS, SASL)
//! do not apply here.

use super::common::{ClientArgs, REQUEST_TIMEOUT};
use anyhow::{bail, Context as _};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Larger responses than this are refused rather than allocated.
const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;

/// Sends `request` at `version` and decodes the response.
pub async fn request<Req: Request>(
    client: &ClientArgs,
    version: i16,
    request: &Req,
) -> anyhow::Result<Req::Response> {
    tokio::time::timeout(REQUEST_TIMEOUT, exchange(client, version, request))
        .await
        .with_context(|| format!("no response within {REQUEST_TIMEOUT:?}"))?
}

async fn exchange<Req: Request>(
    client: &ClientArgs,
    version: i16,
    request: &Req,
) -> anyhow::Result<Req::Response> {
    let mut stream = connect(&client.bootstrap).await?;
    const CORRELATION_ID: i32 = 1;
    let header = RequestHeader::default()
        .with_request_api_key(Req::KEY)
        .with_request_api_version(version)
        .with_correlation_id(CORRELATION_ID)
        .with_client_id(Some(StrBytes::from_static_str("strom-cli")));
    // Room for the size, filled in once the frame is encoded.
    let mut frame = vec![0u8; 4];
    header
        .encode(&mut frame, Req::header_version(version))
        .and_then(|()| request.encode(&mut frame, version))
        .with_context(|| format!("encoding API {} v{version}", Req::KEY))?;
    let size = i32::try_from(frame.len() - 4).context("request too large")?;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    stream
        .write_all(&frame)
        .await
        .context("sending the request")?;

    let size = stream
        .read_i32()
        .await
        .context("reading the response (the broker may not support this API version)")?;
    let size = usize::try_from(size)
        .ok()
        .filter(|s| *s <= MAX_RESPONSE_BYTES)
        .with_context(|| format!("bad response size {size}"))?;
    let mut body = vec![0u8; size];
    stream
        .read_exact(&mut body)
        .await
        .context("reading the response")?;
    let mut buf = body.as_slice();
    let header = ResponseHeader::decode(&mut buf, Req::Response::header_version(version))
        .context("decoding the response header")?;
    if header.correlation_id != CORRELATION_ID {
        bail!(
            "response for correlation id {}, expected {CORRELATION_ID}",
            header.correlation_id
        );
    }
    Req::Response::decode(&mut buf, version)
        .with_context(|| format!("decoding the API {} v{version} response", Req::KEY))
}

/// The first bootstrap server that accepts a connection.
async fn connect(bootstrap: &str) -> anyhow::Result<TcpStream> {
    let mut last_error = None;
    for address in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(err) => {
                last_error =
                    Some(anyhow::Error::new(err).context(format!("connecting to {address}")))
            }
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no bootstrap server given")))
}
