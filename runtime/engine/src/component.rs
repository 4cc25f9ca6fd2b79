//! Loading guests: reading the manifest and the wasm file, checking that the file is a
//! component implementing the manifest's world, compiling it once per digest and
//! pre-instantiating it so that each run only pays for a fresh instance.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::bindings::collector::CollectorPre;
use crate::bindings::playbook::PlaybookPre;
use crate::host::HostState;
use crate::manifest::{Kind, Manifest, ManifestError};

/// The manifest file's name inside a guest directory.
pub const MANIFEST_FILE: &str = "playbook.toml";
/// Largest component accepted.
pub const MAX_COMPONENT_BYTES: usize = 64 * 1024 * 1024;

/// Why a guest could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The manifest is missing or invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// No manifest where one was expected.
    #[error("no `{MANIFEST_FILE}` in `{0}`")]
    NoManifest(PathBuf),
    /// The component file could not be read.
    #[error("cannot read component `{path}`: {source} (build it with `just build-playbooks`)")]
    ReadComponent {
        /// Where the manifest says it is.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not WebAssembly at all.
    #[error("{what} is not a WebAssembly file")]
    NotWasm {
        /// Which file or upload.
        what: String,
    },
    /// A core module, not a component.
    #[error("{what} is a core WebAssembly module, not a component: build it for `wasm32-wasip2`")]
    CoreModule {
        /// Which file or upload.
        what: String,
    },
    /// Too big.
    #[error("{what} is {size} bytes, above the limit of {MAX_COMPONENT_BYTES}")]
    TooLarge {
        /// Which file or upload.
        what: String,
        /// Its size.
        size: usize,
    },
    /// The component is malformed or uses features the engine does not enable.
    #[error("{what} cannot be compiled: {message}")]
    Compile {
        /// Which file or upload.
        what: String,
        /// wasmtime's explanation.
        message: String,
    },
    /// The component does not implement the manifest's world.
    #[error("{what} does not implement the `{kind}` world: {message}")]
    WrongWorld {
        /// Which file or upload.
        what: String,
        /// The manifest's kind.
        kind: Kind,
        /// What is missing or mismatched.
        message: String,
    },
}

/// A component's content digest: `sha256:<hex>`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha256(bytes)))
}

/// The SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A compiled, pre-instantiated component.
#[derive(Clone)]
pub struct CompiledComponent {
    pub(crate) digest: String,
    pub(crate) pre: Pre,
}

#[derive(Clone)]
pub(crate) enum Pre {
    Playbook(PlaybookPre<HostState>),
    Collector(CollectorPre<HostState>),
}

impl CompiledComponent {
    /// `sha256:<hex>` of the component's bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Which world it implements.
    pub fn kind(&self) -> Kind {
        match self.pre {
            Pre::Playbook(_) => Kind::Playbook,
            Pre::Collector(_) => Kind::Collector,
        }
    }
}

/// A manifest and its component, ready to run.
#[derive(Clone)]
pub struct Guest {
    /// The validated manifest.
    pub manifest: Arc<Manifest>,
    /// The compiled component.
    pub component: CompiledComponent,
}

impl Guest {
    /// The guest's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }
}

/// Checks the bytes look like a component, before handing them to the compiler, so that common
/// mistakes get a message that says what to do.
pub(crate) fn check_header(bytes: &[u8], what: &str) -> Result<(), LoadError> {
    if bytes.len() > MAX_COMPONENT_BYTES {
        return Err(LoadError::TooLarge {
            what: what.into(),
            size: bytes.len(),
        });
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm { what: what.into() });
    }
    // Core modules are version 1, layer 0; components carry layer 1 in bytes 6..8.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule { what: what.into() });
    }
    Ok(())
}

/// Finds the manifest for a guest directory or manifest path.
pub fn manifest_path(path: &Path) -> Result<PathBuf, LoadError> {
    if path.is_dir() {
        let candidate = path.join(MANIFEST_FILE);
        if candidate.is_file() {
            Ok(candidate)
        } else {
            Err(LoadError::NoManifest(path.to_owned()))
        }
    } else {
        Ok(path.to_owned())
    }
}
