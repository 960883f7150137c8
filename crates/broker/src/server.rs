//! Start-up, the accept loop, background tasks and graceful shutdown.

use crate::config::BrokerConfig;
use crate::connection;
use crate::error::BrokerError;
use crate::metadata;
use crate::topic_config::BrokerDefaults;
use crate::topics::TopicManager;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_log::FlushPolicy;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

/// Shared by every connection and background task.
pub struct BrokerContext {
    pub config: BrokerConfig,
    pub topics: TopicManager,
    pub groups: crate::groups::GroupService,
    pub txns: crate::transactions::TxnService,
    pub cluster_id: String,
    pub advertised_host: String,
    pub advertised_port: i32,
    /// Woken after every append, so long-polling fetches re-check at once.
    pub appended: Notify,
    pub shutdown: watch::Receiver<bool>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The request memory pool (`queued.max.request.bytes`), in bytes.
    pub request_memory: Option<Arc<Semaphore>>,
}

/// A running broker. Dropping it does not stop it; call [`shutdown`](Self::shutdown).
pub struct RunningBroker {
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    shutdown_tx: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), BrokerError>>,
    context: Arc<BrokerContext>,
}

impl RunningBroker {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the admin HTTP listener is bound (`None` if `admin.listen` is off).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn context(&self) -> &Arc<BrokerContext> {
        &self.context
    }

    /// Stops accepting, lets in-flight requests finish, flushes every log
    /// and writes the clean-shutdown marker.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        let _ = self.shutdown_tx.send(true);
        self.wait().await
    }

    /// Waits until the broker stops (after a shutdown was requested).
    pub async fn wait(self) -> Result<(), BrokerError> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(BrokerError::Metadata(format!("broker task failed: {e}"))),
        }
    }

    /// A handle that can request shutdown from elsewhere (e.g. a signal handler).
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown_tx.clone()
    }
}

/// Opens the data dir (running recovery if the last stop was unclean),
/// binds the listener and starts serving.
pub async fn start(config: BrokerConfig) -> Result<RunningBroker, BrokerError> {
    let started = Instant::now();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // The admin listener comes first, so /health and /ready answer during recovery.
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let admin = crate::admin_http::AdminState::new(metrics.clone(), config.log_filter.clone());
    let admin_addr = match &config.admin_listen {
        Some(addr) => {
            Some(crate::admin_http::start(addr, admin.clone(), shutdown_rx.clone()).await?)
        }
        None => None,
    };
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| BrokerError::Io {
        context: format!("creating {}", data_dir.display()),
        source,
    })?;
    // Before anything reads or writes the dir (the clean-shutdown marker first).
    let dir_lock = crate::data_dir_lock::lock(&data_dir)?;
    let fresh = !data_dir.join("meta.properties").exists();
    let clean = strom_log::take_clean_shutdown_marker(&data_dir)? || fresh;
    if !clean {
        tracing::info!(data_dir = %data_dir.display(), "no clean-shutdown marker: recovering logs");
    }
    let cluster_id = metadata::load_or_create_cluster_id(&data_dir, config.node_id)?;
    let defaults = BrokerDefaults::from_config(&config);
    let node_id = config.node_id;
    let group_config = config.groups.clone();
    let offsets_partitions = config.offsets_topic_partitions;
    let txn_config = config.transactions.clone();
    let txn_partitions = config.transaction_topic_partitions;
    let storage = config
        .partition_storage
        .clone()
        .unwrap_or_else(|| Arc::new(strom_log::StdStorage));
    let (topics, groups, txns) = {
        let data_dir = data_dir.clone();
        tokio::task::spawn_blocking(move || -> Result<_, BrokerError> {
            let topics = TopicManager::open(&data_dir, node_id, defaults, clean, storage)?;
            let groups =
                crate::groups::GroupService::load(&topics, group_config, offsets_partitions)
                    .map_err(|e| BrokerError::Metadata(format!("loading consumer groups: {e}")))?;
            let txns = crate::transactions::TxnService::load(&topics, txn_config, txn_partitions)
                .map_err(|e| BrokerError::Metadata(format!("loading transactions: {e}")))?;
            Ok((topics, groups, txns))
        })
        .await
        .map_err(|e| BrokerError::Metadata(format!("opening logs: {e}")))??
    };

    let addr = config.listen_addr()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BrokerError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| BrokerError::Io {
        context: "listener address".into(),
        source,
    })?;
    let (advertised_host, advertised_port) = match &config.advertised_listener {
        Some(advertised) => parse_host_port(advertised)?,
        None => (local_addr.ip().to_string(), local_addr.port() as i32),
    };

    let request_memory = config
        .queued_max_request_bytes
        .map(|bytes| Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))));
    let context = Arc::new(BrokerContext {
        request_memory,
        config,
        topics,
        groups,
        txns,
        cluster_id,
        advertised_host,
        advertised_port,
        appended: Notify::new(),
        shutdown: shutdown_rx,
        metrics,
    });
    admin.set_context(&context);
    context
        .topics
        .set_fsync_observer(context.metrics.fsync_observer());
    tracing::info!(
        %local_addr,
        topics = context.topics.list().len(),
        startup_ms = started.elapsed().as_millis() as u64,
        "broker started"
    );
    let task = tokio::spawn(run(context.clone(), listener, dir_lock));
    context.metrics.set_ready(true);
    Ok(RunningBroker {
        local_addr,
        admin_addr,
        shutdown_tx,
        task,
        context,
    })
}

