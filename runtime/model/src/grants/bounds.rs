//! The rules every capability's grant shares: capacity-like bounds (min, max, step per call) and
//! the change budget per run, checked at call time, and the checks of their fields when a manifest
//! is loaded (non-empty glob lists, min below max, positive limits, known actions).

use super::{Denial, deny};
use crate::glob::Glob;
use crate::manifest::ManifestError;

/// Bounds shared by the capacity-like checks of scaling and Kubernetes.
pub(super) struct Bounds<'a> {
    pub(super) what: &'a str,
    pub(super) unit: &'a str,
    pub(super) min: Option<u32>,
    pub(super) max: Option<u32>,
    pub(super) max_step: Option<u32>,
}

impl Bounds<'_> {
    /// Refuses `desired` below `min`, above `max`, or further than `max_step` from `current`.
    pub(super) fn check(&self, current: u32, desired: u32) -> Result<(), Denial> {
        if let Some(min) = self.min
            && desired < min
        {
            return deny(format!(
                "{} {desired} for {} is below the granted min {min}",
                self.unit, self.what
            ));
        }
        if let Some(max) = self.max
            && desired > max
        {
            return deny(format!(
                "{} {desired} for {} is above the granted max {max}",
                self.unit, self.what
            ));
        }
        if let Some(step) = self.max_step {
            let change = desired.abs_diff(current);
            if change > step {
                return deny(format!(
                    "changing {} from {current} to {desired} is a step of {change}, above the granted max_step {step}",
                    self.what
                ));
            }
        }
        Ok(())
    }
}

/// Refuses a change past the run's budget of `max` changes.
pub(super) fn check_changes(function: &str, done: u32, max: u32) -> Result<(), Denial> {
    if done >= max {
        return deny(format!(
            "{function} was already called {done} time(s) in this run; the grant allows {max} (max_changes)"
        ));
    }
    Ok(())
}

pub(super) fn globs(field: &str, list: Vec<String>) -> Result<Vec<Glob>, ManifestError> {
    if list.is_empty() {
        return Err(ManifestError::invalid(
            field,
            "must not be empty (an empty list grants nothing; remove the table to deny the capability)",
        ));
    }
    if let Some(blank) = list.iter().position(|g| g.trim().is_empty()) {
        return Err(ManifestError::invalid(
            format!("{field}[{blank}]"),
            "must not be empty",
        ));
    }
    Ok(list.into_iter().map(Glob::new).collect())
}

pub(super) fn min_max(
    table: &str,
    (min_name, min): (&str, Option<u32>),
    (max_name, max): (&str, Option<u32>),
) -> Result<(), ManifestError> {
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return Err(ManifestError::invalid(
            format!("{table}.{max_name}"),
            format!("`{hi}` is below {min_name} `{lo}`"),
        ));
    }
    Ok(())
}

pub(super) fn positive(field: &str, value: Option<u32>) -> Result<(), ManifestError> {
    if value == Some(0) {
        return Err(ManifestError::invalid(
            field,
            "must be at least 1 (remove the grant to forbid changes)",
        ));
    }
    Ok(())
}

pub(super) fn actions<A: Ord>(
    field: &str,
    list: Vec<String>,
    parse: fn(&str) -> Option<A>,
    known: &str,
) -> Result<Vec<A>, ManifestError> {
    if list.is_empty() {
        return Err(ManifestError::invalid(field, "must not be empty"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, name) in list.iter().enumerate() {
        let action = parse(name).ok_or_else(|| {
            ManifestError::invalid(
                format!("{field}[{i}]"),
                format!("`{name}` is not an action (known: {known})"),
            )
        })?;
        out.push(action);
    }
    out.sort();
    out.dedup();
    Ok(out)
}
