//! The REST API, in Kafka Connect's shape (default port 8083). Errors are
//! JSON `{"error_code": HTTP status, "message": "..."}`; an invalid
//! connector config is a 400 whose message names every invalid field. The
//! OpenAPI description is served at `/openapi.json`.

use crate::error::ConnectError;
use crate::runtime::herder::Herder;
use crate::runtime::store::TargetState;
use crate::sdk::config::ConfigMap;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The OpenAPI 3 description of this API.
pub const OPENAPI: &str = include_str!("../../../docs/connect-openapi.json");

/// Every route, for the OpenAPI consistency test.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/connectors"),
    ("POST", "/connectors"),
    ("GET", "/connectors/{name}"),
    ("DELETE", "/connectors/{name}"),
    ("GET", "/connectors/{name}/config"),
    ("PUT", "/connectors/{name}/config"),
    ("PATCH", "/connectors/{name}/config"),
    ("GET", "/connectors/{name}/status"),
    ("POST", "/connectors/{name}/restart"),
    ("PUT", "/connectors/{name}/pause"),
    ("PUT", "/connectors/{name}/resume"),
    ("PUT", "/connectors/{name}/stop"),
    ("GET", "/connectors/{name}/tasks"),
    ("GET", "/connectors/{name}/tasks/{task}/status"),
    ("POST", "/connectors/{name}/tasks/{task}/restart"),
    ("GET", "/connectors/{name}/offsets"),
    ("PATCH", "/connectors/{name}/offsets"),
    ("DELETE", "/connectors/{name}/offsets"),
    ("GET", "/connector-plugins"),
    ("GET", "/connector-plugins/{plugin}/config"),
    ("PUT", "/connector-plugins/{plugin}/config/validate"),
];

/// An error answer.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({"error_code": self.0.as_u16(), "message": self.1})),
        )
            .into_response()
    }
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> ApiError {
        let status = match &e {
            ConnectError::InvalidConfig(_)
            | ConnectError::BadRequest(_)
            | ConnectError::Conversion(_)
            | ConnectError::Transform(_) => StatusCode::BAD_REQUEST,
            ConnectError::UnknownConnector(_) | ConnectError::UnknownTask(_) => {
                StatusCode::NOT_FOUND
            }
            ConnectError::ConnectorExists(_) | ConnectError::Conflict(_) => StatusCode::CONFLICT,
            ConnectError::ShuttingDown | ConnectError::Retriable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &e {
            ConnectError::UnknownConnector(name) => format!("Connector {name} not found"),
            ConnectError::UnknownTask(id) => format!("Task {id} not found"),
            ConnectError::ConnectorExists(name) => format!("Connector {name} already exists"),
            ConnectError::InvalidConfig(_) => {
                let text = e.to_string();
                let text = text.replacen("connector configuration", "Connector configuration", 1);
                format!("{text}\nYou can also find the above list of errors at the endpoint `/connector-plugins/{{connectorType}}/config/validate`")
            }
            other => other.to_string(),
        };
        ApiError(status, message)
    }
}

type ApiResult<T = Response> = Result<T, ApiError>;
type Shared = State<Arc<Herder>>;

pub fn router(herder: Arc<Herder>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .route("/connectors", get(list_connectors).post(create_connector))
        .route(
            "/connectors/{name}",
            get(get_connector).delete(delete_connector),
        )
        .route(
            "/connectors/{name}/config",
            get(get_config).put(put_config).patch(patch_config),
        )
        .route("/connectors/{name}/status", get(get_status))
        .route("/connectors/{name}/restart", post(restart_connector))
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
        .route("/connectors/{name}/stop", put(stop))
        .route("/connectors/{name}/tasks", get(get_tasks))
        .route(
            "/connectors/{name}/tasks/{task}/status",
            get(get_task_status),
        )
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            post(restart_task),
        )
        .route(
            "/connectors/{name}/offsets",
            get(get_offsets).patch(patch_offsets).delete(delete_offsets),
        )
        .route("/connector-plugins", get(list_plugins))
        .route("/connector-plugins/{plugin}/config", get(plugin_config))
        .route(
            "/connector-plugins/{plugin}/config/validate",
            put(validate_config),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(herder)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("HTTP 404 Not Found: {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("HTTP 405 Method Not Allowed: {method} {}", uri.path()),
    )
}

fn parse_json(body: &Bytes) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("Invalid JSON in the request body: {e}"),
        )
    })
}

