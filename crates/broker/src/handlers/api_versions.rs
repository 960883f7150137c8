//! ApiVersions: the APIs and versions this broker speaks.

use super::{RequestContext, SUPPORTED};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

pub fn handle(ctx: &RequestContext<'_>, request: ApiVersionsRequest) -> ApiVersionsResponse {
    if ctx.version >= 3 {
        tracing::debug!(
            peer = %ctx.peer,
            client = %request.client_software_name.as_str(),
            client_version = %request.client_software_version.as_str(),
            "client connected"
        );
    }
    // Feature fields are left at their defaults, so none of the tagged fields
    // is written: librdkafka 2.0.x fails on tagged fields it does not expect.
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_keys())
}

/// The v0 answer to a version this broker does not speak, as Kafka sends it.
pub fn unsupported_version_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys())
}
