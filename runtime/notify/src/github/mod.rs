//! GitHub: `deployment` and `deployment_status` webhooks become GRACE events, so that the trust
//! core's deployment-recency factor and root-cause ranking know what was just deployed.
//!
//! A delivery carries `X-GitHub-Event`, `X-GitHub-Delivery` (a GUID, the same when GitHub
//! redelivers it) and `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`. GitHub
//! signs no timestamp: the caller refuses a delivery id it has already accepted. The body is
//! JSON (`application/json`) or, for hooks set to `application/x-www-form-urlencoded`, a form
//! whose `payload` field holds the JSON; the signature covers the raw body either way.

pub mod webhook;

pub use webhook::{Deployment, parse, verify};

/// `vendor` in this integration's errors.
pub const VENDOR: &str = "github";
