//! Ledger entry decoding (`grace_ledger::codec::decode`): any bytes are refused with a typed
//! error or decoded, never a panic; and since decoding is strict, whatever decodes encodes back
//! to exactly the same bytes.
#![no_main]

use grace_ledger::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = codec::split(bytes);
    if let Ok(entry) = codec::decode(bytes) {
        let again = codec::encode(&entry).expect("a decoded entry encodes");
        assert_eq!(again, bytes, "decoding accepted a non-canonical encoding");
    }
});
