//! `grace playbook new NAME [--kind collector] [--template T]`: a ready crate for a new playbook
//! or collector, started from one of the examples in `playbooks/examples`.
//!
//! The examples' sources, manifests and sample events are compiled into the binary
//! (`include_str!`), so a template cannot drift from the example it names: the examples are
//! built and tested with the repository, and a test checks that what this writes is the
//! example with only its name (and its component's path) changed. The SDK dependency is a git
//! dependency on the repository at the release tag of this `grace` (`v<version>`), so the crate
//! builds outside the repository.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use grace_engine::{Kind, Manifest};

use super::Exit;

/// An example a new crate can start from.
pub struct Template {
    /// What `--template` calls it.
    pub name: &'static str,
    /// A playbook or a collector.
    pub kind: Kind,
    /// The example's directory under `playbooks/examples`, also its playbook name.
    pub example: &'static str,
    /// `src/lib.rs`.
    pub lib_rs: &'static str,
    /// `playbook.toml`.
    pub manifest: &'static str,
    /// `event.json`: an event its trigger fires on (playbooks only).
    pub event: Option<&'static str>,
}

/// A [`Template`] from `playbooks/examples/$example`, with or without its `event.json`.
macro_rules! template {
    ($name:literal, $kind:expr, $example:literal, event) => {
        template!($name, $kind, $example, event = "event.json")
    };
    ($name:literal, $kind:expr, $example:literal, event = $event:literal) => {
        Template {
            event: Some(include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../playbooks/examples/",
                $example,
                "/",
                $event
            ))),
            ..template!($name, $kind, $example)
        }
    };
    ($name:literal, $kind:expr, $example:literal) => {
        Template {
            name: $name,
            kind: $kind,
            example: $example,
            lib_rs: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../playbooks/examples/",
                $example,
                "/src/lib.rs"
            )),
            manifest: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../playbooks/examples/",
                $example,
                "/playbook.toml"
            )),
            event: None,
        }
    };
}

/// Every template, the default of each kind first. A new example becomes a template with one
/// line here (and its test, `runtime/cli/tests/playbook_new.rs`, one line of its own).
pub const TEMPLATES: &[Template] = &[
    template!("scale", Kind::Playbook, "scale-on-latency", event),
    template!(
        "restart",
        Kind::Playbook,
        "restart-unhealthy-container",
        event
    ),
    template!("k8s", Kind::Playbook, "k8s-scale-deployment", event),
    // scale-on-latency fires on an Alertmanager alert too: the same crate, an alert as its event.
    template!(
        "alert",
        Kind::Playbook,
        "scale-on-latency",
        event = "alert-event.json"
    ),
    template!("latency", Kind::Collector, "latency-collector"),
];

/// The playbooks' workspace manifest: its `[profile.release]` is the generated crate's.
const PLAYBOOKS_CARGO_TOML: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../playbooks/Cargo.toml"
));

/// Where the SDK comes from: this repository, at the tag of this release.
const REPOSITORY: &str = env!("CARGO_PKG_REPOSITORY");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Names cargo refuses for a package, or that would clash with the SDK's.
const RESERVED: [&str; 47] = [
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "macro",
    "std",
    "core",
    "test",
    "grace-sdk",
];

/// `--template` values, for clap.
pub fn template_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(TEMPLATES.iter().map(|t| t.name))
}

/// `grace playbook new`.
pub fn run(name: &str, kind: &str, template: Option<&str>, dir: Option<&Path>) -> Exit {
    match new(name, kind, template, dir) {
        Ok(written) => {
            println!("{}", written.summary);
            Exit::Ok
        }
        Err(e) => Exit::Invalid(e),
    }
}

struct Written {
    summary: String,
}

fn new(
    name: &str,
    kind: &str,
    template: Option<&str>,
    dir: Option<&Path>,
) -> anyhow::Result<Written> {
    check_name(name)?;
    let kind = match kind {
        "collector" => Kind::Collector,
        _ => Kind::Playbook,
    };
    let template = match template {
        Some(t) => TEMPLATES
            .iter()
            .find(|x| x.name == t)
            .ok_or_else(|| anyhow!("--template: no template `{t}`"))?,
        None => TEMPLATES
            .iter()
            .find(|x| x.kind == kind)
            .ok_or_else(|| anyhow!("--kind: no template makes a {}", kind_word(kind)))?,
    };
    if template.kind != kind {
        return Err(anyhow!(
            "--template: `{}` makes a {}, not a {} (pass --kind {})",
            template.name,
            kind_word(template.kind),
            kind_word(kind),
            kind_word(template.kind)
        ));
    }
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    check_dir(&dir)?;
    let files = files(name, template)?;
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow!("cannot create `{}`: {e}", parent.display()))?;
        }
        // `create_new`: a file that appeared since the directory was checked is never
        // overwritten.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, text.as_bytes()))
            .map_err(|e| anyhow!("cannot write `{}`: {e}", path.display()))?;
    }
    let try_it = if template.event.is_some() {
        "grace run . --event event.json --dry-run"
    } else {
        "grace run . --dry-run"
    };
    Ok(Written {
        summary: format!(
            "{} `{name}` from the `{}` example in {}\nnext: cd {} && cargo build --release --target wasm32-wasip2 && {try_it}",
            kind_word(template.kind),
            template.example,
            dir.display(),
            dir.display()
        ),
    })
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Collector => "collector",
        _ => "playbook",
    }
}

