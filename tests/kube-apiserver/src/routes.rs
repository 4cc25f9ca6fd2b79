//! The HTTP API: `apps/v1` deployments and their `autoscaling/v1` scale subresource, at the
//! paths and with the JSON of the real API server.
//!
//! | path | methods |
//! | --- | --- |
//! | `/apis/apps/v1/deployments` | `GET` (list, `?watch=true`) |
//! | `/apis/apps/v1/namespaces/{ns}/deployments` | `GET` (list, `?watch=true`), `POST` |
//! | `/apis/apps/v1/namespaces/{ns}/deployments/{name}` | `GET`, `PUT`, `PATCH`, `DELETE` |
//! | `/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale` | `GET`, `PUT`, `PATCH` |
//! | `/version` | `GET` |
//!
//! Lists ignore `limit` and return everything in one page (no `continue`), which clients must
//! accept from any server. `dryRun` is refused rather than ignored.
//!
//! The routes of services and endpoint slices are [`crate::object_routes`]'s, merged here so the
//! same fallbacks and middleware apply to them.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec, ScaleStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta, Status, StatusDetails};
use k8s_openapi::{List, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::faults::{self, Hooks};
use crate::object_routes;
use crate::patch::{self, PatchKind};
use crate::selectors::Filter;
use crate::status::ApiError;
use crate::store::{Store, WatchStart};
use crate::watch::{self as watching, WatchRequest};

/// What every handler shares.
#[derive(Debug, Clone)]
pub(crate) struct App {
    pub store: Store,
    pub hooks: Hooks,
    /// Turns true when the server stops.
    pub stop: watch::Receiver<bool>,
}

/// The query parameters of a request.
pub(crate) type Params = Query<HashMap<String, String>>;

/// A JSON answer.
pub(crate) fn json<T: Serialize>(code: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (code, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot serialize the answer: {e}"),
        )
            .into_response(),
    }
}

/// The router, with the fault and logging middleware in front of every route.
pub(crate) fn router(app: App) -> Router {
    let deployments = "/apis/apps/v1/namespaces/{ns}/deployments";
    Router::new()
        .route("/version", get(version))
        .route("/apis/apps/v1/deployments", get(list_all))
        .route(deployments, get(list_namespaced).post(create))
        .route(
            &format!("{deployments}/{{name}}"),
            get(read).put(replace).patch(patch).delete(delete),
        )
        .route(
            &format!("{deployments}/{{name}}/scale"),
            get(read_scale).put(replace_scale).patch(patch_scale),
        )
        .merge(object_routes::router())
        .fallback(|| async { ApiError::no_such_path() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(from_fn_with_state(app.clone(), faults::middleware))
        .with_state(app)
}

async fn version() -> Response {
    json(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": "33",
            "gitVersion": "v1.33.0-grace-kube-testserver",
            "platform": "linux/amd64"
        }),
    )
}

/// `400` for `dryRun`, which the test server does not model.
pub(crate) fn refuse_dry_run(params: &HashMap<String, String>) -> Result<(), ApiError> {
    if params.contains_key("dryRun") {
        return Err(ApiError::bad_request(
            "dryRun is not supported by the test API server",
        ));
    }
    Ok(())
}

/// Decodes a request body of kind `T` (`Deployment`, `Scale`, `Service`, ...): 400 for what is
/// not one, another `kind` or `apiVersion` included.
pub(crate) fn decode<T: Resource + DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let kind = T::KIND;
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not JSON: {e}")))?;
    if let Some(given) = value.get("kind").and_then(Value::as_str)
        && given != kind
    {
        return Err(ApiError::bad_request(format!(
            "expected a {kind} in the request body, got a {given}"
        )));
    }
    if let Some(given) = value.get("apiVersion").and_then(Value::as_str)
        && given != T::API_VERSION
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({given}) does not match the expected API version ({})",
            T::API_VERSION
        )));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("the request body is not a {kind}: {e}")))
}

async fn list_all(State(app): State<App>, Query(params): Params) -> Result<Response, ApiError> {
    list_or_watch(&app, None, &params)
}

async fn list_namespaced(
    State(app): State<App>,
    Path(ns): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    list_or_watch(&app, Some(&ns), &params)
}

fn list_or_watch(
    app: &App,
    ns: Option<&str>,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let filter = Filter::parse(
        ns,
        params.get("fieldSelector").map(String::as_str),
        params.get("labelSelector").map(String::as_str),
    )?;
    if params.get("watch").is_some_and(|w| w == "true" || w == "1") {
        let start =
            match params.get("resourceVersion").map(String::as_str) {
                None | Some("" | "0") => WatchStart::Now,
                Some(v) => WatchStart::After(v.parse().map_err(|_| {
                    ApiError::bad_request(format!("`{v}` is not a resourceVersion"))
                })?),
            };
        // The real server picks a random timeout of 30 to 60 minutes; a fixed one will do.
        let timeout =
            match params.get("timeoutSeconds") {
                None => Duration::from_secs(1800),
                Some(t) => Duration::from_secs(t.parse().map_err(|_| {
                    ApiError::bad_request(format!("`{t}` is not a number of seconds"))
                })?),
            };
        let request = WatchRequest {
            filter,
            start,
            timeout,
            send_initial_events: params.get("sendInitialEvents").is_some_and(|v| v == "true"),
        };
        return Ok(watching::respond(&app.store, request, app.stop.clone()));
    }
    let state = app.store.lock();
    let list = List {
        items: state.list(&filter),
        metadata: ListMeta {
            resource_version: Some(state.resource_version().to_string()),
            ..ListMeta::default()
        },
    };
    Ok(json(StatusCode::OK, &list))
}

