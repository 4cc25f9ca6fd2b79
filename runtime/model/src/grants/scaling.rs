//! `[grants.scaling]`: which groups a guest may resize, between which capacities, by how much
//! per call and how often per run.

use serde::Deserialize;

use super::bounds::{Bounds, check_changes, globs, min_max, positive};
use super::{Denial, deny};
use crate::glob::{self, Glob};
use crate::manifest::ManifestError;

/// Which Auto Scaling groups, and how far.
#[derive(Debug, Clone)]
pub struct ScalingGrant {
    /// Groups in scope.
    pub groups: Vec<Glob>,
    /// Never set below.
    pub min_capacity: Option<u32>,
    /// Never set above.
    pub max_capacity: Option<u32>,
    /// At most this change per call.
    pub max_step: Option<u32>,
    /// `set-desired-capacity` calls per run.
    pub max_changes: u32,
}

impl ScalingGrant {
    /// Is the group in scope?
    pub fn check_group(&self, group: &str) -> Result<(), Denial> {
        if self.groups.iter().any(|g| g.matches(group)) {
            Ok(())
        } else {
            deny(format!(
                "group `{group}` is not granted (granted groups: {})",
                glob::list(&self.groups)
            ))
        }
    }

    /// May the group go from `current` to `desired`, with `changes_so_far` changes this run?
    pub fn check_set_capacity(
        &self,
        group: &str,
        current: u32,
        desired: u32,
        changes_so_far: u32,
    ) -> Result<(), Denial> {
        self.check_group(group)?;
        check_changes("set-desired-capacity", changes_so_far, self.max_changes)?;
        Bounds {
            what: &format!("group `{group}`"),
            unit: "capacity",
            min: self.min_capacity,
            max: self.max_capacity,
            max_step: self.max_step,
        }
        .check(current, desired)
    }
}

/// `[grants.scaling]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScaling {
    groups: Vec<String>,
    min_capacity: Option<u32>,
    max_capacity: Option<u32>,
    max_step: Option<u32>,
    max_changes: Option<u32>,
}

impl RawScaling {
    /// The typed grant, or the first field that is out of range or inconsistent.
    pub(super) fn validate(self) -> Result<ScalingGrant, ManifestError> {
        let t = "grants.scaling";
        min_max(
            t,
            ("min_capacity", self.min_capacity),
            ("max_capacity", self.max_capacity),
        )?;
        positive("grants.scaling.max_step", self.max_step)?;
        positive("grants.scaling.max_changes", self.max_changes)?;
        Ok::<_, ManifestError>(ScalingGrant {
            groups: globs("grants.scaling.groups", self.groups)?,
            min_capacity: self.min_capacity,
            max_capacity: self.max_capacity,
            max_step: self.max_step,
            max_changes: self.max_changes.unwrap_or(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::tests::manifest;

    fn scaling() -> ScalingGrant {
        manifest("[grants.scaling]\ngroups = [\"api-*\"]\nmin_capacity = 2\nmax_capacity = 12\nmax_step = 2\nmax_changes = 2\n")
            .unwrap()
            .grants
            .scaling
            .unwrap()
    }

    #[test]
    fn scaling_within_bounds_is_allowed() {
        assert_eq!(scaling().check_set_capacity("api-asg", 3, 5, 0), Ok(()));
        assert_eq!(scaling().check_set_capacity("api-asg", 3, 2, 1), Ok(()));
    }

    #[test]
    fn scaling_outside_the_granted_groups_is_denied() {
        let e = scaling()
            .check_set_capacity("batch-asg", 1, 2, 0)
            .unwrap_err();
        assert!(e.0.contains("`batch-asg` is not granted"), "{e}");
    }

    #[test]
    fn scaling_steps_and_bounds_are_enforced() {
        let g = scaling();
        assert!(
            g.check_set_capacity("api-asg", 3, 6, 0)
                .unwrap_err()
                .0
                .contains("max_step 2")
        );
        assert!(
            g.check_set_capacity("api-asg", 12, 13, 0)
                .unwrap_err()
                .0
                .contains("max 12")
        );
        assert!(
            g.check_set_capacity("api-asg", 2, 1, 0)
                .unwrap_err()
                .0
                .contains("min 2")
        );
        assert!(
            g.check_set_capacity("api-asg", 3, 4, 2)
                .unwrap_err()
                .0
                .contains("max_changes")
        );
    }
}
