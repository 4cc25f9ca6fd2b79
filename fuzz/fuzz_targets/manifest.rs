//! `playbook.toml` parsing (`grace_model::Manifest::parse`): any text is refused with an error
//! or accepted, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = grace_model::Manifest::parse(text);
});
