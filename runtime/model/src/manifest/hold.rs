//! A trigger's `for`: how long, or for how many events, its condition must hold; parsed from
//! `2m` or `3 events` and written back the same way.

use std::time::Duration;

use serde::Serialize;

/// A trigger's `for`: how long the condition must hold before the trigger fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hold {
    /// True on every matching event for at least this long (`for = "2m"`), by event timestamps.
    Duration(Duration),
    /// True on this many consecutive matching events (`for = "3 events"`).
    Events(u32),
}

impl Hold {
    /// Parses `2m` (any humantime duration) or `3 events` / `1 event`; zero is refused.
    pub fn parse(text: &str) -> Result<Hold, String> {
        let text = text.trim();
        let count = text
            .strip_suffix("events")
            .or_else(|| text.strip_suffix("event"));
        if let Some(count) = count {
            return match count.trim().parse::<u32>() {
                Ok(0) => Err(
                    "`0 events` would never hold; leave `for` out to fire on the first event"
                        .into(),
                ),
                Ok(n) => Ok(Hold::Events(n)),
                Err(_) => Err(format!(
                    "`{text}` is not a count of events like `3 events` (at most {})",
                    u32::MAX
                )),
            };
        }
        match humantime::parse_duration(text) {
            Ok(d) if d.is_zero() => Err(format!(
                "`{text}` is zero; leave `for` out to fire on the first event"
            )),
            Ok(d) => Ok(Hold::Duration(d)),
            Err(_) => Err(format!(
                "`{text}` is not a duration like `2m` or a count like `3 events`"
            )),
        }
    }
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hold::Duration(d) => write!(f, "{}", humantime::format_duration(*d)),
            Hold::Events(1) => f.write_str("1 event"),
            Hold::Events(n) => write!(f, "{n} events"),
        }
    }
}

/// Serialized as written in manifests: `"2m"` or `"3 events"`.
impl Serialize for Hold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_parse_as_durations_or_event_counts() {
        assert_eq!(
            Hold::parse("90s"),
            Ok(Hold::Duration(Duration::from_secs(90)))
        );
        assert_eq!(Hold::parse("3 events"), Ok(Hold::Events(3)));
        assert_eq!(Hold::parse("1 event"), Ok(Hold::Events(1)));
        assert_eq!(Hold::parse("2events"), Ok(Hold::Events(2)));
        for bad in ["0s", "0 events", "-1 events", "many events", "soon", ""] {
            assert!(Hold::parse(bad).is_err(), "`{bad}` was accepted");
        }
        assert_eq!(Hold::Duration(Duration::from_secs(120)).to_string(), "2m");
        assert_eq!(Hold::Events(1).to_string(), "1 event");
        assert_eq!(Hold::Events(3).to_string(), "3 events");
        assert_eq!(
            serde_json::to_string(&Hold::Events(3)).unwrap(),
            "\"3 events\""
        );
    }
}
