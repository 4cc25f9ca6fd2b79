//! Collector `latency-collector`: every minute, asks the metrics backend for p95 latency and
//! emits one `metrics.latency` event per series, about the series' service.
//!
//! The events carry the latest sample as `value`, so a playbook's trigger can say
//! `condition = "value > 500"`; the timestamp is the sample's.

use grace_sdk::config;
use grace_sdk::metrics;
use grace_sdk::prelude::*;

const DEFAULT_QUERY: &str = r#"service_latency_p95_ms{service="api-service"}"#;

struct LatencyCollector;

impl Collector for LatencyCollector {
    fn collect() -> Result<Vec<TriggerEvent>> {
        let query = config::get_or("query", DEFAULT_QUERY.to_owned())?;
        let service = config::get_or("service", "api-service".to_owned())?;
        let event_type = config::get_or("event_type", "metrics.latency".to_owned())?;

        let events: Vec<TriggerEvent> = metrics::query(&query)?
            .into_iter()
            .filter_map(|series| {
                let sample = series.latest()?;
                let resource = series.label("service").unwrap_or(&service).to_owned();
                Some(
                    TriggerEvent::new(&event_type, resource)
                        .payload(json!({
                            "value": sample.value,
                            "metric": "p95_latency_ms",
                            "query": query,
                            "labels": series.labels,
                        }))
                        .timestamp(sample.timestamp),
                )
            })
            .collect();
        if events.is_empty() {
            grace_sdk::warn!("`{query}` returned no samples");
        }
        Ok(events)
    }
}

grace_sdk::export_collector!(LatencyCollector);