fn parse_host_port(value: &str) -> Result<(String, i32), BrokerError> {
    let (host, port) = value.rsplit_once(':').ok_or_else(|| {
        BrokerError::Config(format!("advertised listener `{value}` is not HOST:PORT"))
    })?;
    let port = port.parse::<u16>().map_err(|_| {
        BrokerError::Config(format!("advertised listener `{value}` has a bad port"))
    })?;
    Ok((host.trim_matches(['[', ']']).to_string(), port as i32))
}

/// Serves until shutdown; `_dir_lock` is released only once everything is
/// flushed and the clean-shutdown marker written.
async fn run(
    context: Arc<BrokerContext>,
    listener: TcpListener,
    _dir_lock: crate::data_dir_lock::DataDirLock,
) -> Result<(), BrokerError> {
    let mut shutdown = context.shutdown.clone();
    let mut refusals = Refusals::default();
    let limit = Arc::new(Semaphore::new(context.config.max_connections));
    let per_ip = Arc::new(PerIpConnections::default());
    let mut connections = JoinSet::new();
    let background = [
        tokio::spawn(offline_partitions(context.clone())),
        tokio::spawn(flusher(context.clone())),
        tokio::spawn(retention(context.clone())),
        tokio::spawn(cleaner(context.clone())),
        tokio::spawn(group_timers(context.clone())),
    ];
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    refusals.note(&context, peer, "max.connections", context.config.max_connections);
                    drop(stream);
                    continue;
                };
                let ip_max = context.config.max_connections_for(peer.ip());
                let Some(ip_slot) = PerIpConnections::acquire(&per_ip, peer.ip(), ip_max) else {
                    refusals.note(&context, peer, "max.connections.per.ip", ip_max);
                    drop(stream);
                    continue;
                };
                let context = context.clone();
                connections.spawn(async move {
                    connection::serve(context, stream, peer).await;
                    drop(ip_slot);
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    context.metrics.set_ready(false);
    tracing::info!(
        open_connections = connections.len(),
        "shutting down: waiting for in-flight requests"
    );
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), drain)
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 30 s; closing them");
        connections.abort_all();
    }
    for task in background {
        task.abort();
    }
    let ctx = context.clone();
    tokio::task::spawn_blocking(move || -> Result<(), BrokerError> {
        ctx.topics.close()?;
        strom_log::write_clean_shutdown_marker(&ctx.config.data_dir)?;
        Ok(())
    })
    .await
    .map_err(|e| BrokerError::Metadata(format!("closing logs: {e}")))??;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Open connections per client address, for `max.connections.per.ip`.
