//! `log`: the guest's messages, into tracing, the run's timeline and the ledger. In tracing they
//! are escaped (`text::Escaped`): a guest's line is one line of the server's log, whatever it holds.

use grace_model::capability;
use serde_json::json;

use crate::bindings::log::{Host, Level};
use crate::bindings::types::Error;
use crate::host::HostState;
use crate::pipeline::{Call, Refusal, preview};
use crate::text::Escaped;

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

impl Host for HostState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<Result<(), Error>> {
        let max = self.run.limits.max_log_bytes as usize;
        let recorded = if message.len() <= max {
            serde_json::Value::String(message.clone())
        } else {
            preview(&message)
        };
        let call = Call::read(
            &capability::log::LOG,
            json!({ "level": level_name(level), "message": recorded, "bytes": message.len() }),
        );
        // Only what is actually logged counts towards the run's total; an oversized message is
        // refused below and only its preview is kept.
        if message.len() <= max {
            self.run.admit_log(&call, message.len()).await?;
        }
        let run_id = self.run.run_id.clone();
        let guest = self.run.guest.name.clone();
        self.run
            .perform(
                call,
                move |_| async move {
                    if message.len() > max {
                        return Err(Refusal::Invalid(format!(
                            "the message is {} bytes, above limits.max_log_bytes {max}",
                            message.len()
                        )));
                    }
                    Ok(message)
                },
                move |_, message| async move {
                    match level {
                        Level::Trace => tracing::trace!(target: "grace::guest", run = %run_id, guest = %Escaped(&guest), "{}", Escaped(&message)),
                        Level::Debug => tracing::debug!(target: "grace::guest", run = %run_id, guest = %Escaped(&guest), "{}", Escaped(&message)),
                        Level::Info => tracing::info!(target: "grace::guest", run = %run_id, guest = %Escaped(&guest), "{}", Escaped(&message)),
                        Level::Warn => tracing::warn!(target: "grace::guest", run = %run_id, guest = %Escaped(&guest), "{}", Escaped(&message)),
                        Level::Error => tracing::error!(target: "grace::guest", run = %run_id, guest = %Escaped(&guest), "{}", Escaped(&message)),
                    }
                    Ok(())
                },
            )
            .await
    }
}