/// A JSON object of strings (numbers and booleans are accepted as their text).
fn config_map(value: &Value, what: &str) -> ApiResult<ConfigMap> {
    let object = value.as_object().ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("{what} must be a JSON object"),
        )
    })?;
    let mut out = ConfigMap::new();
    for (k, v) in object {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            _ => {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("{what}: the value of {k} must be a string"),
                ))
            }
        };
        out.insert(k.clone(), text);
    }
    Ok(out)
}

fn query_values(query: &Option<String>, key: &str) -> Vec<String> {
    query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
        .collect()
}

fn query_bool(query: &Option<String>, key: &str) -> bool {
    query_values(query, key)
        .last()
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn json_response(status: StatusCode, value: impl serde::Serialize) -> Response {
    (status, Json(value)).into_response()
}

async fn root(State(herder): Shared) -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "commit": "strom",
            "kafka_cluster_id": herder.kafka_cluster_id().await,
        }),
    )
}

async fn health() -> Response {
    json_response(
        StatusCode::OK,
        json!({"status": "healthy", "message": "Worker has completed startup and is ready to handle requests."}),
    )
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn list_connectors(State(herder): Shared, RawQuery(query): RawQuery) -> ApiResult {
    let expand = query_values(&query, "expand");
    let names = herder.connector_names();
    if expand.is_empty() {
        return Ok(json_response(StatusCode::OK, names));
    }
    let mut out = serde_json::Map::new();
    for name in names {
        let mut entry = serde_json::Map::new();
        if expand.iter().any(|e| e == "status") {
            if let Ok(status) = herder.connector_status(&name) {
                entry.insert("status".into(), serde_json::to_value(status).expect("JSON"));
            }
        }
        if expand.iter().any(|e| e == "info") {
            if let Ok(info) = herder.connector_info(&name) {
                entry.insert("info".into(), serde_json::to_value(info).expect("JSON"));
            }
        }
        out.insert(name, Value::Object(entry));
    }
    Ok(json_response(StatusCode::OK, out))
}

async fn create_connector(State(herder): Shared, body: Bytes) -> ApiResult {
    let body = parse_json(&body)?;
    let config = body
        .get("config")
        .ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                "the request body must have \"config\"".into(),
            )
        })
        .and_then(|c| config_map(c, "config"))?;
    let name = match body.get("name") {
        Some(Value::String(n)) => n.clone(),
        None | Some(Value::Null) => config.get("name").cloned().ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                "the request body must have \"name\"".into(),
            )
        })?,
        Some(_) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "\"name\" must be a string".into(),
            ))
        }
    };
    let initial = match body.get("initial_state").and_then(Value::as_str) {
        None => TargetState::Started,
        Some(s) if s.eq_ignore_ascii_case("RUNNING") => TargetState::Started,
        Some(s) if s.eq_ignore_ascii_case("PAUSED") => TargetState::Paused,
        Some(s) if s.eq_ignore_ascii_case("STOPPED") => TargetState::Stopped,
        Some(other) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("initial_state must be RUNNING, PAUSED or STOPPED, got {other}"),
            ))
        }
    };
    let info = herder.create_connector(&name, config, initial).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/connectors/{name}"))],
        Json(info),
    )
        .into_response())
}

async fn get_connector(State(herder): Shared, Path(name): Path<String>) -> ApiResult {
    Ok(json_response(StatusCode::OK, herder.connector_info(&name)?))
}

async fn delete_connector(State(herder): Shared, Path(name): Path<String>) -> ApiResult {
    herder.delete_connector(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_config(State(herder): Shared, Path(name): Path<String>) -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        herder.connector_info(&name)?.config,
    ))
}

async fn put_config(State(herder): Shared, Path(name): Path<String>, body: Bytes) -> ApiResult {
    let config = config_map(&parse_json(&body)?, "the request body")?;
    let (created, info) = herder.put_connector_config(&name, config).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, info))
}

async fn patch_config(State(herder): Shared, Path(name): Path<String>, body: Bytes) -> ApiResult {
    let body = parse_json(&body)?;
    let object = body.as_object().ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "the request body must be a JSON object".into(),
        )
    })?;
    let mut patch = BTreeMap::new();
    for (k, v) in object {
        let value = match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("the value of {k} must be a string or null"),
                ))
            }
        };
        patch.insert(k.clone(), value);
    }
    Ok(json_response(
        StatusCode::OK,
        herder.patch_connector_config(&name, patch).await?,
    ))
}

async fn get_status(State(herder): Shared, Path(name): Path<String>) -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        herder.connector_status(&name)?,
    ))
}

