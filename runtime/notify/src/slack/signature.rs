//! Slack's request signing ("Verifying requests from Slack"): `X-Slack-Signature` is `v0=`
//! and the hex HMAC-SHA256, under the app's signing secret, of `v0:<X-Slack-Request-Timestamp>:<raw body>`.
//! A timestamp more than five minutes from now is refused, so a captured request cannot be
//! replayed later; within the window, the caller refuses a signature it has already seen.

use crate::Secret;
use crate::signature::verify_hex;

/// Slack's signature header.
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
/// Slack's timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
/// How far a request's timestamp may be from now, in seconds (Slack's documented five minutes).
pub const REPLAY_WINDOW_SECS: u64 = 5 * 60;

/// Why a request is not Slack's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header is missing.
    #[error("the `{0}` header is missing")]
    Missing(&'static str),
    /// The timestamp is not a number of seconds.
    #[error("the `x-slack-request-timestamp` header is not a Unix time")]
    BadTimestamp,
    /// The timestamp is outside the replay window.
    #[error("the request was signed {0} s away from now, beyond the five-minute window")]
    Stale(u64),
    /// The signature does not match.
    #[error("the signature does not match the signing secret")]
    Mismatch,
}

/// Checks a request's signature at `now` (seconds since the Unix epoch).
pub fn verify(
    secret: &Secret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: u64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?;
    let signature = signature.ok_or(SignatureError::Missing(SIGNATURE_HEADER))?;
    let at: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = now.abs_diff(at);
    if skew > REPLAY_WINDOW_SECS {
        return Err(SignatureError::Stale(skew));
    }
    let hex = signature
        .strip_prefix("v0=")
        .ok_or(SignatureError::Mismatch)?;
    let base = format!("v0:{}:", timestamp.trim());
    if verify_hex(secret.expose().as_bytes(), &[base.as_bytes(), body], hex) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The `X-Slack-Signature` of `body` at `timestamp`: what Slack sends, for tests and for the
/// Slack test server.
pub fn sign(secret: &Secret, timestamp: u64, body: &[u8]) -> String {
    let base = format!("v0:{timestamp}:");
    let mac = crate::signature::hmac_sha256(secret.expose().as_bytes(), &[base.as_bytes(), body]);
    format!("v0={}", hex::encode(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's worked example ("Verifying requests from Slack", step by step).
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slacks_documented_example_verifies() {
        let secret = Secret::new(SECRET);
        assert_eq!(sign(&secret, 1_531_420_618, BODY.as_bytes()), SIGNATURE);
        assert_eq!(
            verify(
                &secret,
                Some(TIMESTAMP),
                Some(SIGNATURE),
                BODY.as_bytes(),
                1_531_420_618 + 60
            ),
            Ok(())
        );
    }

    #[test]
    fn a_changed_body_a_wrong_secret_or_a_stale_timestamp_is_refused() {
        let secret = Secret::new(SECRET);
        let now = 1_531_420_618;
        let mut changed = BODY.as_bytes().to_vec();
        changed[10] ^= 1;
        assert_eq!(
            verify(&secret, Some(TIMESTAMP), Some(SIGNATURE), &changed, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                &Secret::new("other"),
                Some(TIMESTAMP),
                Some(SIGNATURE),
                BODY.as_bytes(),
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                &secret,
                Some(TIMESTAMP),
                Some(SIGNATURE),
                BODY.as_bytes(),
                now + 301
            ),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            verify(&secret, Some("soon"), Some(SIGNATURE), BODY.as_bytes(), now),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(&secret, None, Some(SIGNATURE), BODY.as_bytes(), now),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify(
                &secret,
                Some(TIMESTAMP),
                Some(&SIGNATURE.replace("v0=", "v1=")),
                BODY.as_bytes(),
                now
            ),
            Err(SignatureError::Mismatch)
        );
    }
}
