//! Changes whose outcome is unknown, and how a provider tells whether they happened.
//!
//! A change's intent is on record before its provider is called. When no outcome follows (the
//! provider applied the change and then the call timed out, or the host was killed between the
//! intent and the outcome), a retry of the run does not know whether the change happened. It
//! does not guess: it asks the provider serving the resource to read it and say, per change
//! kind, whether the change is in place ([`Reconciled`]). Each executor trait has one
//! `reconcile` method taking its capability's change description (`scaling::Change`,
//! `kubernetes::Change`, `containers::Change`).

/// What reading the resource says about a change whose earlier outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled<T> {
    /// The change is in place: it is not made again, and this is the resource as read.
    Done(T),
    /// The change is not in place: making it now makes it once.
    NotApplied,
    /// Someone else changed the resource since the intent: making the change now could undo
    /// theirs, so it is reported instead (the message says what was found).
    Conflict(String),
}
