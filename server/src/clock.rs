//! The wall clock, as the server stores times.

/// Milliseconds since the Unix epoch: the timestamps stored with messages.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
