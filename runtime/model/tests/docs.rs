//! Documentation that lists what the capability descriptors say is checked against them, so it
//! cannot drift.

use std::collections::BTreeSet;
use std::path::Path;

use grace_model::capability::Action;

fn doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Cedar action ids written in backticks on the table rows of `docs/trust.md`'s "What it
/// decides" section.
fn documented_actions(text: &str) -> BTreeSet<String> {
    let section = text
        .split("## What it decides")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/trust.md has a `## What it decides` section");
    section
        .lines()
        .filter(|l| l.starts_with('|'))
        .flat_map(|l| l.split('`').skip(1).step_by(2))
        .filter(|t| t.contains("::") && !t.starts_with("Grace::"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_trust_docs_list_exactly_the_descriptors_actions() {
    let documented = documented_actions(&doc("trust.md"));
    let described: BTreeSet<String> = Action::all().map(|a| a.cedar_id().to_owned()).collect();
    assert_eq!(documented, described);
}
