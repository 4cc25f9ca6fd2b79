//! GRACE's integrations on the wire: what it sends to Slack, PagerDuty and Jira, and what it
//! accepts from Slack, PagerDuty and GitHub, as each vendor documents it.
//!
//! This crate knows the vendors and nothing of the server: the server decides what to say and
//! when ([`Notice`]), this crate says it in each vendor's terms and reports how it went
//! ([`DeliveryError`]: retry later, retry after the vendor's `Retry-After`, or give up).
//!
//! - [`slack`]: `chat.postMessage` and `chat.update` with Block Kit, the interactive Approve /
//!   Deny buttons' requests (signed with the app's signing secret) and Socket Mode's envelopes;
//! - [`pagerduty`]: Events API v2 (trigger, acknowledge, resolve by `dedup_key`) and webhooks
//!   v3 (signed) as events;
//! - [`jira`]: Jira Cloud REST v3: an issue per incident, comments, transitions;
//! - [`github`]: `deployment` and `deployment_status` webhooks (signed) as events.
//!
//! Every answer is read up to [`http::MAX_ANSWER_BYTES`]; every text sent is cut to the
//! vendor's limit ([`text`]); secrets ([`Secret`]) never appear in a `Debug` output or an error.

pub mod error;
pub mod github;
pub mod http;
pub mod jira;
pub mod notice;
pub mod pagerduty;
pub mod secret;
pub mod signature;
pub mod slack;
pub mod text;

pub use error::DeliveryError;
pub use notice::{Notice, NoticeApproval, NoticeKind};
pub use secret::{Secret, SecretError, SecretSource};
