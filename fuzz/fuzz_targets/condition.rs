//! The trigger condition language and dedup-key templates (`grace_model::condition`): parsing
//! never panics, and what parses evaluates without panicking and displays as text that parses
//! back to the same thing (the invariants are checked by the engine's own fuzz bodies).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    grace_model::condition::fuzz_condition(text);
    grace_model::condition::fuzz_key_template(text);
});
