//! Word count: lines from `streams-plaintext-input`, the count of every
//! word (as text) to `streams-wordcount-output`. See README.md.

use strom_streams::*;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let bootstrap = std::env::var("STROM_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let builder = StreamsBuilder::new();
    builder
        .stream(
            "streams-plaintext-input",
            Consumed::with(Serdes::unit(), Serdes::string()),
        )
        .flat_map_values(|line: String| {
            line.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(
            |_, word: &String| word.clone(),
            Grouped::with(Serdes::string(), Serdes::string()),
        )
        .count_with(Materialized::named("counts"))
        .to_stream()
        .map_values(|n: Option<i64>| n.unwrap_or(0).to_string())
        .to(
            "streams-wordcount-output",
            Produced::with(Serdes::string(), Serdes::string()),
        );
    let topology = builder.build()?;
    println!("{}", topology.describe());
    let config = StreamsConfig::new("streams-wordcount", &bootstrap)
        .exactly_once()
        .state_dir(std::env::var("STATE_DIR").unwrap_or_else(|_| "./streams-state".into()));
    let mut streams = KafkaStreams::new(topology, config);
    streams.start()?;
    let addr = streams.serve_queries(
        &std::env::var("QUERY_LISTEN").unwrap_or_else(|_| "127.0.0.1:7070".into()),
    )?;
    println!("running; counts at http://{addr}/stores/counts/keys/WORD — Ctrl-C stops");
    wait_for_ctrl_c();
    streams.close()?;
    Ok(())
}

fn wait_for_ctrl_c() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _ = runtime.block_on(tokio::signal::ctrl_c());
}
