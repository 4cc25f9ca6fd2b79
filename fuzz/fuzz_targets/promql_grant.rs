//! Metrics grants over parsed PromQL (`grace_model::promql_grant`): any query text is refused
//! or accepted without a panic, and every selector of an accepted query matches the grant (the
//! invariant is checked by the engine's own fuzz body, independently of the grant's walk).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // libFuzzer's hook aborts on every panic, even one the code under test catches. The
        // grant catches promql-parser's own panics (a number too large for a duration) and
        // refuses the query, so only a panic that escapes must end the run: libfuzzer-sys
        // still aborts on those, after its `catch_unwind`.
        drop(std::panic::take_hook());
    },
    |text: &str| {
        grace_model::promql_grant::fuzz_query(text);
    }
);
