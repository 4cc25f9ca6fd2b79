//! Slack: messages through the Web API (`chat.postMessage`, `chat.update`) in Block Kit, the
//! Approve / Deny buttons' requests, verified with the app's signing secret, and Socket Mode's
//! envelopes for hosts Slack cannot reach.
//!
//! - [`blocks`] renders a [`crate::Notice`] (escaped: what an event or a playbook wrote cannot
//!   mention `@channel` or make a link);
//! - [`client`] posts and updates it;
//! - [`signature`] checks a request Slack signed (`v0`, five-minute replay window);
//! - [`interaction`] reads a button press (`block_actions`), over HTTP or Socket Mode;
//! - [`socket`] reads and answers Socket Mode's envelopes.

pub mod blocks;
pub mod client;
pub mod interaction;
pub mod signature;
pub mod socket;

pub use blocks::{APPROVE_ACTION, DENY_ACTION, Rendered, render};
pub use client::{Posted, SlackClient, validate_channel};
pub use interaction::{Press, Vote, parse_form, parse_payload};

/// `vendor` in this integration's errors.
pub const VENDOR: &str = "slack";
