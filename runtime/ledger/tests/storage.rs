//! Every database GRACE writes is a `grace_ledger::Database`, whose `begin_write` sets redb's
//! quick repair (`src/storage.rs`): a store holding redb's own `Database` would begin write
//! transactions that record no allocator state, and a crash after one of them would make the
//! next open walk the whole file again.
//!
//! The types cannot forbid naming redb's `Database`, so this reads the runtime's sources: a file
//! that names it must be one of those listed here, each with its reason. The commits of each
//! part that holds a `grace_ledger::Database` are checked by `runtime/server/tests/crash_image.rs`.

// A panic is how a test fails: unwrapping is the point here.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// The sources, under `runtime/`, that may name redb's `Database`, and why.
const ALLOWED: &[(&str, &str)] = &[
    ("ledger/src/storage.rs", "it wraps redb's database"),
    (
        "trust/src/core.rs",
        "an in-memory database for dry runs and tests, wrapped with `Recovery::Full`",
    ),
    (
        "server/src/trust/offline.rs",
        "an in-memory database for dry runs, wrapped; a copy of a data directory opened only to read its policies",
    ),
    (
        "server/src/trust/approvals/mod.rs",
        "its unit tests' in-memory databases, wrapped with `Recovery::Full`",
    ),
    (
        "server/src/trust/approvals/local.rs",
        "its unit test's in-memory database, wrapped with `Recovery::Full`",
    ),
    (
        "trust/src/history.rs",
        "its unit test's in-memory database, wrapped with `Recovery::Full`",
    ),
];

#[test]
fn only_the_listed_sources_name_redbs_own_database() {
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut sources = Vec::new();
    for krate in std::fs::read_dir(&runtime).unwrap() {
        let krate = krate.unwrap().path();
        collect_rs(&krate.join("src"), &mut sources);
        // The provider crates sit one level deeper.
        if let Ok(inner) = std::fs::read_dir(&krate) {
            for sub in inner {
                collect_rs(&sub.unwrap().path().join("src"), &mut sources);
            }
        }
    }
    assert!(
        sources.len() > 50,
        "found only {} sources under {}",
        sources.len(),
        runtime.display()
    );

    let mut offending = Vec::new();
    for path in &sources {
        let text = std::fs::read_to_string(path).unwrap();
        let relative = path.strip_prefix(&runtime).unwrap().to_string_lossy();
        let relative = relative.replace('\\', "/");
        if names_redb_database(&text) && !ALLOWED.iter().any(|(file, _)| *file == relative) {
            offending.push(relative);
        }
    }
    for (file, _) in ALLOWED {
        let text = std::fs::read_to_string(runtime.join(file)).unwrap();
        assert!(
            names_redb_database(&text),
            "`{file}` no longer names redb's `Database`: take it off the list"
        );
    }
    assert!(
        offending.is_empty(),
        "these sources name redb's `Database`: hold a `grace_ledger::Database` instead, whose \
         `begin_write` sets quick repair, or list the file here with the reason: {offending:?}"
    );
}

#[test]
fn the_scan_finds_each_way_of_naming_redbs_database() {
    for text in [
        "let db = redb::Database::create(path)?;",
        "db: Arc<redb::Database>,",
        "use redb::Database;",
        "use redb::{Database, ReadableTable};",
        "use redb::{\n    ReadableTable,\n    Database,\n};",
    ] {
        assert!(names_redb_database(text), "missed: {text}");
    }
    for text in [
        "use redb::{ReadableDatabase, ReadableTable};",
        "redb::ReadOnlyDatabase::open(path)",
        "use grace_ledger::Database;",
        "redb::DatabaseError::RepairAborted",
    ] {
        assert!(!names_redb_database(text), "wrongly found: {text}");
    }
}

/// Whether `text` names `redb::Database`, as a path or in a `use redb::{…}` list.
fn names_redb_database(text: &str) -> bool {
    let whole_word_after = |rest: &str| {
        !rest
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    };
    let as_path = text
        .match_indices("redb::Database")
        .any(|(at, found)| whole_word_after(&text[at + found.len()..]));
    let in_list = text.match_indices("use redb::{").any(|(at, found)| {
        let list = &text[at + found.len()..];
        let list = &list[..list.find('}').unwrap_or(list.len())];
        list.split(',').any(|item| item.trim() == "Database")
    });
    as_path || in_list
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
