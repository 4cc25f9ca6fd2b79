//! UTC wall-clock fields of a timestamp, computed with integer arithmetic (no time zone data:
//! every window and policy field is in UTC, so a decision never depends on the host's zone).

/// Milliseconds in a minute, hour and day.
pub(crate) const MINUTE_MS: u64 = 60_000;
pub(crate) const HOUR_MS: u64 = 60 * MINUTE_MS;
pub(crate) const DAY_MS: u64 = 24 * HOUR_MS;

/// Three-letter weekday names, Monday first.
pub(crate) const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A timestamp's UTC wall-clock fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Utc {
    /// 0 = Monday ... 6 = Sunday.
    pub weekday: u8,
    /// 0-23.
    pub hour: u8,
    /// 0-59.
    pub minute: u8,
}

impl Utc {
    pub fn from_millis(at_millis: u64) -> Self {
        let days = at_millis / DAY_MS;
        let in_day = at_millis % DAY_MS;
        Utc {
            // 1970-01-01 was a Thursday (index 3).
            weekday: ((days + 3) % 7) as u8,
            hour: (in_day / HOUR_MS) as u8,
            minute: ((in_day % HOUR_MS) / MINUTE_MS) as u8,
        }
    }

    /// Minutes since Monday 00:00.
    pub fn minute_of_week(self) -> u32 {
        u32::from(self.weekday) * 1440 + self.minute_of_day()
    }

    /// Minutes since 00:00.
    pub fn minute_of_day(self) -> u32 {
        u32::from(self.hour) * 60 + u32::from(self.minute)
    }

    /// `Mon` ... `Sun`.
    pub fn weekday_name(self) -> &'static str {
        WEEKDAYS[usize::from(self.weekday) % 7]
    }
}

/// Parses an RFC 3339 timestamp into milliseconds since the epoch.
pub(crate) fn parse_rfc3339(text: &str) -> Result<u64, String> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp: {e}"))?;
    let millis = t.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(millis).map_err(|_| format!("`{text}` is before 1970"))
}

/// Formats milliseconds since the epoch as RFC 3339 (UTC), for messages.
pub(crate) fn format_rfc3339(at_millis: u64) -> String {
    let nanos = i128::from(at_millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{at_millis} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_match_a_known_date() {
        // 2025-06-13T16:30:00Z was a Friday.
        let at = parse_rfc3339("2025-06-13T16:30:00Z").unwrap();
        let u = Utc::from_millis(at);
        assert_eq!((u.weekday_name(), u.hour, u.minute), ("Fri", 16, 30));
        assert_eq!(format_rfc3339(at), "2025-06-13T16:30:00Z");
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        assert_eq!(
            parse_rfc3339("2025-06-13T18:30:00+02:00"),
            parse_rfc3339("2025-06-13T16:30:00Z")
        );
    }
}
