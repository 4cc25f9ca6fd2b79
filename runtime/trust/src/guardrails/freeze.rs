//! Freeze windows: when no change may run. Three forms, all in UTC:
//!
//! - `2025-12-24T00:00:00Z/2025-12-27T00:00:00Z`: an explicit interval, RFC 3339 start and end
//!   joined with `/` (start included, end excluded; offsets other than `Z` are converted);
//! - `Fri 16:00-Mon 08:00`: every week, from a weekday and time to another (wrapping over the
//!   weekend is fine);
//! - `daily 22:00-06:00`: every day, from a time to another (wrapping over midnight is fine).
//!
//! The weekly and daily forms may end with ` UTC`; any other zone is rejected rather than
//! guessed.

use std::fmt;

use crate::utc::{Utc, WEEKDAYS, format_rfc3339, parse_rfc3339};

/// A freeze window; written and read as its text form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FreezeWindow {
    text: String,
    span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    /// Milliseconds since the epoch, `[from, until)`.
    Between { from: u64, until: u64 },
    /// Minutes since Monday 00:00, `[start, end)`, wrapping when `end < start`.
    Weekly { start: u32, end: u32 },
    /// Minutes since 00:00, `[start, end)`, wrapping when `end < start`.
    Daily { start: u32, end: u32 },
}

const FORMS: &str = "expected `<RFC 3339>/<RFC 3339>`, `<Day> HH:MM-<Day> HH:MM` (e.g. `Fri 16:00-Mon 08:00`) or `daily HH:MM-HH:MM`, in UTC";

impl FreezeWindow {
    /// Parses a window (see the module documentation for the forms).
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let span = if let Some((from, until)) = trimmed.split_once('/') {
            let (from, until) = (parse_rfc3339(from.trim())?, parse_rfc3339(until.trim())?);
            if from >= until {
                return Err(format!("freeze window `{text}` ends before it starts"));
            }
            Span::Between { from, until }
        } else {
            let body = trimmed
                .strip_suffix(" UTC")
                .or_else(|| trimmed.strip_suffix(" utc"))
                .unwrap_or(trimmed)
                .trim();
            let (start, end) = body
                .split_once('-')
                .ok_or_else(|| format!("freeze window `{text}`: {FORMS}"))?;
            if let Some(start) = start
                .strip_prefix("daily ")
                .or_else(|| start.strip_prefix("Daily "))
            {
                Span::Daily {
                    start: clock(start.trim(), text)?,
                    end: clock(end.trim(), text)?,
                }
            } else {
                Span::Weekly {
                    start: day_and_clock(start.trim(), text)?,
                    end: day_and_clock(end.trim(), text)?,
                }
            }
        };
        if let Span::Weekly { start, end } | Span::Daily { start, end } = span
            && start == end
        {
            return Err(format!(
                "freeze window `{text}` starts and ends at the same time"
            ));
        }
        Ok(FreezeWindow {
            text: trimmed.to_owned(),
            span,
        })
    }

    /// Whether `at_millis` (since the epoch) is inside the window.
    pub fn contains(&self, at_millis: u64) -> bool {
        let inside = |m: u32, start: u32, end: u32| {
            if start < end {
                start <= m && m < end
            } else {
                m >= start || m < end
            }
        };
        match self.span {
            Span::Between { from, until } => from <= at_millis && at_millis < until,
            Span::Weekly { start, end } => {
                inside(Utc::from_millis(at_millis).minute_of_week(), start, end)
            }
            Span::Daily { start, end } => {
                inside(Utc::from_millis(at_millis).minute_of_day(), start, end)
            }
        }
    }

    /// The window as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A description for messages, e.g. `Fri 16:00-Mon 08:00 UTC` or the interval in UTC.
    pub fn describe(&self) -> String {
        match self.span {
            Span::Between { from, until } => {
                format!("{} to {}", format_rfc3339(from), format_rfc3339(until))
            }
            Span::Weekly { .. } | Span::Daily { .. } if self.text.ends_with("UTC") => {
                self.text.clone()
            }
            Span::Weekly { .. } | Span::Daily { .. } => format!("{} UTC", self.text),
        }
    }
}

impl fmt::Display for FreezeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for FreezeWindow {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        FreezeWindow::parse(&s)
    }
}

impl From<FreezeWindow> for String {
    fn from(w: FreezeWindow) -> String {
        w.text
    }
}

/// `HH:MM` as minutes since midnight.
fn clock(s: &str, text: &str) -> Result<u32, String> {
    let bad = || format!("freeze window `{text}`: `{s}` is not a time of day (HH:MM); {FORMS}");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// `Day HH:MM` (`Fri 16:00`, `friday 16:00`) as minutes since Monday 00:00.
fn day_and_clock(s: &str, text: &str) -> Result<u32, String> {
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let (day, time) = s.split_once(' ').ok_or_else(|| {
        format!("freeze window `{text}`: `{s}` lacks a weekday or a time; {FORMS}")
    })?;
    let index = (0..7u32)
        .find(|&i| {
            let i = i as usize;
            WEEKDAYS[i].eq_ignore_ascii_case(day) || FULL[i].eq_ignore_ascii_case(day)
        })
        .ok_or_else(|| {
            format!("freeze window `{text}`: `{day}` is not a weekday (Mon, Tue, ... Sun)")
        })?;
    Ok(index * 1440 + clock(time.trim(), text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> u64 {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn a_weekend_window_wraps_over_sunday_night() {
        let w = FreezeWindow::parse("Fri 16:00-Mon 08:00 UTC").unwrap();
        // 2025-06-13 is a Friday.
        assert!(!w.contains(at("2025-06-13T15:59:00Z")));
        assert!(w.contains(at("2025-06-13T16:00:00Z")));
        assert!(w.contains(at("2025-06-15T12:00:00Z")));
        assert!(w.contains(at("2025-06-16T07:59:00Z")));
        assert!(!w.contains(at("2025-06-16T08:00:00Z")));
        assert!(!w.contains(at("2025-06-18T12:00:00Z")));
    }

    #[test]
    fn a_daily_window_wraps_over_midnight() {
        let w = FreezeWindow::parse("daily 22:00-06:00").unwrap();
        assert!(w.contains(at("2025-06-13T23:30:00Z")));
        assert!(w.contains(at("2025-06-14T05:59:00Z")));
        assert!(!w.contains(at("2025-06-14T12:00:00Z")));
        assert_eq!(w.describe(), "daily 22:00-06:00 UTC");
    }

    #[test]
    fn an_explicit_interval_includes_its_start_and_excludes_its_end() {
        let w = FreezeWindow::parse("2025-12-24T00:00:00Z/2025-12-27T00:00:00+00:00").unwrap();
        assert!(w.contains(at("2025-12-24T00:00:00Z")));
        assert!(!w.contains(at("2025-12-27T00:00:00Z")));
    }

    #[test]
    fn malformed_windows_are_rejected_saying_what_is_expected() {
        for bad in [
            "Fri 16:00",
            "Fry 16:00-Mon 08:00",
            "Fri 25:00-Mon 08:00",
            "daily 10:00-10:00",
            "2025-12-27T00:00:00Z/2025-12-24T00:00:00Z",
            "Fri 16:00-Mon 08:00 CET",
        ] {
            let e = FreezeWindow::parse(bad).unwrap_err();
            assert!(e.contains(bad) || e.contains("RFC 3339"), "{bad}: {e}");
        }
    }
}