async fn create(
    State(app): State<App>,
    Path(ns): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    refuse_dry_run(&params)?;
    let deployment: Deployment = decode(&body)?;
    let created = app.store.lock().create(&ns, deployment)?;
    Ok(json(StatusCode::CREATED, &created))
}

async fn read(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let state = app.store.lock();
    let deployment = state
        .get(&ns, &name)
        .ok_or_else(|| ApiError::not_found(&name))?;
    Ok(json(StatusCode::OK, deployment))
}

async fn replace(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    refuse_dry_run(&params)?;
    let wanted: Deployment = decode(&body)?;
    let updated = app.store.lock().modify(&ns, &name, |_| Ok(wanted))?;
    Ok(json(StatusCode::OK, &updated))
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// Reads a patched object back: 422 when the patch made it something else.
fn patched<T: DeserializeOwned>(value: Value, kind: &str, name: &str) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| {
        ApiError::invalid(
            kind,
            name,
            "<patched object>",
            &format!("cannot be decoded: {e}"),
        )
    })
}

async fn patch(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    refuse_dry_run(&params)?;
    let kind = PatchKind::from_content_type(content_type(&headers))?;
    let updated = app.store.lock().modify(&ns, &name, |current| {
        let target = serde_json::to_value(current)
            .map_err(|e| ApiError::bad_request(format!("cannot patch: {e}")))?;
        patched(
            patch::apply(kind, &target, &body)?,
            "Deployment.apps",
            &name,
        )
    })?;
    Ok(json(StatusCode::OK, &updated))
}

async fn delete(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    refuse_dry_run(&params)?;
    let deleted = app.store.lock().delete(&ns, &name)?;
    let status = Status {
        status: Some("Success".to_owned()),
        details: Some(StatusDetails {
            name: Some(name),
            group: Some("apps".to_owned()),
            kind: Some("deployments".to_owned()),
            uid: deleted.metadata.uid,
            ..StatusDetails::default()
        }),
        ..Status::default()
    };
    Ok(json(StatusCode::OK, &status))
}

/// The `autoscaling/v1` Scale of a deployment.
pub(crate) fn scale_of(d: &Deployment) -> Scale {
    let selector = d.spec.selector.match_labels.as_ref().map(|labels| {
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    });
    Scale {
        metadata: ObjectMeta {
            name: d.metadata.name.clone(),
            namespace: d.metadata.namespace.clone(),
            uid: d.metadata.uid.clone(),
            resource_version: d.metadata.resource_version.clone(),
            creation_timestamp: d.metadata.creation_timestamp.clone(),
            ..ObjectMeta::default()
        },
        spec: Some(ScaleSpec {
            replicas: d.spec.replicas,
        }),
        status: Some(ScaleStatus {
            replicas: d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            selector,
        }),
    }
}

/// The deployment `current` with the replicas of `scale`, whose version is the precondition.
fn apply_scale(current: &Deployment, scale: &Scale, name: &str) -> Result<Deployment, ApiError> {
    if scale.metadata.name.as_deref().is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            scale.metadata.name.as_deref().unwrap_or_default()
        )));
    }
    let replicas = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(
            "Scale.autoscaling",
            name,
            "spec.replicas",
            &format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        ));
    }
    let mut new = current.clone();
    new.spec.replicas = Some(replicas);
    new.metadata.resource_version = scale.metadata.resource_version.clone();
    Ok(new)
}

async fn read_scale(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let state = app.store.lock();
    let deployment = state
        .get(&ns, &name)
        .ok_or_else(|| ApiError::not_found(&name))?;
    Ok(json(StatusCode::OK, &scale_of(deployment)))
}

async fn replace_scale(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    refuse_dry_run(&params)?;
    let scale: Scale = decode(&body)?;
    let updated = app
        .store
        .lock()
        .modify(&ns, &name, |current| apply_scale(current, &scale, &name))?;
    Ok(json(StatusCode::OK, &scale_of(&updated)))
}

async fn patch_scale(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    refuse_dry_run(&params)?;
    let kind = PatchKind::from_content_type(content_type(&headers))?;
    let updated = app.store.lock().modify(&ns, &name, |current| {
        let target = serde_json::to_value(scale_of(current))
            .map_err(|e| ApiError::bad_request(format!("cannot patch: {e}")))?;
        let scale: Scale = patched(
            patch::apply(kind, &target, &body)?,
            "Scale.autoscaling",
            &name,
        )?;
        apply_scale(current, &scale, &name)
    })?;
    Ok(json(StatusCode::OK, &scale_of(&updated)))
}
