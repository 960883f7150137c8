//! What every client command shares: how to reach the cluster (`--bootstrap`,
//! `-X key=value`), `key=value` parsing, and plain-text tables.

use anyhow::Context as _;
use clap::Args;
use rdkafka::ClientConfig;
use std::io::Write;
use std::time::Duration;

/// How long an admin or metadata request may take before the command gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection options shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Kafka bootstrap server(s), HOST:PORT[,HOST:PORT...].
    #[arg(
        long,
        global = true,
        env = "STROM_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT"
    )]
    pub bootstrap: String,

    /// Extra librdkafka property, e.g. `-X security.protocol=ssl` (repeatable).
    /// Applied last, so it overrides anything strom sets itself.
    #[arg(
        short = 'X',
        global = true,
        value_name = "KEY=VALUE",
        value_parser = parse_key_value
    )]
    pub properties: Vec<(String, String)>,
}

impl ClientArgs {
    /// A librdkafka configuration with the bootstrap servers, then `defaults`
    /// (strom's choices for this command), then the user's `-X` overrides.
    pub fn config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

/// Parses `key=value`, splitting at the first `=`; the value may be empty and
/// may itself contain `=`.
pub fn parse_key_value(input: &str) -> Result<(String, String), String> {
    match input.split_once('=') {
        Some((key, _)) if key.trim().is_empty() => Err(format!("empty key in `{input}`")),
        Some((key, value)) => Ok((key.trim().to_string(), value.to_string())),
        None => Err(format!("expected KEY=VALUE, got `{input}`")),
    }
}

/// A key/value separator given on the command line, after [`unescape`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Separator(pub Vec<u8>);

/// Parses a non-empty separator, e.g. `:`, `::`, `\t` or `\x1f`.
pub fn parse_separator(input: &str) -> Result<Separator, String> {
    let bytes = unescape(input)?;
    if bytes.is_empty() {
        return Err("the separator must not be empty".into());
    }
    Ok(Separator(bytes))
}

/// Interprets the escapes `\t`, `\n`, `\r`, `\\` and `\xHH` in a separator given
/// on the command line; anything else stays as typed.
pub fn unescape(input: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        let simple = match rest.first() {
            Some(b't') => Some(b'\t'),
            Some(b'n') => Some(b'\n'),
            Some(b'r') => Some(b'\r'),
            Some(b'\\') => Some(b'\\'),
            _ => None,
        };
        if let Some(escaped) = simple {
            out.push(escaped);
            rest = &rest[1..];
        } else if rest.first() == Some(&b'x') {
            let hex = rest
                .get(1..3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("`{input}`: \\x needs two hex digits"))?;
            out.push(hex);
            rest = &rest[3..];
        } else {
            out.push(b'\\');
        }
    }
    Ok(out)
}

/// Renders rows as left-aligned columns separated by two spaces. Rows may be
/// shorter or longer than the header.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let lines: Vec<&[String]> = std::iter::once(header.as_slice())
        .chain(rows.iter().map(Vec::as_slice))
        .collect();
    let columns = lines.iter().map(|cells| cells.len()).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for cells in &lines {
        for (width, cell) in widths.iter_mut().zip(cells.iter()) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for cells in lines {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Writes to stdout, treating a closed pipe (`strom ... | head`) as success.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

/// Prints a value as pretty JSON followed by a newline.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    print_stdout(&text)
}

/// Standard base64 (RFC 4648, with padding), used for binary keys and values
/// in JSON output.
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_splits_at_first_equals() {
        assert_eq!(
            parse_key_value("sasl.jaas=a=b").unwrap(),
            ("sasl.jaas".to_string(), "a=b".to_string())
        );
        assert_eq!(
            parse_key_value("retention.ms=").unwrap(),
            ("retention.ms".to_string(), String::new())
        );
        assert_eq!(
            parse_key_value(" acks =all").unwrap(),
            ("acks".to_string(), "all".to_string())
        );
    }

    #[test]
    fn key_value_rejects_missing_equals_or_key() {
        assert!(parse_key_value("acks").is_err());
        assert!(parse_key_value("=1").is_err());
        assert!(parse_key_value("").is_err());
    }

    #[test]
    fn separators_unescape() {
        assert_eq!(unescape("\\t").unwrap(), b"\t");
        assert_eq!(unescape("::").unwrap(), b"::");
        assert_eq!(unescape("a\\nb\\r\\\\").unwrap(), b"a\nb\r\\");
        assert_eq!(unescape("\\x00\\xff|").unwrap(), b"\x00\xff|");
        assert_eq!(unescape("\\q").unwrap(), b"\\q");
        assert_eq!(unescape("end\\").unwrap(), b"end\\");
        assert!(unescape("\\x1").is_err());
        assert!(unescape("\\xzz").is_err());
    }

    #[test]
    fn overrides_win_over_defaults() {
        let args = ClientArgs {
            bootstrap: "h:1".into(),
            properties: vec![("acks".into(), "1".into())],
        };
        let config = args.config(&[("acks", "all"), ("linger.ms", "5")]);
        assert_eq!(config.get("bootstrap.servers"), Some("h:1"));
        assert_eq!(config.get("acks"), Some("1"));
        assert_eq!(config.get("linger.ms"), Some("5"));
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64_encode(input.as_bytes()), expected, "{input:?}");
        }
        assert_eq!(base64_encode(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn table_aligns_columns() {
        let table = render_table(
            &["TOPIC", "PARTITIONS"],
            &[
                vec!["a-long-name".into(), "1".into()],
                vec!["b".into(), "12".into()],
            ],
        );
        assert_eq!(
            table,
            "TOPIC        PARTITIONS\na-long-name  1\nb            12\n"
        );
        let ragged = render_table(&["A"], &[vec!["x".into(), "extra".into()], vec![]]);
        assert_eq!(ragged, "A\nx  extra\n\n");
    }
}
