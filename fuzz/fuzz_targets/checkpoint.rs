//! Signed checkpoints and key files (`grace_ledger::SignedCheckpoint::parse`, the signed-note
//! key formats): any text is refused or parsed, never a panic. A parsed checkpoint prints back
//! to the same text, its body re-encodes to the same checkpoint, and checking its signature
//! against a key does not panic.
#![no_main]

use std::str::FromStr;
use std::sync::OnceLock;

use grace_ledger::{Checkpoint, SignedCheckpoint, SigningKey, VerifierKey};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_seed("fuzz.example/ledger", &[7; 32]).expect("valid name"))
}

fuzz_target!(|text: &str| {
    if let Ok(signed) = SignedCheckpoint::parse(text) {
        assert_eq!(signed.to_string(), text, "a checkpoint does not print back");
        let checkpoint = signed.unverified();
        let body = checkpoint.body();
        assert_eq!(Checkpoint::parse_body(&body).ok().as_ref(), Some(checkpoint));
        let _ = signed.verify(key().verifier());
        // Signing what parsed gives a checkpoint that verifies.
        if let Ok(resigned) = checkpoint.sign(key()) {
            assert!(resigned.verify(key().verifier()).is_ok());
        }
    }
    if let Ok(verifier) = VerifierKey::from_str(text) {
        assert_eq!(VerifierKey::from_str(&verifier.to_string()).ok(), Some(verifier));
    }
    if let Ok(signing) = SigningKey::from_str(text) {
        assert_eq!(
            SigningKey::from_str(&signing.to_text()).ok().map(|k| k.verifier().clone()),
            Some(signing.verifier().clone())
        );
    }
});
