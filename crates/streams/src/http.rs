//! The optional interactive-query HTTP endpoint (axum):
//!
//! - `GET /stores` — queryable store names
//! - `GET /stores/{store}/keys/{key}` — `{"key": .., "value": ..}`, 404 if absent
//! - `GET /stores/{store}/keys/{key}/windows?from=MS&to=MS` — a window
//!   store's windows of `key` starting in `from..=to`
//! - `GET /stores/{store}/all` — every entry of a key-value store
//!
//! Keys in the path are parsed by the store's key serde
//! ([`Serde::parse_text`](crate::Serde::parse_text)); values are shown with
//! [`Serde::to_json`](crate::Serde::to_json).

use crate::error::{Result, StreamsError};
use crate::runtime::Shared;
use crate::store::{window_range, WindowKey};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn lookup(
    shared: &Shared,
    store: &str,
    windowed: bool,
) -> std::result::Result<crate::topology::QueryAdapter, Box<Response>> {
    let found = shared.registry.adapters.read().get(store).cloned();
    match found {
        Some((adapter, is_window)) if is_window == windowed => Ok(adapter),
        Some((_, true)) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("{store} is a window store: use /windows"),
        ))),
        Some(_) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("{store} is a key-value store"),
        ))),
        None => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!("no queryable store {store}"),
        ))),
    }
}

async fn stores(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let names: Vec<String> = shared.registry.adapters.read().keys().cloned().collect();
    Json(json!(names))
}

async fn get_key(
    State(shared): State<Arc<Shared>>,
    Path((store, key)): Path<(String, String)>,
) -> Response {
    let adapter = match lookup(&shared, &store, false) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let Some(kb) = (adapter.key_parse_text)(&key) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{key:?} is not a key of {store}"),
        );
    };
    let backends = match shared.registry.backends(&store) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::NOT_FOUND, e.to_string()),
    };
    for b in backends {
        match b.get(&kb) {
            Ok(Some(v)) => return Json(
                json!({ "key": (adapter.key_to_json)(&kb), "value": (adapter.value_to_json)(&v) }),
            )
            .into_response(),
            Ok(None) => {}
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
    error(
        StatusCode::NOT_FOUND,
        format!("no key {key:?} in {store} on this instance"),
    )
}

async fn all(State(shared): State<Arc<Shared>>, Path(store): Path<String>) -> Response {
    let adapter = match lookup(&shared, &store, false) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let mut out = Vec::new();
    for b in shared.registry.backends(&store).unwrap_or_default() {
        match b.range(&[], None) {
            Ok(entries) => out.extend(entries.into_iter().map(|(k, v)| json!({ "key": (adapter.key_to_json)(&k), "value": (adapter.value_to_json)(&v) }))),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
    Json(Value::Array(out)).into_response()
}

#[derive(serde::Deserialize)]
struct Range {
    from: Option<i64>,
    to: Option<i64>,
}

async fn windows(
    State(shared): State<Arc<Shared>>,
    Path((store, key)): Path<(String, String)>,
    Query(range): Query<Range>,
) -> Response {
    let adapter = match lookup(&shared, &store, true) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    // Window stores hold Windowed keys; the path names the plain key,
    // parsed by the key serde inside the windowed one.
    let Some(windowed) = (adapter.key_parse_text)(&key) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{key:?} is not a key of {store}"),
        );
    };
    let kb = &windowed[..windowed.len().saturating_sub(16)];
    let (from, to) = (range.from.unwrap_or(0), range.to.unwrap_or(i64::MAX));
    if from > to {
        return error(StatusCode::BAD_REQUEST, "from > to");
    }
    let (lo, hi) = window_range(kb, from, to);
    let mut out = Vec::new();
    for b in shared.registry.backends(&store).unwrap_or_default() {
        match b.range(&lo, hi.as_deref()) {
            Ok(entries) => {
                for (k, v) in entries {
                    if let Some(wk) = WindowKey::decode(&k) {
                        out.push(json!({ "start": wk.start, "end": wk.end, "value": (adapter.value_to_json)(&v) }));
                    }
                }
            }
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
    Json(json!({ "key": key, "windows": out })).into_response()
}

/// Starts the endpoint on its own thread and runtime.
pub(crate) fn serve_queries(shared: Arc<Shared>, addr: &str) -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| StreamsError::io(format!("binding {addr}"), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| StreamsError::io("listener", e))?;
    let local = listener
        .local_addr()
        .map_err(|e| StreamsError::io("listener", e))?;
    let app = Router::new()
        .route("/stores", get(stores))
        .route("/stores/{store}/all", get(all))
        .route("/stores/{store}/keys/{key}", get(get_key))
        .route("/stores/{store}/keys/{key}/windows", get(windows))
        .with_state(shared);
    std::thread::Builder::new()
        .name("streams-query-http".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!("query endpoint: {e}");
                }
            });
        })
        .map_err(|e| StreamsError::io("spawning the query endpoint", e))?;
    Ok(local)
}
