//! `config`: the `[config]` table of the guest's own manifest.

use grace_model::capability;
use serde_json::json;

use crate::bindings::config::Host;
use crate::host::HostState;
use crate::pipeline::{Call, check_text, preview};

impl Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        let call = Call::read(&capability::config::GET, json!({ "key": preview(&key) }));
        let config = self.run.config.clone();
        let value = self
            .run
            .perform(
                call,
                move |_| async move {
                    check_text("key", &key)?;
                    Ok(key)
                },
                move |_, key| async move { Ok(config.get(&key).cloned()) },
            )
            .await?;
        Ok(value.unwrap_or(None))
    }
}