/// A name that is both a playbook name (`playbook.toml`) and a crate name cargo takes.
fn check_name(name: &str) -> anyhow::Result<()> {
    let playbook_name = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !playbook_name || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(anyhow!(
            "NAME `{name}` is not a playbook name: use 1-64 lowercase letters, digits and `-`, starting with a letter and not ending with `-`"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(anyhow!(
            "NAME `{name}` cannot name a crate: it is a Rust keyword or a reserved crate name"
        ));
    }
    Ok(())
}

/// The directory must not exist, or be empty.
fn check_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(anyhow!(
                    "`{}` exists and is not empty: choose another NAME or --dir",
                    dir.display()
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(anyhow!(
            "`{}` exists and is not a directory: choose another NAME or --dir",
            dir.display()
        )),
        Err(e) => Err(anyhow!("cannot read `{}`: {e}", dir.display())),
    }
}

/// The crate's files: relative path and text.
fn files(name: &str, template: &Template) -> anyhow::Result<Vec<(&'static str, String)>> {
    let manifest = manifest(name, template);
    // What is written must load: the substitutions keep the example's manifest valid.
    let parsed = Manifest::parse(&manifest)
        .map_err(|e| anyhow!("the `{}` template's manifest: {e}", template.name))?;
    if parsed.name != name {
        return Err(anyhow!(
            "the `{}` template's manifest names `{}`",
            template.name,
            parsed.name
        ));
    }
    let mut files = vec![
        ("Cargo.toml", cargo_toml(name)?),
        ("src/lib.rs", lib_rs(name, template)),
        ("playbook.toml", manifest),
        ("README.md", readme(name, template)),
        (".gitignore", "/target\n".to_owned()),
    ];
    if let Some(event) = template.event {
        files.push(("event.json", event.to_owned()));
    }
    Ok(files)
}

/// The example's source, its name replaced where it names itself.
pub fn lib_rs(name: &str, template: &Template) -> String {
    template
        .lib_rs
        .replace(&format!("`{}`", template.example), &format!("`{name}`"))
}

/// The example's manifest with its `name` and `component` lines replaced: the component is
/// where `cargo build --release --target wasm32-wasip2` puts it in the new crate.
pub fn manifest(name: &str, template: &Template) -> String {
    let mut out = String::with_capacity(template.manifest.len());
    let (mut named, mut located) = (false, false);
    for line in template.manifest.lines() {
        if !named && line.starts_with("name = ") {
            out.push_str(&format!("name = \"{name}\""));
            named = true;
        } else if !located && line.starts_with("component = ") {
            out.push_str(&format!(
                "component = \"target/wasm32-wasip2/release/{}.wasm\"",
                name.replace('-', "_")
            ));
            located = true;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// `Cargo.toml`: the SDK from the release tag, the examples' release profile.
fn cargo_toml(name: &str) -> anyhow::Result<String> {
    let profile = release_profile()?;
    Ok(format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# A WebAssembly component: `cargo build --release --target wasm32-wasip2`.
crate-type = ["cdylib"]

[dependencies]
# The GRACE SDK at the tag of the GRACE release this crate was made with (`grace --version`):
# releases are tagged `v<version>` in the repository. Change the tag to move to another release.
grace-sdk = {{ git = "{REPOSITORY}", tag = "v{VERSION}" }}

[lints.clippy]
# No unwrap on input: a playbook returns an error instead.
unwrap_used = "warn"

# Its own workspace, even when made inside another one: it builds for another target.
[workspace]

{profile}"#
    ))
}

/// The `[profile.release]` section of the playbooks' workspace, comments included, up to the
/// next section.
pub fn release_profile() -> anyhow::Result<String> {
    let lines: Vec<&str> = PLAYBOOKS_CARGO_TOML.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.trim() == "[profile.release]")
        .ok_or_else(|| anyhow!("playbooks/Cargo.toml has no [profile.release]"))?;
    // The comment lines just above the section belong to it.
    let first = (0..header)
        .rev()
        .take_while(|&i| lines[i].starts_with('#'))
        .last()
        .unwrap_or(header);
    let end = (header + 1..lines.len())
        .find(|&i| lines[i].starts_with('['))
        .unwrap_or(lines.len());
    let mut section = lines[first..end].join("\n");
    section.truncate(section.trim_end().len());
    section.push('\n');
    Ok(section)
}

fn readme(name: &str, template: &Template) -> String {
    let lib = name.replace('-', "_");
    let (what, try_it, after) = match template.event {
        Some(_) => (
            "playbook",
            "grace run . --event event.json --dry-run",
            "`event.json` is an event its trigger fires on; change it to try others.",
        ),
        None => (
            "collector",
            "grace run . --dry-run",
            "A collector takes no event: the dry run prints the events one pass emits.",
        ),
    };
    format!(
        r#"# {name}

A GRACE {what}, started from the `{example}` example (`grace playbook new --template {template}`).
`src/lib.rs` is the code, `playbook.toml` its manifest: its triggers or schedule, and the grants
that bound every host call it makes.

## Build

```sh
rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2
```

The component is `target/wasm32-wasip2/release/{lib}.wasm`, the file `playbook.toml` names.

## Dry-run

```sh
{try_it}
```

runs it once against GRACE's simulated fleet, through the same grant checks and trust core as
`grace serve`, and prints every host call and its outcome. {after}

## Ship

```sh
grace playbook sign . --key signing.key   # its public half is a trust root of the server
grace playbook upload .                   # to $GRACE_SERVER
```

## The SDK

`grace-sdk` is a git dependency on {REPOSITORY} at the tag `v{VERSION}`, the release of the
`grace` that made this crate: releases come from those tags. Build with a `grace` of the same
release, and move the tag in `Cargo.toml` to upgrade.
"#,
        example = template.example,
        template = template.name,
    )
}
