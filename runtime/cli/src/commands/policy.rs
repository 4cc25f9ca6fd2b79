//! `grace policy test`: a request decided by the trust core against policy files, offline.

use anyhow::anyhow;
use grace_trust::{Outcome, Policies, Request, TrustConfig, TrustCore};

use super::Exit;
use crate::cli::PolicyCommand;

pub fn run(cmd: PolicyCommand) -> Exit {
    let PolicyCommand::Test {
        request,
        policies,
        config,
        json,
    } = cmd;
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map_err(|e| Exit::Invalid(anyhow!("cannot read `{}`: {e}", path.display())))
    };
    let result = (|| {
        let request_text = read(&request)?;
        let request: Request = serde_json::from_str(&request_text)
            .map_err(|e| Exit::Invalid(anyhow!("`{}`: not a request: {e}", request.display())))?;
        let config = match &config {
            Some(path) => TrustConfig::from_toml(&read(path)?)
                .map_err(|e| Exit::Invalid(anyhow!("`{}`: {e}", path.display())))?,
            None => TrustConfig::default(),
        };
        let mut sets = Vec::new();
        for path in &policies {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("policies")
                .to_owned();
            sets.push((name, read(path)?));
        }
        let compiled = Policies::compile(sets.iter().map(|(n, t)| (n.as_str(), t.as_str())))
            .map_err(|e| Exit::Invalid(anyhow!("{e}")))?;
        let trust = TrustCore::in_memory(config).map_err(|e| Exit::Internal(anyhow!("{e}")))?;
        let explanation = trust.explain_with(&compiled, &request);
        if json {
            let value = serde_json::to_value(&explanation.decision)
                .map_err(|e| Exit::Internal(e.into()))?;
            println!("{value}");
        } else {
            print!("{explanation}");
        }
        Ok(match explanation.decision.outcome {
            Outcome::Allow => Exit::Ok,
            _ => Exit::Failed,
        })
    })();
    result.unwrap_or_else(|exit| exit)
}
