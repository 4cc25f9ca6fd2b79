//! The page shell and the small pieces every page uses: times, badges, JSON, pagers.
//!
//! Everything is written with `maud`, which escapes every interpolated value: text from a guest,
//! an event or an approval comment can only ever be text on the page. `PreEscaped` is used for
//! nothing that comes from outside.

use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::session::Viewer;

/// A page: its title, the navigation entry it belongs to, and its body.
pub fn page(viewer: Option<&Viewer>, title: &str, current: Nav, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx: no inline styles (the CSP forbids them), no eval, no script tags in
                // swapped content, requests only to this server.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true,"historyCacheSize":0}"#;
                title { (title) " · GRACE" }
                link rel="stylesheet" href=(assets::url("app.css"));
                @if current == Nav::Charts {
                    link rel="stylesheet" href=(assets::url("uPlot.min.css"));
                }
                script src=(assets::url("htmx.min.js")) defer {}
                @if current == Nav::Charts {
                    script src=(assets::url("uPlot.iife.min.js")) defer {}
                }
                script src=(assets::url("app.js")) defer {}
            }
            // One server-sent event stream per page (opened by `app.js` while the page is
            // visible): each live region refreshes itself when a topic it shows changes (see
            // `live`).
            body data-live=[viewer.map(|_| "/ui/stream")] {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/" { "GRACE" }
                    @if let Some(viewer) = viewer {
                        nav aria-label="Main" {
                            ul {
                                @for nav in Nav::ALL {
                                    li {
                                        a href=(nav.href()) aria-current=[(nav == current).then_some("page")] { (nav.label()) }
                                    }
                                }
                            }
                        }
                        div class="who" {
                            span { (viewer.caller.principal_name) }
                            " "
                            span class="scopes" { "(" (viewer.caller.scopes) ")" }
                            @if viewer.signed_in {
                                form method="post" action="/logout" class="inline" {
                                    (viewer.csrf_field())
                                    button type="submit" class="link" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    (body)
                }
            }
        }
    }
}

/// The pages in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `/`.
    Overview,
    /// `/runs`.
    Runs,
    /// `/approvals`.
    Approvals,
    /// `/playbooks`.
    Playbooks,
    /// `/charts`.
    Charts,
    /// `/graph`.
    Graph,
    /// Sign-in and error pages.
    None,
}

impl Nav {
    const ALL: [Nav; 6] = [
        Nav::Overview,
        Nav::Runs,
        Nav::Approvals,
        Nav::Playbooks,
        Nav::Charts,
        Nav::Graph,
    ];

    fn href(self) -> &'static str {
        match self {
            Nav::Overview | Nav::None => "/",
            Nav::Runs => "/runs",
            Nav::Approvals => "/approvals",
            Nav::Playbooks => "/playbooks",
            Nav::Charts => "/charts",
            Nav::Graph => "/graph",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Nav::Overview | Nav::None => "Overview",
            Nav::Runs => "Runs",
            Nav::Approvals => "Approvals",
            Nav::Playbooks => "Playbooks",
            Nav::Charts => "Charts",
            Nav::Graph => "Health graph",
        }
    }
}

/// A live region: refreshed from `url` (this page, `select`ing the region's own id) whenever
/// one of `topics` changes. Without JavaScript it is plain content.
pub fn live(id: &str, url: &str, topics: &[&str], body: Markup) -> Markup {
    let trigger = topics
        .iter()
        .map(|t| format!("grace:{t} from:body"))
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        section id=(id) hx-get=(url) hx-trigger=(trigger) hx-select={"#" (id)} hx-swap="outerHTML" aria-live="polite" {
            (body)
        }
    }
}

/// A time in milliseconds since the epoch: UTC in the markup (and on hover), the viewer's own
/// zone once `app.js` has run.
pub fn time(millis: u64) -> Markup {
    let utc = utc(millis);
    html! {
        time datetime=(utc.iso) title={ (utc.text) " UTC" } data-local { (utc.text) " UTC" }
    }
}

/// An optional time, or a dash.
pub fn maybe_time(millis: Option<u64>) -> Markup {
    match millis {
        Some(m) => time(m),
        None => html! { "—" },
    }
}

struct Utc {
    iso: String,
    text: String,
}

