//! Jira Cloud, REST v3: an issue per run that needs people, a comment with each outcome, a
//! transition when it is resolved.
//!
//! - `POST /rest/api/3/issue` (`201 {"id","key","self"}`) with the description in Atlassian
//!   Document Format, as v3 requires;
//! - `POST /rest/api/3/issue/{key}/comment` (`201`);
//! - `GET` then `POST /rest/api/3/issue/{key}/transitions` (`204`): transition ids differ per
//!   workflow, so the one wanted is found by its name or its target status's name;
//! - `GET /rest/api/3/search/jql` finds an issue GRACE created by its label: creating is not
//!   idempotent, so a create whose answer was lost is looked for before it is sent again.
//!
//! Authentication is an API token (`Authorization: Basic base64(email:token)`, at
//! `https://<site>.atlassian.net`) or an OAuth 2.0 access token (`Bearer`, at
//! `https://api.atlassian.com/ex/jira/<cloud id>`). Errors answer `{"errorMessages": [...],
//! "errors": {field: message}}` (`401` answers plain text); `429` carries `Retry-After`.

pub mod client;

pub use client::{JiraAuth, JiraClient, NewIssue, validate_issue_key, validate_project_key};

/// `vendor` in this integration's errors.
pub const VENDOR: &str = "jira";
