//! Wall-clock helpers: Rigger stores and sends times as Unix milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Formats Unix milliseconds as an RFC 3339 UTC timestamp (`2026-11-23T05:28:44Z`).
pub fn format_ms(ms: i64) -> String {
    if ms <= 0 {
        return "never".to_string();
    }
    let at = UNIX_EPOCH + std::time::Duration::from_secs(ms.div_euclid(1000) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_ms(0), "never");
        assert_eq!(format_ms(1_000), "1970-01-01T00:00:01Z");
        assert_eq!(format_ms(1_795_411_724_000), "2026-11-23T05:28:44Z");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
