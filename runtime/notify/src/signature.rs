//! HMAC-SHA256, as Slack, PagerDuty and GitHub sign the requests they send, compared in
//! constant time.

use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    mac(key, parts).finalize().into_bytes().into()
}

/// Whether `hex_signature` (lowercase or uppercase hex) is the HMAC-SHA256 of `parts` under
/// `key`. The comparison takes the same time wherever the first difference is.
pub fn verify_hex(key: &[u8], parts: &[&[u8]], hex_signature: &str) -> bool {
    let Ok(signature) = hex::decode(hex_signature) else {
        return false;
    };
    mac(key, parts).verify_slice(&signature).is_ok()
}

fn mac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = match <HmacSha256 as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn githubs_documented_example_verifies() {
        // docs.github.com, "Validating webhook deliveries": secret, payload and signature.
        let expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(
            hex::encode(hmac_sha256(
                b"It's a Secret to Everybody",
                &[b"Hello, World!"]
            )),
            expected
        );
        assert!(verify_hex(
            b"It's a Secret to Everybody",
            &[b"Hello, ", b"World!"],
            expected
        ));
        assert!(!verify_hex(
            b"It's a Secret to Everybody",
            &[b"Hello, World?"],
            expected
        ));
        assert!(!verify_hex(b"k", &[b"x"], "not hex"));
        assert!(!verify_hex(b"k", &[b"x"], ""));
    }
}
