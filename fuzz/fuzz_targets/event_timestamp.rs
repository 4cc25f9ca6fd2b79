//! Event timestamps (`grace_model::event`): whatever timestamp an event arrives with, as
//! milliseconds (API, collectors) or as text (RFC 3339), decoding never panics, and an event
//! that is accepted formats (`format_millis`, JSON for the event log) without panicking and
//! reads back as the same event. A timestamp past year 9999 once panicked the event writer.
#![no_main]

use grace_model::TriggerEvent;
use grace_model::event::{MAX_TIMESTAMP_MILLIS, format_millis};
use libfuzzer_sys::fuzz_target;

/// Formats an accepted event every way the host does, and reads it back.
fn round_trip(event: &TriggerEvent) {
    assert!(event.timestamp <= MAX_TIMESTAMP_MILLIS, "accepted past 9999");
    let _ = format_millis(event.timestamp);
    let json = serde_json::to_string(event).expect("an accepted event serializes");
    let back: TriggerEvent = serde_json::from_str(&json).expect("and reads back");
    assert_eq!(&back, event);
}

fuzz_target!(|data: &[u8]| {
    let Some((millis, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let millis = u64::from_le_bytes(*millis);
    let text = String::from_utf8_lossy(rest);
    // Formatting is total, whatever the time.
    let _ = format_millis(millis);

    let base = serde_json::json!({
        "event_type": "metrics.latency", "source": "fuzz", "actor": "fuzz", "resource": "api",
    });
    for timestamp in [
        serde_json::json!(millis),
        serde_json::json!(text),
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default(),
    ] {
        let mut value = base.clone();
        value["timestamp"] = timestamp;
        if let Ok(event) = TriggerEvent::from_value(value, 1_767_225_600_000) {
            round_trip(&event);
        }
    }
    if let Ok(event) = TriggerEvent::from_guest(
        "metrics.latency".into(),
        "fuzz".into(),
        "fuzz".into(),
        "api".into(),
        "{}",
        millis,
    ) {
        round_trip(&event);
    }
});