async fn restart_connector(
    State(herder): Shared,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let include_tasks = query_bool(&query, "includeTasks");
    let only_failed = query_bool(&query, "onlyFailed");
    let status = herder
        .restart_connector(&name, include_tasks, only_failed)
        .await?;
    if !include_tasks && !only_failed {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(json_response(StatusCode::ACCEPTED, status))
}

async fn target(herder: &Herder, name: &str, state: TargetState) -> ApiResult {
    herder.set_target_state(name, state).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn pause(State(herder): Shared, Path(name): Path<String>) -> ApiResult {
    target(&herder, &name, TargetState::Paused).await
}

async fn resume(State(herder): Shared, Path(name): Path<String>) -> ApiResult {
    target(&herder, &name, TargetState::Started).await
}

async fn stop(State(herder): Shared, Path(name): Path<String>) -> ApiResult {
    target(&herder, &name, TargetState::Stopped).await
}

async fn get_tasks(State(herder): Shared, Path(name): Path<String>) -> ApiResult {
    Ok(json_response(StatusCode::OK, herder.task_configs(&name)?))
}

fn task_number(name: &str, task: &str) -> ApiResult<u32> {
    task.parse()
        .map_err(|_| ConnectError::UnknownTask(format!("{name}-{task}")).into())
}

async fn get_task_status(
    State(herder): Shared,
    Path((name, task)): Path<(String, String)>,
) -> ApiResult {
    let task = task_number(&name, &task)?;
    Ok(json_response(
        StatusCode::OK,
        herder.task_status(&name, task)?,
    ))
}

async fn restart_task(
    State(herder): Shared,
    Path((name, task)): Path<(String, String)>,
) -> ApiResult {
    let task = task_number(&name, &task)?;
    herder.restart_task(&name, task).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_offsets(State(herder): Shared, Path(name): Path<String>) -> ApiResult {
    Ok(json_response(StatusCode::OK, herder.offsets(&name).await?))
}

async fn patch_offsets(State(herder): Shared, Path(name): Path<String>, body: Bytes) -> ApiResult {
    let body = parse_json(&body)?;
    Ok(json_response(
        StatusCode::OK,
        herder.alter_offsets(&name, &body).await?,
    ))
}

async fn delete_offsets(State(herder): Shared, Path(name): Path<String>) -> ApiResult {
    Ok(json_response(
        StatusCode::OK,
        herder.reset_offsets(&name).await?,
    ))
}

async fn list_plugins(State(herder): Shared, RawQuery(query): RawQuery) -> ApiResult {
    let connectors_only = query_values(&query, "connectorsOnly")
        .last()
        .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    let registry = &herder.context.registry;
    let plugins = if connectors_only {
        registry.connectors()
    } else {
        registry.all()
    };
    Ok(json_response(StatusCode::OK, plugins))
}

async fn plugin_config(State(herder): Shared, Path(plugin): Path<String>) -> ApiResult {
    let found = herder
        .context
        .registry
        .find(&plugin)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("Unknown plugin {plugin}")))?;
    let def = match found.connector_type() {
        crate::sdk::ConnectorType::Sink => crate::runtime::connector_config::sink_def(),
        crate::sdk::ConnectorType::Source => crate::runtime::connector_config::source_def(),
    }
    .merge(&found.config_def(), "");
    let keys: Vec<_> = def
        .keys()
        .iter()
        .enumerate()
        .map(|(i, k)| k.info(i + 1))
        .collect();
    Ok(json_response(StatusCode::OK, keys))
}

async fn validate_config(
    State(herder): Shared,
    Path(plugin): Path<String>,
    body: Bytes,
) -> ApiResult {
    let config = config_map(&parse_json(&body)?, "the request body")?;
    if herder.context.registry.find(&plugin).is_none() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("Unknown plugin {plugin}"),
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        herder.validate_config(&plugin, &config)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_describes_every_route() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("the OpenAPI file is JSON");
        assert!(doc["openapi"].as_str().unwrap_or("").starts_with("3."));
        let paths = doc["paths"].as_object().expect("paths");
        for (method, path) in ROUTES {
            let item = paths
                .get(*path)
                .unwrap_or_else(|| panic!("{path} is not in docs/connect-openapi.json"));
            assert!(
                item.get(method.to_ascii_lowercase()).is_some(),
                "{method} {path} is not in docs/connect-openapi.json"
            );
        }
        let documented: usize = paths
            .values()
            .map(|item| {
                item.as_object()
                    .map_or(0, |o| o.keys().filter(|k| *k != "parameters").count())
            })
            .sum();
        assert_eq!(
            documented,
            ROUTES.len(),
            "the OpenAPI file documents routes that do not exist"
        );
    }
}
