//! The admin HTTP listener (`admin.listen`, `127.0.0.1:9644` by default):
//!
//! | request | answer |
//! |---|---|
//! | `GET /health` | 200 `ok` while the process runs |
//! | `GET /ready` | 200 once log recovery finished and the Kafka listener is open, else 503 |
//! | `GET /metrics` | every metric, OpenMetrics text (see [`crate::metrics`]) |
//! | `GET /log-filter` | the current `RUST_LOG`-style log filter |
//! | `PUT /log-filter` | replaces it with the request body (400 if it does not parse) |
//! | `GET /v1/status` | a JSON summary, what `strom status` prints |
//!
//! It starts before log recovery (so orchestrators see "alive, not ready"
//! while a large log is recovered) and stops with the broker.

use crate::metrics::Metrics;
use crate::server::BrokerContext;
use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Reads and replaces the process's log filter at run time. The binary
/// owns the tracing subscriber; it hands the broker one of these (for a
/// `tracing_subscriber` reload handle, [`LogFilter::from_reload_handle`]).
pub trait LogFilterControl: Send + Sync {
    /// The filter in force, as `RUST_LOG`-style directives.
    fn current(&self) -> String;
    /// Parses `directives` and puts them in force; on error nothing changes.
    fn set(&self, directives: &str) -> Result<(), String>;
}

/// A shared [`LogFilterControl`], as carried in [`crate::BrokerConfig`].
#[derive(Clone)]
pub struct LogFilter(pub Arc<dyn LogFilterControl>);

impl std::fmt::Debug for LogFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogFilter({})", self.0.current())
    }
}

impl LogFilter {
    pub fn from_reload_handle<S: 'static>(
        handle: tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, S>,
    ) -> LogFilter {
        LogFilter(Arc::new(ReloadHandle(handle)))
    }
}

struct ReloadHandle<S>(tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, S>);

impl<S: 'static> LogFilterControl for ReloadHandle<S> {
    fn current(&self) -> String {
        self.0
            .with_current(|filter| filter.to_string())
            .unwrap_or_default()
    }

    fn set(&self, directives: &str) -> Result<(), String> {
        let filter = tracing_subscriber::EnvFilter::try_new(directives.trim())
            .map_err(|e| format!("bad log filter `{}`: {e}", directives.trim()))?;
        self.0.reload(filter).map_err(|e| e.to_string())
    }
}

/// What the admin handlers read. The broker context appears once recovery
/// is done; until then `/metrics` serves what exists and `/ready` says no.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    context: OnceLock<Weak<BrokerContext>>,
    log_filter: Option<LogFilter>,
}

impl AdminState {
    pub fn new(metrics: Arc<Metrics>, log_filter: Option<LogFilter>) -> Arc<AdminState> {
        Arc::new(AdminState {
            metrics,
            context: OnceLock::new(),
            log_filter,
        })
    }

    pub fn set_context(&self, context: &Arc<BrokerContext>) {
        let _ = self.context.set(Arc::downgrade(context));
    }

    fn context(&self) -> Option<Arc<BrokerContext>> {
        self.context.get().and_then(Weak::upgrade)
    }
}

