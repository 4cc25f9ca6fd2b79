//! How many bytes of an answer a provider may read for the call in progress.
//!
//! A guest asks; a provider answers with as much as the system behind it holds (a metrics query
//! over every series, the tail of a chatty container's logs). The engine knows how much the run
//! may still hold — the guest's memory, the host's own cap — and sets it for the duration of
//! each call with [`with_response_budget`]; a provider that reads from outside reads at most
//! [`response_budget`] bytes and answers [`ExecError::TooLarge`](crate::ExecError::TooLarge)
//! past it, instead of holding the whole answer. Passed as a task-local value so that every
//! executor trait keeps its shape.

use std::future::Future;

tokio::task_local! {
    static RESPONSE_BUDGET: u64;
}

/// Runs `call` with a budget of `bytes` for what providers read on its behalf.
pub async fn with_response_budget<F: Future>(bytes: u64, call: F) -> F::Output {
    RESPONSE_BUDGET.scope(bytes, call).await
}

/// The budget of the call in progress, if the engine set one.
pub fn response_budget() -> Option<u64> {
    RESPONSE_BUDGET.try_with(|b| *b).ok()
}

/// The smaller of a provider's own cap and the call's budget.
pub fn response_cap(own: u64) -> u64 {
    response_budget().map_or(own, |budget| budget.min(own))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_cap_is_the_smaller_of_the_providers_and_the_calls() {
        assert_eq!(response_cap(100), 100, "no budget outside a call");
        assert_eq!(
            with_response_budget(10, async { response_cap(100) }).await,
            10
        );
        assert_eq!(
            with_response_budget(1000, async { response_cap(100) }).await,
            100
        );
    }
}
