//! GRACE's `metrics` capability backed by a real Prometheus, over its HTTP API.
//!
//! [`PrometheusMetrics`] implements [`MetricsExecutor`]: `query` is an instant query
//! (`GET /api/v1/query`), `query_range` a range query (`GET /api/v1/query_range`). Prometheus'
//! answers map to [`Series`] (an instant vector or a scalar gives one sample per series, a
//! matrix every sample), and its errors to [`ExecError`]: a bad query is
//! [`ExecError::InvalidArgument`] with Prometheus' own message, an unreachable, overloaded or
//! slow server is [`ExecError::Unavailable`] or [`ExecError::TimedOut`], and an answer that
//! cannot be understood is [`ExecError::Other`] naming what was wrong.

pub mod discover;

use std::time::Duration;

use grace_executor::budget::response_cap;
use grace_executor::metrics::{Sample, Series};
use grace_executor::{ExecError, Labels, MetricsExecutor};
use reqwest::Url;
use serde::Deserialize;

/// The default time limit of one request to Prometheus.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default largest answer read from Prometheus, in bytes.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// A Prometheus server, as GRACE's metrics provider.
#[derive(Debug, Clone)]
pub struct PrometheusMetrics {
    /// The server's base URL, ending in `/` (so API paths join below any prefix).
    base_url: Url,
    client: reqwest::Client,
    /// The time limit of one request.
    timeout: Duration,
    /// When true, instant queries omit `time`: Prometheus evaluates them at its own now.
    evaluate_at_server_time: bool,
    /// The largest answer read, in bytes (a run's own budget may lower it per call).
    max_response_bytes: u64,
}

