//! Vehicle tracking: the latest position of every vehicle as a table, and
//! an event whenever a vehicle enters a geofence. See README.md.

use serde::{Deserialize, Serialize};
use strom_streams::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Position {
    lat: f64,
    lon: f64,
}

/// What the application remembers per vehicle.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Track {
    position: Option<Position>,
    /// The geofences the vehicle is inside.
    inside: Vec<String>,
    /// The geofences entered with the last position.
    entered: Vec<String>,
}

/// Circular geofences: name, centre, radius in metres.
const GEOFENCES: &[(&str, f64, f64, f64)] = &[
    ("depot", 52.5200, 13.4050, 300.0),
    ("harbour", 53.5450, 9.9660, 800.0),
];

fn distance_m(a: &Position, lat: f64, lon: f64) -> f64 {
    // Equirectangular approximation: plenty for geofences of a few km.
    let r = 6_371_000.0;
    let x = (lon - a.lon).to_radians() * ((lat + a.lat) / 2.0).to_radians().cos();
    let y = (lat - a.lat).to_radians();
    (x * x + y * y).sqrt() * r
}

fn fences_at(p: &Position) -> Vec<String> {
    GEOFENCES
        .iter()
        .filter(|(_, lat, lon, radius)| distance_m(p, *lat, *lon) <= *radius)
        .map(|(name, ..)| name.to_string())
        .collect()
}

fn topology() -> Result<Topology> {
    let builder = StreamsBuilder::new();
    let positions = builder
        .stream(
            "vehicle-positions",
            Consumed::with(Serdes::string(), Serdes::json::<Position>()),
        )
        .group_by_key(Grouped::with(Serdes::string(), Serdes::json::<Position>()));
    // The latest position per vehicle: a table, queryable and written to a
    // compacted topic.
    positions
        .reduce_with(
            |_, latest| latest,
            Materialized::named("vehicle-latest-position"),
        )
        .to(
            "vehicle-latest-position",
            Produced::with(Serdes::string(), Serdes::json()),
        );
    // Geofence entries: compare each position's geofences with the last ones.
    positions
        .aggregate(
            Track::default,
            |_, p, t| {
                let now = fences_at(&p);
                let entered = now.iter().filter(|f| !t.inside.contains(f)).cloned().collect();
                Track { position: Some(p), inside: now, entered }
            },
            Materialized::with_value_serde(Serdes::json::<Track>()).name("vehicle-tracks"),
        )
        .to_stream()
        .flat_map(|vehicle: String, t: Option<Track>| {
            let t = t.unwrap_or_default();
            t.entered
                .into_iter()
                .map(|fence| {
                    let event = serde_json::json!({ "vehicle": vehicle, "geofence": fence, "position": t.position });
                    (vehicle.clone(), event)
                })
                .collect::<Vec<_>>()
        })
        .to("geofence-entries", Produced::with(Serdes::string(), Serdes::json()));
    builder.build()
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let bootstrap = std::env::var("STROM_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topology = topology()?;
    println!("{}", topology.describe());
    let config = StreamsConfig::new("vehicle-tracking", &bootstrap)
        .exactly_once()
        .state_dir(std::env::var("STATE_DIR").unwrap_or_else(|_| "./streams-state".into()));
    let mut streams = KafkaStreams::new(topology, config);
    streams.start()?;
    let addr = streams.serve_queries(
        &std::env::var("QUERY_LISTEN").unwrap_or_else(|_| "127.0.0.1:7072".into()),
    )?;
    println!("running; positions at http://{addr}/stores/vehicle-latest-position/keys/VEHICLE — Ctrl-C stops");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let _ = runtime.block_on(tokio::signal::ctrl_c());
    streams.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_position_and_geofence_entries() {
        let driver = TopologyTestDriver::new(topology().unwrap()).unwrap();
        let input = driver.input_topic(
            "vehicle-positions",
            Serdes::string(),
            Serdes::json::<Position>(),
        );
        let at = |lat, lon| Position { lat, lon };
        input.pipe_input("v1".into(), at(52.50, 13.40)).unwrap(); // outside
        input.pipe_input("v1".into(), at(52.5201, 13.4051)).unwrap(); // enters the depot
        input.pipe_input("v1".into(), at(52.5202, 13.4052)).unwrap(); // still inside
        input.pipe_input("v1".into(), at(52.50, 13.40)).unwrap(); // leaves
        input.pipe_input("v1".into(), at(52.5200, 13.4050)).unwrap(); // enters again
        let entries = driver.output_topic(
            "geofence-entries",
            Serdes::string(),
            Serdes::json::<serde_json::Value>(),
        );
        let fences: Vec<String> = entries
            .read_values_to_vec()
            .iter()
            .map(|e| e["geofence"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(fences, vec!["depot", "depot"]);
        let latest = driver
            .key_value_store(
                "vehicle-latest-position",
                Serdes::string(),
                Serdes::json::<Position>(),
            )
            .unwrap();
        assert_eq!(
            latest.get(&"v1".to_string()).unwrap(),
            Some(at(52.5200, 13.4050))
        );
    }
}
