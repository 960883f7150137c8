//! Test helpers: a real Strom broker, in-process, on a free port.
//!
//! ```no_run
//! let broker = strom_testkit::TestBroker::start();
//! let bootstrap = broker.bootstrap(); // "127.0.0.1:PORT" for any Kafka client
//! # drop(bootstrap);
//! broker.restart(); // same data dir, new port
//! ```
//!
//! The broker runs on its own multi-threaded tokio runtime, so tests can
//! use blocking clients (rdkafka's `BaseProducer`, `BaseConsumer`) or their
//! own runtime freely.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use strom_broker::{BrokerConfig, RunningBroker};

pub struct TestBroker {
    runtime: tokio::runtime::Runtime,
    running: Mutex<Option<RunningBroker>>,
    bootstrap: Mutex<String>,
    admin: Mutex<Option<SocketAddr>>,
    config: BrokerConfig,
    _data_dir: Option<tempfile::TempDir>,
}

impl TestBroker {
    /// A broker on a fresh temporary data dir.
    pub fn start() -> TestBroker {
        Self::start_with(|_| {})
    }

    /// Like [`start`](Self::start), letting the test adjust the config first.
    pub fn start_with(adjust: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".into(),
            admin_listen: Some("127.0.0.1:0".into()),
            ..BrokerConfig::default()
        };
        adjust(&mut config);
        Self::start_on(config, Some(dir))
    }

    /// A broker on a given data dir (which the caller keeps).
    pub fn start_in(data_dir: &Path) -> TestBroker {
        Self::start_in_with(data_dir, |_| {})
    }

    /// Like [`start_in`](Self::start_in), letting the test adjust the config first.
    pub fn start_in_with(data_dir: &Path, adjust: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let mut config = BrokerConfig {
            data_dir: data_dir.to_path_buf(),
            listen: "127.0.0.1:0".into(),
            admin_listen: Some("127.0.0.1:0".into()),
            ..BrokerConfig::default()
        };
        adjust(&mut config);
        Self::start_on(config, None)
    }

    fn start_on(mut config: BrokerConfig, dir: Option<tempfile::TempDir>) -> TestBroker {
        if config.log_filter.is_none() {
            config.log_filter = tracing_init().clone();
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let running = runtime
            .block_on(strom_broker::start(config.clone()))
            .expect("broker starts");
        let bootstrap = running.local_addr().to_string();
        let admin = running.admin_addr();
        TestBroker {
            runtime,
            running: Mutex::new(Some(running)),
            bootstrap: Mutex::new(bootstrap),
            admin: Mutex::new(admin),
            config,
            _data_dir: dir,
        }
    }

    /// `HOST:PORT` of the Kafka listener.
    pub fn bootstrap(&self) -> String {
        self.bootstrap.lock().unwrap().clone()
    }

    /// `HOST:PORT` of the admin HTTP listener (`/metrics`, `/health`, ...);
    /// `None` if the test turned it off.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        *self.admin.lock().unwrap()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// Shuts down gracefully and starts again on the same data dir. The
    /// port changes: call [`bootstrap`](Self::bootstrap) again.
    pub fn restart(&self) {
        self.stop();
        let running = self
            .runtime
            .block_on(strom_broker::start(self.config.clone()))
            .expect("broker restarts");
        *self.bootstrap.lock().unwrap() = running.local_addr().to_string();
        *self.admin.lock().unwrap() = running.admin_addr();
        *self.running.lock().unwrap() = Some(running);
    }

    /// Graceful shutdown (flush, clean-shutdown marker).
    pub fn stop(&self) {
        if let Some(running) = self.running.lock().unwrap().take() {
            self.runtime
                .block_on(running.shutdown())
                .expect("clean shutdown");
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(running) = self.running.get_mut().unwrap().take() {
            let _ = self.runtime.block_on(running.shutdown());
        }
    }
}

/// Installs the test log subscriber once per process (`STROM_TEST_LOG`,
/// `warn` by default) with a reloadable filter, handed to every broker so
/// that `PUT /log-filter` works in tests.
fn tracing_init() -> &'static Option<strom_broker::admin_http::LogFilter> {
    static FILTER: OnceLock<Option<strom_broker::admin_http::LogFilter>> = OnceLock::new();
    FILTER.get_or_init(|| {
        let filter = std::env::var("STROM_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let builder = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .with_filter_reloading();
        let handle = builder.reload_handle();
        builder
            .try_init()
            .ok()
            .map(|()| strom_broker::admin_http::LogFilter::from_reload_handle(handle))
    })
}
