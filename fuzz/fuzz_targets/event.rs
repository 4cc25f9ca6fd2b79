//! Event decoding (`grace_model::TriggerEvent::from_json`): any text is refused or decoded into
//! an event that validates, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(event) = grace_model::TriggerEvent::from_json(text, 1_767_225_600_000) {
        assert!(event.validate().is_ok(), "a decoded event does not validate");
        let _ = event.payload_text();
    }
});
