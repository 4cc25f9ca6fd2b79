//! The policy store: named policy sets with every version kept (who, when), the active
//! policies reloaded after each change, everything surviving a reopen of the database.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use grace_trust::{
    Action, Change, Outcome, PolicyStore, Principal, Request, Resource, State, TrustConfig,
    TrustCore, TrustError,
};

const FORBID_PROD: &str = r#"@id("no-prod") @reason("prod is hands-off")
forbid(principal, action in Grace::Action::"change", resource) when { resource.environment == "prod" };"#;

fn open(path: &Path) -> TrustCore {
    let db = Arc::new(grace_ledger::Database::create(path, grace_ledger::Recovery::Quick).unwrap());
    TrustCore::open(db, TrustConfig::default()).unwrap()
}

fn scale_prod() -> Request {
    Request::new(
        Principal::playbook("autoscale", "sha256:01", "1"),
        Action::from_cedar_id("scaling::SetDesiredCapacity").unwrap(),
        Resource::group("web").environment("prod"),
        1_750_000_000_000,
    )
    .with_state(State::new(2, 2))
    .with_change(Change::Capacity { to: 3 })
}

#[test]
fn every_change_makes_a_new_version_and_a_new_revision() {
    let trust = TrustCore::in_memory(TrustConfig::default()).unwrap();
    let store = trust.policies();
    let v1 = store.add("base", grace_trust::BASELINE, "alice").unwrap();
    assert_eq!((v1.version, v1.revision, v1.removed), (1, 1, false));
    assert_eq!(v1.by, "alice");
    assert!(
        v1.at_millis > 1_700_000_000_000,
        "stamped with the wall clock"
    );
    let g1 = store.add("guard", FORBID_PROD, "bob").unwrap();
    assert_eq!((g1.version, g1.revision), (1, 2));
    let g2 = store
        .replace("guard", "// nothing for now\n", "carol")
        .unwrap();
    assert_eq!((g2.version, g2.revision), (2, 3));
    let g3 = store.remove("guard", "dave").unwrap();
    assert_eq!((g3.version, g3.revision, g3.removed), (3, 4, true));
    let g4 = store.add("guard", FORBID_PROD, "erin").unwrap();
    assert_eq!(g4.version, 4, "versions continue after a removal");

    let history = store.history("guard").unwrap();
    let summary: Vec<(u64, &str, bool)> = history
        .iter()
        .map(|v| (v.version, v.by.as_str(), v.removed))
        .collect();
    assert_eq!(
        summary,
        [
            (1, "bob", false),
            (2, "carol", false),
            (3, "dave", true),
            (4, "erin", false)
        ]
    );
    assert_eq!(
        store.version("guard", 2).unwrap().text,
        "// nothing for now\n"
    );
    let names: Vec<String> = store.list().into_iter().map(|v| v.name).collect();
    assert_eq!(names, ["base", "guard"]);
    assert_eq!(store.revision(), 5);
}

#[test]
fn the_active_policies_follow_every_change() {
    let trust = TrustCore::in_memory(TrustConfig::default()).unwrap();
    let store = trust.policies();
    store.add("base", grace_trust::BASELINE, "alice").unwrap();
    assert_eq!(trust.decide(&scale_prod()).outcome, Outcome::Allow);

    store.add("guard", FORBID_PROD, "alice").unwrap();
    let d = trust.decide(&scale_prod());
    assert_eq!(
        (d.outcome, d.policies.as_slice()),
        (Outcome::Deny, &["guard/no-prod".to_owned()][..])
    );
    assert_eq!(d.policy_revision, 2);

    store.replace("guard", "// paused\n", "alice").unwrap();
    assert_eq!(trust.decide(&scale_prod()).outcome, Outcome::Allow);

    store.remove("base", "alice").unwrap();
    let d = trust.decide(&scale_prod());
    assert_eq!(
        d.outcome,
        Outcome::Allow,
        "no policy left: the grants decide"
    );
    assert!(
        d.reason
            .starts_with("allowed: no trust policies are loaded"),
        "{}",
        d.reason
    );
}

#[test]
fn a_rejected_change_leaves_everything_as_it_was() {
    let trust = TrustCore::in_memory(TrustConfig::default()).unwrap();
    let store = trust.policies();
    store.add("guard", FORBID_PROD, "alice").unwrap();
    let e = store
        .replace(
            "guard",
            "forbid(principal, action, resource) when { resource.colour == 1 };",
            "mallory",
        )
        .unwrap_err();
    assert!(matches!(e, TrustError::Policy(_)), "{e}");
    assert_eq!(store.get("guard").unwrap().version, 1);
    assert_eq!(store.history("guard").unwrap().len(), 1);
    assert_eq!(store.revision(), 1);
    assert_eq!(trust.decide(&scale_prod()).policies, ["guard/no-prod"]);
}