/// Parses and checks a Prometheus base URL: `http` or `https`, with a host.
///
/// The error says what is wrong, for a configuration error to name the setting.
pub fn parse_base_url(url: &str) -> Result<Url, String> {
    let mut parsed = Url::parse(url).map_err(|e| format!("`{url}` is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`{url}` is not an http(s) URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("`{url}` must not have a query or a fragment"));
    }
    if !parsed.path().ends_with('/') {
        let path = format!("{}/", parsed.path());
        parsed.set_path(&path);
    }
    Ok(parsed)
}

impl PrometheusMetrics {
    /// A provider for the Prometheus at `base_url` (e.g. `http://127.0.0.1:9090`), with
    /// [`DEFAULT_TIMEOUT`] per request, evaluating instant queries at the time asked.
    pub fn new(base_url: &str) -> Result<PrometheusMetrics, String> {
        let base_url = parse_base_url(base_url)?;
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(PrometheusMetrics {
            base_url,
            client,
            timeout: DEFAULT_TIMEOUT,
            evaluate_at_server_time: false,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        })
    }

    /// Sets the time limit of one request.
    pub fn with_timeout(mut self, timeout: Duration) -> PrometheusMetrics {
        self.timeout = timeout;
        self
    }

    /// Sets the largest answer read from Prometheus, in bytes; a larger one is
    /// [`ExecError::TooLarge`].
    pub fn with_max_response_bytes(mut self, bytes: u64) -> PrometheusMetrics {
        self.max_response_bytes = bytes;
        self
    }

    /// When `true`, instant queries omit `time` and Prometheus evaluates them at its own now:
    /// for a run clock that is virtual (simulation) while the metrics are real.
    pub fn evaluate_at_server_time(mut self, yes: bool) -> PrometheusMetrics {
        self.evaluate_at_server_time = yes;
        self
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Vec<Series>, ExecError> {
        let mut url = self
            .base_url
            .join(path)
            .map_err(|e| ExecError::Other(format!("cannot build the Prometheus URL: {e}")))?;
        url.query_pairs_mut()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        let response = self
            .client
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        let body = self.read_capped(response).await?;
        decode(status, &body)
    }

    /// Reads the body chunk by chunk, stopping at the cap (the smaller of this provider's
    /// [`PrometheusMetrics::with_max_response_bytes`] and what the run may still hold): an
    /// answer over it is refused without being held whole.
    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Vec<u8>, ExecError> {
        let cap = response_cap(self.max_response_bytes);
        let too_large = ExecError::TooLarge { limit: cap };
        if response.content_length().is_some_and(|n| n > cap) {
            return Err(too_large);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e))?
        {
            if (body.len() as u64).saturating_add(chunk.len() as u64) > cap {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_error(&self, e: &reqwest::Error) -> ExecError {
        let base = &self.base_url;
        if e.is_timeout() {
            ExecError::TimedOut(format!(
                "Prometheus at {base} did not answer within {:?}",
                self.timeout
            ))
        } else if e.is_connect() {
            ExecError::Unavailable(format!("cannot connect to Prometheus at {base}: {e}"))
        } else {
            ExecError::Unavailable(format!("Prometheus at {base}: {e}"))
        }
    }
}

/// Seconds since the epoch, as Prometheus takes them, from milliseconds.
fn seconds(millis: u64) -> String {
    format!("{}.{:03}", millis / 1000, millis % 1000)
}

#[async_trait::async_trait]
impl MetricsExecutor for PrometheusMetrics {
    async fn query(&self, query: &str, at: u64) -> Result<Vec<Series>, ExecError> {
        let mut params = vec![("query", query.to_owned())];
        if !self.evaluate_at_server_time {
            params.push(("time", seconds(at)));
        }
        self.get("api/v1/query", &params).await
    }

    async fn query_range(
        &self,
        query: &str,
        start: u64,
        end: u64,
        step: Duration,
    ) -> Result<Vec<Series>, ExecError> {
        if step.is_zero() {
            return Err(ExecError::InvalidArgument(
                "the step of a range query must be positive".to_owned(),
            ));
        }
        let params = [
            ("query", query.to_owned()),
            ("start", seconds(start)),
            ("end", seconds(end)),
            ("step", format!("{}", step.as_secs_f64())),
        ];
        self.get("api/v1/query_range", &params).await
    }
}

/// Prometheus' answer envelope.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct InstantSeries {
    #[serde(default)]
    metric: Labels,
    value: (f64, String),
}

#[derive(Debug, Deserialize)]
struct RangeSeries {
    #[serde(default)]
    metric: Labels,
    values: Vec<(f64, String)>,
}

fn sample((t, v): &(f64, String)) -> Result<Sample, ExecError> {
    let value = v
        .parse::<f64>()
        .map_err(|_| ExecError::Other(format!("Prometheus sent `{v}` as a sample value")))?;
    if !t.is_finite() || *t < 0.0 {
        return Err(ExecError::Other(format!(
            "Prometheus sent `{t}` as a sample timestamp"
        )));
    }
    // Seconds with millisecond precision: round to the millisecond.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let timestamp = (t * 1000.0).round() as u64;
    Ok(Sample { timestamp, value })
}

/// Decodes an answer of the query API: HTTP `status` and `body`.
pub fn decode(status: u16, body: &[u8]) -> Result<Vec<Series>, ExecError> {
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(e) => e,
        Err(e) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(match status {
                503 => ExecError::Unavailable(format!("Prometheus is unavailable (503): {text}")),
                500..=599 => {
                    ExecError::Unavailable(format!("Prometheus answered {status}: {text}"))
                }
                _ => ExecError::Other(format!(
                    "Prometheus answered {status} with a body that is not its API's JSON ({e}): {text}"
                )),
            });
        }
    };
    if envelope.status != "success" {
        let kind = envelope.error_type.unwrap_or_default();
        let message = envelope
            .error
            .unwrap_or_else(|| format!("status `{}`", envelope.status));
        return Err(match (kind.as_str(), status) {
            ("bad_data", _) | (_, 400 | 422) => ExecError::InvalidArgument(message),
            ("timeout", _) => ExecError::TimedOut(format!("Prometheus: {message}")),
            ("unavailable" | "canceled", _) | (_, 500..=599) => {
                ExecError::Unavailable(format!("Prometheus ({kind}): {message}"))
            }
            _ => ExecError::Other(format!("Prometheus answered {status} ({kind}): {message}")),
        });
    }
    if !(200..300).contains(&status) {
        return Err(ExecError::Other(format!(
            "Prometheus answered {status} with status `success`"
        )));
    }
    let data = envelope
        .data
        .ok_or_else(|| ExecError::Other("Prometheus' answer has no `data`".to_owned()))?;
    let malformed = |what: &str, e: serde_json::Error| {
        ExecError::Other(format!("Prometheus' {what} result is malformed: {e}"))
    };
    match data.result_type.as_str() {
        "vector" => {
            let series: Vec<InstantSeries> =
                serde_json::from_value(data.result).map_err(|e| malformed("vector", e))?;
            series
                .into_iter()
                .map(|s| {
                    Ok(Series {
                        labels: s.metric,
                        samples: vec![sample(&s.value)?],
                    })
                })
                .collect()
        }
        "scalar" => {
            let value: (f64, String) =
                serde_json::from_value(data.result).map_err(|e| malformed("scalar", e))?;
            Ok(vec![Series {
                labels: Labels::new(),
                samples: vec![sample(&value)?],
            }])
        }
        "matrix" => {
            let series: Vec<RangeSeries> =
                serde_json::from_value(data.result).map_err(|e| malformed("matrix", e))?;
            series
                .into_iter()
                .map(|s| {
                    Ok(Series {
                        labels: s.metric,
                        samples: s.values.iter().map(sample).collect::<Result<_, _>>()?,
                    })
                })
                .collect()
        }
        other => Err(ExecError::Other(format!(
            "Prometheus answered a `{other}` result, not a vector, scalar or matrix"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_vector_gives_one_sample_per_series() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"api"},"value":[1767225600.123,"1"]},
            {"metric":{"job":"db"},"value":[1767225600,"+Inf"]}]}}"#;
        let series = decode(200, body).unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].labels["job"], "api");
        assert_eq!(series[0].labels["__name__"], "up");
        assert_eq!(
            series[0].samples,
            vec![Sample {
                timestamp: 1_767_225_600_123,
                value: 1.0
            }]
        );
        assert!(series[1].samples[0].value.is_infinite());
    }

    #[test]
    fn a_scalar_is_one_unlabelled_series() {
        let body =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1767225600.5,"2416.7"]}}"#;
        let series = decode(200, body).unwrap();
        assert_eq!(
            series,
            vec![Series {
                labels: Labels::new(),
                samples: vec![Sample {
                    timestamp: 1_767_225_600_500,
                    value: 2416.7
                }]
            }]
        );
    }

    #[test]
    fn a_matrix_keeps_every_sample_in_order() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"service":"api-service"},"values":[[10,"1"],[11,"NaN"],[12,"3.5"]]}]}}"#;
        let series = decode(200, body).unwrap();
        assert_eq!(series.len(), 1);
        let s = &series[0].samples;
        assert_eq!(
            s.iter().map(|s| s.timestamp).collect::<Vec<_>>(),
            [10_000, 11_000, 12_000]
        );
        assert!(s[1].value.is_nan());
        assert_eq!(s[2].value, 3.5);
    }

    #[test]
    fn an_empty_vector_is_no_series() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(decode(200, body).unwrap(), vec![]);
    }

    #[test]
    fn errors_map_to_exec_errors() {
        let bad = br#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error"}"#;
        assert_eq!(
            decode(400, bad),
            Err(ExecError::InvalidArgument(
                "invalid parameter \"query\": 1:5: parse error".to_owned()
            ))
        );
        let exec = br#"{"status":"error","errorType":"execution","error":"many-to-many matching"}"#;
        assert!(matches!(
            decode(422, exec),
            Err(ExecError::InvalidArgument(m)) if m == "many-to-many matching"
        ));
        let timeout = br#"{"status":"error","errorType":"timeout","error":"query timed out"}"#;
        assert!(matches!(decode(503, timeout), Err(ExecError::TimedOut(_))));
        let unavailable = br#"{"status":"error","errorType":"unavailable","error":"starting"}"#;
        assert!(matches!(
            decode(503, unavailable),
            Err(ExecError::Unavailable(_))
        ));
        assert!(matches!(
            decode(503, b"Service Unavailable"),
            Err(ExecError::Unavailable(_))
        ));
        assert!(matches!(
            decode(502, b"<html>bad gateway</html>"),
            Err(ExecError::Unavailable(_))
        ));
    }

    #[test]
    fn unparseable_answers_say_what_was_wrong() {
        let Err(ExecError::Other(m)) = decode(200, b"<html>not prometheus</html>") else {
            panic!("not an Other")
        };
        assert!(m.contains("not its API's JSON"), "{m}");
        let Err(ExecError::Other(m)) = decode(
            200,
            br#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#,
        ) else {
            panic!("not an Other")
        };
        assert!(m.contains("`string`"), "{m}");
        let Err(ExecError::Other(m)) = decode(
            200,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"fast"]}]}}"#,
        ) else {
            panic!("not an Other")
        };
        assert!(m.contains("`fast`"), "{m}");
        let Err(ExecError::Other(m)) = decode(
            200,
            br#"{"status":"success","data":{"resultType":"matrix","result":{"no":"list"}}}"#,
        ) else {
            panic!("not an Other")
        };
        assert!(m.contains("matrix"), "{m}");
    }

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            parse_base_url("http://127.0.0.1:9090").unwrap().as_str(),
            "http://127.0.0.1:9090/"
        );
        assert_eq!(
            parse_base_url("https://metrics.example/prom")
                .unwrap()
                .join("api/v1/query")
                .unwrap()
                .as_str(),
            "https://metrics.example/prom/api/v1/query"
        );
        assert!(parse_base_url("127.0.0.1:9090").is_err());
        assert!(parse_base_url("ftp://host").is_err());
        assert!(parse_base_url("not a url").is_err());
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        // Bind then drop: nothing listens on that port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = PrometheusMetrics::new(&format!("http://127.0.0.1:{port}"))
            .unwrap()
            .with_timeout(Duration::from_secs(2));
        let e = p.query("up", 0).await.unwrap_err();
        assert!(e.is_transient(), "{e:?}");
    }

    #[test]
    fn times_are_seconds_with_milliseconds() {
        assert_eq!(seconds(1_767_225_600_123), "1767225600.123");
        assert_eq!(seconds(5), "0.005");
    }
}
