//! `metrics`: metric queries, within `[grants.metrics]`.

use std::sync::Arc;
use std::time::Duration;

use grace_executor::metrics as exec;
use grace_executor::{ExecError, MetricsExecutor};
use grace_model::capability;
use serde_json::json;

use super::labels_to_guest;
use crate::bindings::metrics::{Host, Sample, Series};
use crate::bindings::types::Error;
use crate::grants::{MetricsGrant, QueryError, not_granted};
use crate::host::HostState;
use crate::pipeline::{Call, Refusal, Scope, check_text, preview};

/// Most samples a range query may return per series (Prometheus' own limit).
const MAX_POINTS: u64 = 11_000;

fn grant(scope: &Scope) -> Result<&MetricsGrant, Refusal> {
    scope
        .grants
        .metrics
        .as_ref()
        .ok_or_else(|| not_granted("metrics", &scope.guest).into())
}

/// A query refused by the grant: invalid PromQL is the guest's mistake, the rest is denied.
fn refusal(e: QueryError) -> Refusal {
    match e {
        QueryError::Invalid(m) => Refusal::Invalid(m),
        QueryError::Denied(d) => d.into(),
    }
}

fn executor(scope: &Scope) -> Result<Arc<dyn MetricsExecutor>, ExecError> {
    scope.executors.metrics.clone().ok_or_else(|| {
        ExecError::Unavailable("no metrics backend is configured on this host".into())
    })
}

fn to_guest(series: Vec<exec::Series>) -> Vec<Series> {
    series
        .into_iter()
        .map(|s| Series {
            labels: labels_to_guest(s.labels),
            samples: s
                .samples
                .into_iter()
                .map(|p| Sample {
                    timestamp: p.timestamp,
                    value: p.value,
                })
                .collect(),
        })
        .collect()
}

impl Host for HostState {
    async fn query(&mut self, query: String) -> wasmtime::Result<Result<Vec<Series>, Error>> {
        let call = Call::read(
            &capability::metrics::QUERY,
            json!({ "query": preview(&query) }),
        )
        .on(grace_model::resource::Resource::query(&query));
        let r = self
            .run
            .perform(
                call,
                move |scope| async move {
                    check_text("query", &query)?;
                    // The evaluation time the grant's max_range is checked against is the one
                    // the query runs at.
                    let at = scope.executors.clock.now_millis();
                    grant(&scope)?.check_query(&query, at).map_err(refusal)?;
                    Ok((query, at))
                },
                |scope, (query, at)| async move { executor(&scope)?.query(&query, at).await },
            )
            .await?;
        Ok(r.map(to_guest))
    }

    async fn query_range(
        &mut self,
        query: String,
        start: u64,
        end: u64,
        step_millis: u64,
    ) -> wasmtime::Result<Result<Vec<Series>, Error>> {
        let call = Call::read(&capability::metrics::QUERY_RANGE,
            json!({ "query": preview(&query), "start": start, "end": end, "step_millis": step_millis }),
        )
        .on(grace_model::resource::Resource::query(&query));
        let r = self
            .run
            .perform(
                call,
                move |scope| async move {
                    check_text("query", &query)?;
                    if step_millis == 0 {
                        return Err(Refusal::Invalid("`step-millis` must be more than 0".into()));
                    }
                    if end < start {
                        return Err(Refusal::Invalid(format!(
                            "`end` {end} is before `start` {start}"
                        )));
                    }
                    if (end - start) / step_millis >= MAX_POINTS {
                        return Err(Refusal::Invalid(format!(
                            "the range would return more than {MAX_POINTS} samples per series; raise `step-millis`"
                        )));
                    }
                    grant(&scope)?
                        .check_range(&query, start, end)
                        .map_err(refusal)?;
                    Ok(query)
                },
                move |scope, query| async move {
                    executor(&scope)?
                        .query_range(&query, start, end, Duration::from_millis(step_millis))
                        .await
                },
            )
            .await?;
        Ok(r.map(to_guest))
    }
}
