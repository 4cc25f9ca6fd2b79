//! `clock`: the run clock. In simulation it is virtual: sleeping advances it at once.

use std::time::Duration;

use grace_executor::ExecError;
use grace_model::capability;
use serde_json::json;

use crate::bindings::clock::Host;
use crate::bindings::types::Error;
use crate::host::HostState;
use crate::pipeline::{Call, Refusal};

impl Host for HostState {
    async fn now(&mut self) -> wasmtime::Result<u64> {
        let call = Call::read(&capability::clock::NOW, json!({}));
        let fallback = self.run.executors.clock.now_millis();
        let now = self
            .run
            .perform(
                call,
                |_| async { Ok(()) },
                |scope, ()| async move { Ok(scope.executors.clock.now_millis()) },
            )
            .await?;
        Ok(now.unwrap_or(fallback))
    }

    async fn sleep(&mut self, millis: u64) -> wasmtime::Result<Result<(), Error>> {
        let call = Call::read(&capability::clock::SLEEP, json!({ "millis": millis }));
        self.run
            .perform(
                call,
                move |scope| async move {
                    let left = scope.remaining();
                    if Duration::from_millis(millis) > left {
                        return Err(Refusal::Failed(ExecError::TimedOut(format!(
                            "sleeping {millis} ms would pass the run's deadline ({} ms left)",
                            left.as_millis()
                        ))));
                    }
                    Ok(())
                },
                move |scope, ()| async move {
                    scope
                        .executors
                        .clock
                        .sleep(Duration::from_millis(millis))
                        .await;
                    Ok(())
                },
            )
            .await
    }
}