/// Binds `addr` and serves until `shutdown` changes or its sender is dropped.
pub async fn start(
    addr: &str,
    state: Arc<AdminState>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, crate::BrokerError> {
    let bind_error = |source| crate::BrokerError::Bind {
        addr: format!("{addr} (admin.listen)"),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    let app = router(state);
    tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "admin listener failed");
        }
    });
    tracing::info!(%local_addr, "admin listener started");
    Ok(local_addr)
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/log-filter", get(get_log_filter).put(put_log_filter))
        .route("/v1/status", get(status))
        .fallback(not_found)
        .with_state(state)
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(state): State<Arc<AdminState>>) -> Response {
    if state.metrics.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: log recovery or listener start-up under way\n",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    // Reading partition state takes the logs' locks: off the async workers.
    let text = tokio::task::spawn_blocking(move || {
        let context = state.context();
        state.metrics.refresh(context.as_deref());
        state.metrics.encode()
    })
    .await
    .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn get_log_filter(State(state): State<Arc<AdminState>>) -> Response {
    match &state.log_filter {
        Some(filter) => format!("{}\n", filter.0.current()).into_response(),
        None => no_log_filter(),
    }
}

async fn put_log_filter(State(state): State<Arc<AdminState>>, body: String) -> Response {
    let Some(filter) = &state.log_filter else {
        return no_log_filter();
    };
    match filter.0.set(&body) {
        Ok(()) => {
            let current = filter.0.current();
            tracing::info!(filter = %current, "log filter changed");
            format!("{current}\n").into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

fn no_log_filter() -> Response {
    (
        StatusCode::NOT_IMPLEMENTED,
        "this process's log filter cannot be changed at run time\n",
    )
        .into_response()
}

async fn status(State(state): State<Arc<AdminState>>) -> Response {
    let body = tokio::task::spawn_blocking(move || status_json(&state))
        .await
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Topics listed in `top_topics` of `/v1/status`.
const TOP_TOPICS: usize = 10;

fn status_json(state: &AdminState) -> String {
    let m = &state.metrics;
    let mut status = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": m.uptime().as_secs(),
        "ready": m.is_ready(),
        "connections_open": m.connections_open(),
    });
    if let Some(context) = state.context() {
        let mut topics = Vec::new();
        let (mut partitions, mut bytes_on_disk) = (0usize, 0u64);
        for topic in context.topics.list() {
            let mut size = 0u64;
            for partition in &topic.partitions {
                if let Ok(log) = partition.log() {
                    size += log.size_bytes();
                }
            }
            partitions += topic.partitions.len();
            bytes_on_disk += size;
            let totals = m.topic_totals(&topic.name);
            topics.push(serde_json::json!({
                "topic": topic.name,
                "internal": topic.is_internal(),
                "partitions": topic.partitions.len(),
                "size_bytes": size,
                "produce_bytes": totals.produce_bytes,
                "produce_records": totals.produce_records,
                "fetch_bytes": totals.fetch_bytes,
                "fetch_records": totals.fetch_records,
            }));
        }
        let topic_count = topics.len();
        topics.sort_by_key(|t| std::cmp::Reverse(t["produce_bytes"].as_u64().unwrap_or(0)));
        topics.truncate(TOP_TOPICS);
        let groups = context.groups.read(|coordinator| {
            let mut ids = coordinator.group_ids();
            ids.sort();
            ids.iter()
                .filter_map(|id| coordinator.group(id))
                .map(|group| {
                    let members = group.members.len()
                        + group.consumer.as_ref().map_or(0, |c| c.members.len());
                    let lag: i64 = group
                        .offsets
                        .iter()
                        .filter_map(|((topic, partition), committed)| {
                            let topic = context.topics.get(topic)?;
                            let partition =
                                topic.partitions.get(usize::try_from(*partition).ok()?)?;
                            let end = partition.log().ok()?.log_end_offset();
                            Some((end - committed.offset).max(0))
                        })
                        .sum();
                    serde_json::json!({
                        "group": group.group_id,
                        "state": group.state_name(),
                        "type": group.group_type(),
                        "members": members,
                        "lag": lag,
                    })
                })
                .collect::<Vec<_>>()
        });
        status["node_id"] = context.config.node_id.into();
        status["cluster_id"] = context.cluster_id.clone().into();
        status["listener"] =
            format!("{}:{}", context.advertised_host, context.advertised_port).into();
        status["topics"] = topic_count.into();
        status["partitions"] = partitions.into();
        status["bytes_on_disk"] = bytes_on_disk.into();
        status["top_topics"] = topics.into();
        status["groups"] = groups.into();
    }
    status.to_string()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!(
            "no such endpoint: {method} {}; try GET /health, /ready, /metrics, /log-filter, /v1/status\n",
            uri.path()
        ),
    )
        .into_response()
}