#[derive(Default)]
struct PerIpConnections(parking_lot::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

/// One connection's place in [`PerIpConnections`], given back on drop.
struct IpSlot(Arc<PerIpConnections>, std::net::IpAddr);

impl PerIpConnections {
    fn acquire(this: &Arc<Self>, ip: std::net::IpAddr, max: usize) -> Option<IpSlot> {
        let mut open = this.0.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot(Arc::clone(this), ip))
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = (self.0).0.lock();
        if let Some(count) = open.get_mut(&self.1) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Refused connections: counted, and logged at most once a second (a flood
/// must not flood the log).
#[derive(Default)]
struct Refusals {
    last_log: Option<Instant>,
    unlogged: u64,
}

impl Refusals {
    fn note(&mut self, context: &BrokerContext, peer: SocketAddr, limit: &str, max: usize) {
        context.metrics.connection_refused();
        self.unlogged += 1;
        if self
            .last_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            tracing::warn!(%peer, limit, max, refused = self.unlogged, "connection refused: too many connections");
            self.last_log = Some(Instant::now());
            self.unlogged = 0;
        }
    }
}

/// Reopens partitions that a storage failure took offline (a failed fsync,
/// a write that could not be undone), every `log.offline.retry.ms`, so that
/// writes resume once the disk works again. Reads go on meanwhile; see
/// [`strom_log::PartitionLog::reopen`].
async fn offline_partitions(context: Arc<BrokerContext>) {
    let mut tick = tokio::time::interval(context.config.log_offline_retry);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let ctx = context.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for partition in ctx.topics.all_partitions() {
                if let Err(e) = partition.reopen_if_offline() {
                    tracing::warn!(topic = %partition.topic, partition = partition.index, error = %e, "partition still offline");
                }
            }
        })
        .await;
    }
}

/// Flushes logs whose policy is an interval once it has passed.
async fn flusher(context: Arc<BrokerContext>) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ctx = context.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for partition in ctx.topics.all_partitions() {
                let Ok(log) = partition.log() else { continue };
                let FlushPolicy::Interval(interval) = log.config().flush else { continue };
                if log.durable_offset() < log.log_end_offset()
                    && log.ms_since_last_flush() >= interval.as_millis() as u64
                {
                    if let Err(e) = log.flush() {
                        tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "flush failed");
                    }
                }
            }
        })
        .await;
    }
}

/// Session and rebalance timeouts, offset retention.
async fn group_timers(context: Arc<BrokerContext>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ctx = context.clone();
        let _ = tokio::task::spawn_blocking(move || {
            ctx.groups.tick(&ctx.topics);
            ctx.txns.tick(&ctx);
        })
        .await;
    }
}

/// Deletes segments past `retention.ms` / `retention.bytes`.
async fn retention(context: Arc<BrokerContext>) {
    let mut tick = tokio::time::interval(context.config.retention_check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let ctx = context.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let now = metadata::now_ms();
            for partition in ctx.topics.all_partitions() {
                let Ok(log) = partition.log() else { continue };
                match log.apply_retention(now) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        topic = %partition.topic,
                        partition = partition.index,
                        segments = n,
                        log_start_offset = log.log_start_offset(),
                        "deleted segments past retention"
                    ),
                    Err(e) => tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "retention failed"),
                }
            }
        })
        .await;
    }
}

/// The log cleaner: every `log.cleaner.backoff.ms`, one compaction pass over
/// each partition whose `cleanup.policy` includes `compact` (internal topics
/// such as `__consumer_offsets` included). A pass only rewrites anything when
/// the partition's dirty ratio or `max.compaction.lag.ms` calls for it.
async fn cleaner(context: Arc<BrokerContext>) {
    let mut tick = tokio::time::interval(context.config.cleaner_backoff);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let ctx = context.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for partition in ctx.topics.all_partitions() {
                let Ok(log) = partition.log() else { continue };
                if !log.config().cleanup_policy.compact {
                    continue;
                }
                match log.compact(metadata::now_ms()) {
                    Ok(report) if report.cleaned() => tracing::info!(
                        topic = %partition.topic,
                        partition = partition.index,
                        cleaned_range = ?report.cleaned_range,
                        dirty_ratio = report.dirty_ratio,
                        forced_by_max_lag = report.forced_by_max_lag,
                        superseded_removed = report.superseded_removed,
                        tombstones_removed = report.tombstones_removed,
                        keyless_removed = report.keyless_removed,
                        bytes_before = report.bytes_before,
                        bytes_after = report.bytes_after,
                        segments_before = report.segments_before,
                        segments_after = report.segments_after,
                        "compacted log"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "compaction failed"),
                }
            }
        })
        .await;
    }
}