#[test]
fn adding_an_existing_set_or_changing_a_missing_one_is_an_error() {
    let trust = TrustCore::in_memory(TrustConfig::default()).unwrap();
    let store = trust.policies();
    store.add("guard", FORBID_PROD, "alice").unwrap();
    let e = store.add("guard", FORBID_PROD, "alice").unwrap_err();
    assert_eq!(
        e.to_string(),
        "policy set `guard` already exists (version 1); replace it instead"
    );
    for e in [
        store.replace("nope", FORBID_PROD, "alice").unwrap_err(),
        store.remove("nope", "alice").unwrap_err(),
        store.get("nope").unwrap_err(),
    ] {
        assert_eq!(e.to_string(), "policy set `nope` does not exist");
    }
    assert!(store.history("nope").unwrap().is_empty());
}

#[test]
fn policies_and_their_history_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grace.redb");
    {
        let trust = open(&path);
        trust
            .policies()
            .add("base", grace_trust::BASELINE, "alice")
            .unwrap();
        trust.policies().add("guard", "// draft\n", "bob").unwrap();
        trust
            .policies()
            .replace("guard", FORBID_PROD, "bob")
            .unwrap();
        trust
            .policies()
            .add(
                "old",
                grace_trust::BASELINE.replace("within-grants", "x").as_str(),
                "carol",
            )
            .unwrap();
        trust.policies().remove("old", "carol").unwrap();
    }
    let trust = open(&path);
    let store = trust.policies();
    let live: Vec<(String, u64)> = store
        .list()
        .into_iter()
        .map(|v| (v.name, v.version))
        .collect();
    assert_eq!(live, [("base".to_owned(), 1), ("guard".to_owned(), 2)]);
    assert_eq!(store.revision(), 5);
    assert_eq!(store.history("guard").unwrap().len(), 2);
    assert_eq!(store.history("old").unwrap().len(), 2);
    assert_eq!(store.active().len(), 2);
    let d = trust.decide(&scale_prod());
    assert_eq!(d.policies, ["guard/no-prod"]);
    assert_eq!(d.policy_revision, 5);
    // And it goes on from where it was.
    assert_eq!(
        store.replace("guard", "// off\n", "dave").unwrap().revision,
        6
    );
}

#[test]
fn a_policy_set_can_be_checked_without_storing_it() {
    let infos = PolicyStore::check("guard", FORBID_PROD).unwrap();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].id, "guard/no-prod");
    assert_eq!(infos[0].reason.as_deref(), Some("prod is hands-off"));
    assert!(PolicyStore::check("guard", "permit(").is_err());
}

#[test]
fn candidate_policies_can_be_tried_against_a_request() {
    let trust = TrustCore::in_memory(TrustConfig::default()).unwrap();
    let candidate =
        grace_trust::Policies::compile([("base", grace_trust::BASELINE), ("guard", FORBID_PROD)])
            .unwrap();
    let e = trust.explain_with(&candidate, &scale_prod());
    assert_eq!(e.decision.outcome, Outcome::Deny);
    assert_eq!(e.determining[0].id, "guard/no-prod");
    assert!(trust.policies().list().is_empty(), "nothing was stored");
}

#[test]
fn the_store_shares_a_database_with_other_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.redb");
    let db = Arc::new(grace_ledger::Database::create(path, grace_ledger::Recovery::Quick).unwrap());
    const OTHER: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("runs/other");
    {
        let txn = db.begin_write().unwrap();
        txn.open_table(OTHER).unwrap().insert("x", 1).unwrap();
        txn.commit().unwrap();
    }
    let trust = TrustCore::open(db.clone(), TrustConfig::default()).unwrap();
    trust
        .policies()
        .add("base", grace_trust::BASELINE, "alice")
        .unwrap();
    let txn = redb::ReadableDatabase::begin_read(&*db).unwrap();
    let table = txn.open_table(OTHER).unwrap();
    assert_eq!(table.get("x").unwrap().unwrap().value(), 1);
}

#[test]
fn the_stored_sets_are_listed_from_a_read_only_database_without_the_removed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grace.redb");
    {
        let store = PolicyStore::open(Arc::new(
            grace_ledger::Database::create(&path, grace_ledger::Recovery::Quick).unwrap(),
        ))
        .unwrap();
        store.add("base", grace_trust::BASELINE, "alice").unwrap();
        store.add("guard", FORBID_PROD, "bob").unwrap();
        store.remove("guard", "carol").unwrap();
    }
    let db = redb::ReadOnlyDatabase::open(&path).unwrap();
    let (revision, sets) = grace_trust::stored_sets(&db).unwrap();
    assert_eq!(revision, 3);
    let names: Vec<_> = sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["base"]);
    assert_eq!(sets[0].text, grace_trust::BASELINE);
}

#[test]
fn a_database_without_policy_tables_lists_no_sets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grace.redb");
    drop(redb::Database::create(&path).unwrap());
    let db = redb::ReadOnlyDatabase::open(&path).unwrap();
    assert_eq!(grace_trust::stored_sets(&db).unwrap(), (0, Vec::new()));
}
