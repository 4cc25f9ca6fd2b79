//! The guest's configuration: the `[config]` table of its `playbook.toml`.
//!
//! The host hands every value over as a string (`step = 2` reads as `"2"`); [`get_or`] and
//! [`require`] parse it with [`FromStr`], and their errors name the key.

use std::fmt::Display;
use std::str::FromStr;

use crate::bindings::playbook::grace::playbook::config as wit;
use crate::{Error, Result};

/// The raw value of `key`, if the manifest sets it.
pub fn get(key: &str) -> Option<String> {
    wit::get(key)
}

/// The value of `key` parsed as `T`, or `default` when the manifest does not set it.
///
/// ```no_run
/// let step: u32 = grace_sdk::config::get_or("step", 2)?;
/// # Ok::<(), grace_sdk::Error>(())
/// ```
pub fn get_or<T>(key: &str, default: T) -> Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    match get(key) {
        Some(raw) => parse(key, &raw),
        None => Ok(default),
    }
}

/// The value of `key` parsed as `T`; an error when the manifest does not set it.
pub fn require<T>(key: &str) -> Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    match get(key) {
        Some(raw) => parse(key, &raw),
        None => Err(Error::msg(format_args!(
            "config `{key}` is not set: add it to the `[config]` table of playbook.toml"
        ))),
    }
}

fn parse<T>(key: &str, raw: &str) -> Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    raw.parse()
        .map_err(|e| Error::msg(format_args!("config `{key}` = `{raw}` is invalid: {e}")))
}
