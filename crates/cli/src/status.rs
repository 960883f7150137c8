//! `strom status`: a one-screen summary of a running broker, read from its
//! admin listener (`GET /v1/status`).
//!
//! ```text
//! strom status                        # the local broker, 127.0.0.1:9644
//! strom status --admin broker-1:9644
//! strom status --json                 # the endpoint's JSON as it is
//! ```

use anyhow::{bail, Context};
use clap::Args;
use serde_json::Value;
use std::fmt::Write as _;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The broker's admin listener, HOST:PORT.
    #[arg(long, env = "STROM_ADMIN", default_value = "127.0.0.1:9644")]
    pub admin: String,
    /// Print the JSON of GET /v1/status instead of the summary.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let body = http_get(&args.admin, "/v1/status").await?;
    if args.json {
        println!("{body}");
        return Ok(());
    }
    let status: Value = serde_json::from_str(&body)
        .with_context(|| format!("{} answered /v1/status with something not JSON", args.admin))?;
    print!("{}", render(&status));
    Ok(())
}

/// GET over plain HTTP/1.1 (the admin listener's only protocol); the body
/// of a 200 answer.
async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot reach the admin listener at {addr}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .with_context(|| format!("no answer from {addr} within 10 s"))??;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("{addr} did not answer with HTTP"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        bail!("{addr}{path} answered {status}: {}", body.trim());
    }
    Ok(body.to_string())
}

/// The summary, as printed.
pub fn render(s: &Value) -> String {
    let mut out = String::new();
    let uptime = s["uptime_seconds"].as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "strom {} · node {} · cluster {} · up {} · {}",
        s["version"].as_str().unwrap_or("?"),
        s["node_id"],
        s["cluster_id"].as_str().unwrap_or("?"),
        duration(uptime),
        if s["ready"].as_bool() == Some(true) {
            "ready"
        } else {
            "NOT READY"
        },
    );
    let _ = writeln!(
        out,
        "listener     {}",
        s["listener"].as_str().unwrap_or("-")
    );
    let _ = writeln!(
        out,
        "topics       {} ({} partitions), {} on disk",
        s["topics"],
        s["partitions"],
        bytes(s["bytes_on_disk"].as_u64().unwrap_or(0))
    );
    let _ = writeln!(out, "connections  {} open", s["connections_open"]);

    let topics = s["top_topics"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(out, "\ntop topics by bytes produced (since start)");
    let _ = writeln!(
        out,
        "  {:<32} {:>5} {:>10} {:>10} {:>12} {:>10}",
        "TOPIC", "PARTS", "ON DISK", "IN", "RECORDS IN", "OUT"
    );
    for t in &topics {
        let _ = writeln!(
            out,
            "  {:<32} {:>5} {:>10} {:>10} {:>12} {:>10}",
            t["topic"].as_str().unwrap_or("?"),
            t["partitions"].to_string(),
            bytes(t["size_bytes"].as_u64().unwrap_or(0)),
            bytes(t["produce_bytes"].as_u64().unwrap_or(0)),
            t["produce_records"].to_string(),
            bytes(t["fetch_bytes"].as_u64().unwrap_or(0)),
        );
    }
    let groups = s["groups"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(out, "\ngroups ({})", groups.len());
    if !groups.is_empty() {
        let _ = writeln!(
            out,
            "  {:<32} {:<20} {:>7} {:>10}",
            "GROUP", "STATE", "MEMBERS", "LAG"
        );
    }
    for g in &groups {
        let _ = writeln!(
            out,
            "  {:<32} {:<20} {:>7} {:>10}",
            g["group"].as_str().unwrap_or("?"),
            g["state"].as_str().unwrap_or("?"),
            g["members"].to_string(),
            g["lag"].to_string(),
        );
    }
    out
}

fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_summary() {
        let status = serde_json::json!({
            "version": "0.1.0", "node_id": 1, "cluster_id": "abc", "uptime_seconds": 3725,
            "ready": true, "listener": "127.0.0.1:9092", "topics": 2, "partitions": 4,
            "bytes_on_disk": 3 * 1024 * 1024, "connections_open": 5,
            "top_topics": [{"topic": "orders", "partitions": 3, "size_bytes": 2048,
                "produce_bytes": 4096, "produce_records": 40, "fetch_bytes": 0}],
            "groups": [{"group": "billing", "state": "Stable", "members": 2, "lag": 7}],
        });
        let text = render(&status);
        assert!(text.contains("up 1h 2m · ready"), "{text}");
        assert!(text.contains("2 (4 partitions), 3.0 MiB on disk"), "{text}");
        let header = text.lines().find(|l| l.contains("TOPIC")).unwrap();
        let row = text.lines().find(|l| l.contains("orders")).unwrap();
        assert_eq!(row.len(), header.len(), "columns line up:\n{text}");
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["orders", "3", "2.0", "KiB", "4.0", "KiB", "40", "0", "B"]
        );
        assert!(text.contains("4.0 KiB"), "{text}");
        assert!(text.contains("billing"), "{text}");
        assert!(text.contains("connections  5 open"), "{text}");
    }

    #[test]
    fn human_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(90_000), "1d 1h");
    }
}
