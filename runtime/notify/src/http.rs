//! The one HTTP client of the integrations: time-limited, answers read up to a bound, and
//! every answer sorted into success or a [`DeliveryError`] as the vendors' documentation says
//! to treat it.
//!
//! | answer | [`DeliveryError`] |
//! |---|---|
//! | `2xx` | none |
//! | `429` | `RateLimited`, after its `Retry-After` (seconds; 30 s when absent or unreadable, at most an hour) |
//! | `408`, `5xx`, no answer, a lost connection, a timeout | `Transient` |
//! | any other `4xx` | `Rejected` |

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};

use crate::DeliveryError;
use crate::text::{cut, printable};

/// The most bytes of an answer read: every answer used here is a small JSON document.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// The wait after a `429` without a readable `Retry-After`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured: a vendor asking for more is asked again after this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// The most characters of a vendor's error kept in a [`DeliveryError`].
pub const MAX_ERROR_CHARS: usize = 500;

/// An answer, read whole (up to [`MAX_ANSWER_BYTES`]).
#[derive(Debug, Clone)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON, or a [`DeliveryError::Transient`] naming the vendor: a vendor answering
    /// something else than JSON is misbehaving (a proxy's error page, say), which passes.
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        vendor: &'static str,
    ) -> Result<T, DeliveryError> {
        serde_json::from_slice(&self.body).map_err(|e| DeliveryError::Transient {
            vendor,
            message: format!("its answer is not the JSON it documents ({e})"),
        })
    }

    /// The body as text for an error message: printable, cut to [`MAX_ERROR_CHARS`].
    pub fn error_text(&self) -> String {
        cut(
            &printable(&String::from_utf8_lossy(&self.body)),
            MAX_ERROR_CHARS,
        )
    }
}

/// A client for one vendor.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    vendor: &'static str,
}

/// The client could not be built (no TLS provider, say).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for {vendor}: {message}")]
pub struct BuildError {
    vendor: &'static str,
    message: String,
}

impl Http {
    /// A client whose every request, from connecting to the last byte of the answer, takes at
    /// most `timeout`. Redirects are not followed: a vendor API that redirects is misconfigured,
    /// and a redirect must not carry a token elsewhere.
    pub fn new(vendor: &'static str, timeout: Duration) -> Result<Http, BuildError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("grace/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuildError {
                vendor,
                message: e.to_string(),
            })?;
        Ok(Http { client, vendor })
    }

    /// Who this client talks to.
    pub fn vendor(&self) -> &'static str {
        self.vendor
    }

    /// The underlying client, to build requests with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` and reads its answer; any status comes back as an [`Answer`].
    pub async fn exchange(&self, request: RequestBuilder) -> Result<Answer, DeliveryError> {
        let vendor = self.vendor;
        let transient = |e: reqwest::Error| DeliveryError::Transient {
            vendor,
            message: if e.is_timeout() {
                "no answer in time".to_owned()
            } else {
                // reqwest's errors name the URL, never a header: the token does not appear.
                cut(&e.to_string(), MAX_ERROR_CHARS)
            },
        };
        let mut response = request.send().await.map_err(transient)?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transient)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(DeliveryError::Transient {
                    vendor,
                    message: format!("its answer is larger than {MAX_ANSWER_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Sends `request`: a `2xx` answer, or the error its status means (see the module
    /// documentation).
    pub async fn send(&self, request: RequestBuilder) -> Result<Answer, DeliveryError> {
        let answer = self.exchange(request).await?;
        classify(self.vendor, answer)
    }
}

/// A `2xx` answer as is, any other as the [`DeliveryError`] its status means.
pub fn classify(vendor: &'static str, answer: Answer) -> Result<Answer, DeliveryError> {
    let status = answer.status;
    if status.is_success() {
        return Ok(answer);
    }
    let message = format!("{status}: {}", answer.error_text());
    Err(if status == StatusCode::TOO_MANY_REQUESTS {
        DeliveryError::RateLimited {
            vendor,
            retry_after: retry_after(&answer.headers),
        }
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        DeliveryError::Transient { vendor, message }
    } else {
        DeliveryError::Rejected { vendor, message }
    })
}

/// The wait a `Retry-After` header asks for, in whole seconds as every vendor here sends it;
/// [`DEFAULT_RETRY_AFTER`] when absent or not a number, at most [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, |s| {
            Duration::from_secs(s).min(MAX_RETRY_AFTER)
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use reqwest::header::HeaderValue;

    use super::*;

    fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Answer {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn statuses_sort_into_retry_after_retry_or_give_up() {
        assert!(classify("slack", answer(200, &[], "{}")).is_ok());
        assert_eq!(
            classify("jira", answer(429, &[("retry-after", "7")], "")).unwrap_err(),
            DeliveryError::RateLimited {
                vendor: "jira",
                retry_after: Duration::from_secs(7)
            }
        );
        assert_eq!(
            classify("jira", answer(429, &[("retry-after", "soon")], ""))
                .unwrap_err()
                .retry_after(),
            Some(DEFAULT_RETRY_AFTER)
        );
        assert_eq!(
            classify("jira", answer(429, &[("retry-after", "999999")], ""))
                .unwrap_err()
                .retry_after(),
            Some(MAX_RETRY_AFTER)
        );
        assert!(matches!(
            classify("pagerduty", answer(503, &[], "down")).unwrap_err(),
            DeliveryError::Transient { .. }
        ));
        assert!(matches!(
            classify("pagerduty", answer(408, &[], "")).unwrap_err(),
            DeliveryError::Transient { .. }
        ));
        let rejected = classify("jira", answer(401, &[], "\u{1b}[31mno")).unwrap_err();
        assert!(!rejected.is_retryable());
        assert_eq!(
            rejected.to_string(),
            "jira refused it: 401 Unauthorized: \u{fffd}[31mno"
        );
    }
}
