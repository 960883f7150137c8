//! `strom serve`: run the broker.

use clap::Args;
use std::path::PathBuf;

/// Arguments of `strom serve`. Every flag may also come from a `STROM_*`
/// environment variable or the TOML file given with `--config`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory holding the log segments and metadata.
    #[arg(long, env = "STROM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address the Kafka listener binds to.
    #[arg(long, env = "STROM_LISTEN")]
    pub listen: Option<String>,
    /// Address advertised to clients in Metadata (defaults to the listen address).
    #[arg(long, env = "STROM_ADVERTISED_LISTENER")]
    pub advertised_listener: Option<String>,
    /// This broker's node id.
    #[arg(long, env = "STROM_NODE_ID")]
    pub node_id: Option<i32>,
    /// TOML configuration file (Kafka property names where one exists).
    #[arg(long, env = "STROM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Admin HTTP listener (/health, /ready, /metrics, /log-filter,
    /// /v1/status): HOST:PORT, or `none` [default: 127.0.0.1:9644].
    #[arg(long, env = "STROM_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// Log lines on stderr: human-readable `text`, or `json` (one object a line).
    #[arg(long, value_enum, env = "STROM_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Builds the broker config: defaults, then `--config` file, then `STROM_*`
/// variables, then flags.
pub fn broker_config(args: &ServeArgs) -> anyhow::Result<strom_broker::BrokerConfig> {
    let mut config = strom_broker::BrokerConfig::load(args.config.as_deref(), std::env::vars())?;
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(listen) = &args.listen {
        config.listen = listen.clone();
    }
    if let Some(advertised) = &args.advertised_listener {
        config.advertised_listener = Some(advertised.clone());
    }
    if let Some(node_id) = args.node_id {
        config.node_id = node_id;
    }
    if let Some(admin) = &args.admin_listen {
        config.admin_listen = strom_broker::config::parse_admin_listen(admin);
    }
    Ok(config)
}

/// `log_filter`: the subscriber's reload handle, for `PUT /log-filter`.
pub async fn run(
    args: ServeArgs,
    log_filter: Option<strom_broker::admin_http::LogFilter>,
) -> anyhow::Result<()> {
    let mut config = broker_config(&args)?;
    config.log_filter = log_filter;
    let broker = strom_broker::start(config).await?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", broker.local_addr())?;
        if let Some(admin) = broker.admin_addr() {
            writeln!(out, "admin on http://{admin}")?;
        }
        out.flush()?;
    }
    let stop = broker.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: shutting down");
        let _ = stop.send(true);
    });
    broker.wait().await?;
    Ok(())
}

pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