/// The last millisecond of year 9999: RFC 3339 has four-digit years, and a time stored beyond
/// (an approval that never expires, a clock gone wrong) is shown as that, not refused.
const LAST_MILLIS: u64 = 253_402_300_799_999;

fn utc(millis: u64) -> Utc {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis.min(LAST_MILLIS));
    let iso = humantime::format_rfc3339_millis(at).to_string();
    let text = humantime::format_rfc3339_seconds(at)
        .to_string()
        .replacen('T', " ", 1)
        .trim_end_matches('Z')
        .to_owned();
    Utc { iso, text }
}

/// A duration in milliseconds, for people.
pub fn duration(millis: u64) -> String {
    if millis < 1000 {
        format!("{millis} ms")
    } else if millis < 60_000 {
        format!("{:.1} s", millis as f64 / 1000.0)
    } else if millis < 3_600_000 {
        format!("{} min {} s", millis / 60_000, (millis % 60_000) / 1000)
    } else {
        format!(
            "{} h {} min",
            millis / 3_600_000,
            (millis % 3_600_000) / 60_000
        )
    }
}

/// A state word in a coloured badge (the word carries the meaning; colour only helps).
pub fn badge(word: &str) -> Markup {
    let class = match word {
        "succeeded" | "approved" | "allowed" | "ok" | "up" | "enabled" | "healthy" => "good",
        "failed" | "denied" | "expired" | "down" | "tampered" | "critical" | "cancelled" => "bad",
        "waiting" | "waiting-approval" | "pending" | "queued" | "running" | "interrupted"
        | "degraded" | "warning" => "warn",
        _ => "neutral",
    };
    html! { span class={ "badge " (class) } { (word) } }
}

/// JSON for people: pretty, and cut at `max` characters with a note saying so.
pub fn json(value: &serde_json::Value, max: usize) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    let (shown, cut) = match text.char_indices().nth(max) {
        Some((at, _)) => (&text[..at], true),
        None => (text.as_str(), false),
    };
    html! {
        // Focusable, so that a keyboard can scroll it (it scrolls beyond 28 lines).
        pre class="json" tabindex="0" { code { (shown) } }
        @if cut { p class="note" { "(cut at " (max) " characters; the API has it whole)" } }
    }
}

/// Text cut at `max` characters.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Links to the first page of a list (unless on it) and to the next one (from the cursor
/// where this one ends), if any.
pub fn pager(path: &str, query: &str, first: bool, next: Option<&str>) -> Markup {
    let sep = if query.is_empty() { "" } else { "&" };
    html! {
        nav class="pager" aria-label="Pages" {
            @if !first { a href={ (path) "?" (query) } { "← Newest" } }
            @if let Some(cursor) = next {
                a href={ (path) "?" (query) (sep) "before=" (super::session::urlencode(cursor)) } rel="next" { "Older →" }
            }
        }
    }
}

/// A message page (errors, refusals), with the status the response carries.
pub fn message(viewer: Option<&Viewer>, title: &str, text: &str) -> Markup {
    page(
        viewer,
        title,
        Nav::None,
        html! {
            h1 { (title) }
            p { (text) }
            p { a href="/" { "Back to the overview" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_outside_is_escaped_wherever_it_is_shown() {
        let hostile = "<script>alert(1)</script>\"'&";
        let shown =
            html! { p { (hostile) } (json(&serde_json::json!({"x": hostile}), 100)) }.into_string();
        assert!(!shown.contains("<script>"), "{shown}");
        assert!(shown.contains("&lt;script&gt;"), "{shown}");
    }

    #[test]
    fn times_are_utc_in_the_markup() {
        let shown = time(1_796_000_000_000).into_string();
        assert!(shown.contains("datetime=\"2026-11-30T"), "{shown}");
        assert!(shown.contains(" UTC"), "{shown}");
    }

    #[test]
    fn a_time_beyond_year_9999_is_shown_not_a_panic() {
        let shown = time(u64::MAX).into_string();
        assert!(shown.contains("9999-12-31"), "{shown}");
    }

    #[test]
    fn long_json_is_cut_and_says_so() {
        let big = serde_json::json!({"x": "a".repeat(500)});
        let shown = json(&big, 100).into_string();
        assert!(shown.contains("cut at 100 characters"));
        assert!(shown.len() < 400);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12), "12 ms");
        assert_eq!(duration(1500), "1.5 s");
        assert_eq!(duration(125_000), "2 min 5 s");
    }
}
