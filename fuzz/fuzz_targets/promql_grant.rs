//! Metrics grants over parsed PromQL (`grace_model::promql_grant`): any query text is refused
//! or accepted without a panic, and every selector of an accepted query matches the grant (the
//! invariant is checked by the engine's own fuzz body, independently of the grant's walk).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    grace_model::promql_grant::fuzz_query(text);
});
