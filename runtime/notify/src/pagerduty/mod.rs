//! PagerDuty: Events API v2 out (an incident per GRACE incident, triggered, acknowledged and
//! resolved by one `dedup_key`), webhooks v3 in (an incident triggered on a service becomes a
//! GRACE event).

pub mod events;
pub mod webhook;

pub use events::{Action, EventsClient, Severity, Trigger};
pub use webhook::{WebhookEvent, verify as verify_webhook};

/// `vendor` in this integration's errors.
pub const VENDOR: &str = "pagerduty";
