//! `strom`: the Strom broker (`strom serve`) and a Kafka command-line client
//! (`strom topic`, `strom produce`, `strom consume`, `strom group`) and
//! benchmark (`strom bench`) that work against any Kafka cluster.
//!
//! ```text
//! strom serve --data-dir /var/lib/strom --listen 0.0.0.0:9092
//! strom topic create events --partitions 3
//! printf 'k1:hello\nk2:world\n' | strom produce events --key-separator :
//! strom consume events --from beginning --count 2 --json
//! strom group describe my-group
//! strom txn list --state Ongoing
//! strom producers events --partition 0
//! strom status --admin 127.0.0.1:9644
//! strom bench produce --topic bench --create --count 1000000 --acks 1
//! strom connect standalone worker.toml mqtt-source.json
//! strom connector status mqtt-source
//! ```

mod bench;
mod client;
mod connect;
mod serve;
mod status;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "strom",
    version,
    about = "Kafka-compatible event streaming: broker and client"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker.
    Serve(serve::ServeArgs),
    Topic(client::topic::TopicArgs),
    Produce(client::produce::ProduceArgs),
    Consume(client::consume::ConsumeArgs),
    Group(client::group::GroupArgs),
    Txn(client::txn::TxnArgs),
    Producers(client::txn::ProducersArgs),
    /// One-screen summary of a running broker, from its admin listener.
    Status(status::StatusArgs),
    Bench(bench::BenchArgs),
    Connect(connect::ConnectArgs),
    Connector(connect::ConnectorArgs),
}

fn main() {
    let cli = Cli::parse();
    let json_logs =
        matches!(&cli.command, Command::Serve(args) if args.log_format == serve::LogFormat::Json);
    let log_filter = init_tracing(json_logs);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the tokio runtime: {err}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args, Some(log_filter)).await,
            Command::Topic(args) => client::topic::run(args).await,
            Command::Produce(args) => client::produce::run(args).await,
            Command::Consume(args) => client::consume::run(args).await,
            Command::Group(args) => client::group::run(args).await,
            Command::Txn(args) => client::txn::run(args).await,
            Command::Producers(args) => client::txn::producers(args).await,
            Command::Status(args) => status::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Connect(args) => connect::run(args).await,
            Command::Connector(args) => connect::connector(args).await,
        }
    });
    // A thread blocked reading a terminal (produce after Ctrl-C) must not keep
    // the process alive, so leave without waiting for the runtime's threads.
    runtime.shutdown_background();
    match result {
        Ok(()) => std::process::exit(0),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(1);
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (`info` by default); the filter
/// can be replaced at run time through the returned handle (the broker's
/// `PUT /log-filter`).
fn init_tracing(json: bool) -> strom_broker::admin_http::LogFilter {
    use strom_broker::admin_http::LogFilter;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(tracing::level_filters::LevelFilter::INFO.into())
                .from_env_lossy(),
        )
        .with_writer(std::io::stderr);
    if json {
        let builder = builder.json().with_filter_reloading();
        let filter = LogFilter::from_reload_handle(builder.reload_handle());
        builder.init();
        filter
    } else {
        let builder = builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter_reloading();
        let filter = LogFilter::from_reload_handle(builder.reload_handle());
        builder.init();
        filter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn client_options_parse_anywhere() {
        let cli = Cli::try_parse_from([
            "strom",
            "topic",
            "create",
            "t",
            "--bootstrap",
            "h:1",
            "-X",
            "a=1",
            "-X",
            "b=2",
        ])
        .unwrap();
        let Command::Topic(args) = cli.command else {
            panic!("expected topic");
        };
        assert_eq!(args.client.bootstrap, "h:1");
        assert_eq!(
            args.client.properties,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
    }

    #[test]
    fn consume_accepts_negative_tail() {
        let cli = Cli::try_parse_from(["strom", "consume", "t", "--from", "-10"]).unwrap();
        let Command::Consume(args) = cli.command else {
            panic!("expected consume");
        };
        assert_eq!(args.from, Some(client::start::StartFrom::Tail(10)));
    }

    #[test]
    fn consume_rejects_partition_with_group() {
        assert!(
            Cli::try_parse_from(["strom", "consume", "t", "--partition", "0", "--group", "g"])
                .is_err()
        );
    }
}
