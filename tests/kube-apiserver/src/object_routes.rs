//! The HTTP API of the kinds without a controller, at the paths and with the JSON of the real API
//! server; one set of generic handlers serves every [`Kind`]:
//!
//! | path | methods |
//! | --- | --- |
//! | `/api/v1/services` | `GET` (list) |
//! | `/api/v1/namespaces/{ns}/services` | `GET` (list), `POST` |
//! | `/api/v1/namespaces/{ns}/services/{name}` | `GET`, `PUT`, `DELETE` |
//! | `/apis/discovery.k8s.io/v1/endpointslices` | `GET` (list) |
//! | `/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices` | `GET` (list), `POST` |
//! | `/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{name}` | `GET`, `PUT`, `DELETE` |
//! | `/apis/apps/v1/replicasets`, `…/namespaces/{ns}/replicasets[/{name}]` | as above |
//!
//! Lists take the selectors deployments take (equality-based labels, `metadata.name`,
//! `metadata.namespace`). `?watch=true` is refused with `400` rather than answered with a list
//! the client would misread, and `PATCH` gets `405`: neither is served for these kinds.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use k8s_openapi::List;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, Status, StatusDetails};

use crate::objects::Kind;
use crate::routes::{App, Params, decode, json, refuse_dry_run};
use crate::selectors::Filter;
use crate::status::ApiError;

/// The routes of services and endpoint slices.
pub(crate) fn router() -> Router<App> {
    Router::new()
        .merge(routes_of::<Service>())
        .merge(routes_of::<EndpointSlice>())
        .merge(routes_of::<k8s_openapi::api::apps::v1::ReplicaSet>())
}

/// The routes of kind `K`: `/api/v1/...` for the core group, `/apis/<group>/<version>/...` else.
fn routes_of<K: Kind>() -> Router<App> {
    let base = if K::GROUP.is_empty() {
        format!("/api/{}", K::VERSION)
    } else {
        format!("/apis/{}", K::API_VERSION)
    };
    let plural = K::URL_PATH_SEGMENT;
    Router::new()
        .route(&format!("{base}/{plural}"), get(list_all::<K>))
        .route(
            &format!("{base}/namespaces/{{ns}}/{plural}"),
            get(list_namespaced::<K>).post(create::<K>),
        )
        .route(
            &format!("{base}/namespaces/{{ns}}/{plural}/{{name}}"),
            get(read::<K>).put(replace::<K>).delete(delete::<K>),
        )
}

async fn list_all<K: Kind>(
    State(app): State<App>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    list::<K>(&app, None, &params)
}

async fn list_namespaced<K: Kind>(
    State(app): State<App>,
    Path(ns): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    list::<K>(&app, Some(&ns), &params)
}

fn list<K: Kind>(
    app: &App,
    ns: Option<&str>,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    if params.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return Err(ApiError::bad_request(format!(
            "the test API server does not watch {}",
            K::URL_PATH_SEGMENT
        )));
    }
    let filter = Filter::parse(
        ns,
        params.get("fieldSelector").map(String::as_str),
        params.get("labelSelector").map(String::as_str),
    )?;
    let state = app.store.lock();
    let list = List {
        items: state.objects::<K>(&filter),
        metadata: ListMeta {
            resource_version: Some(state.resource_version().to_string()),
            ..ListMeta::default()
        },
    };
    Ok(json(StatusCode::OK, &list))
}

async fn create<K: Kind>(
    State(app): State<App>,
    Path(ns): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    refuse_dry_run(&params)?;
    let object: K = decode(&body)?;
    let created = app.store.lock().create_object(&ns, object)?;
    Ok(json(StatusCode::CREATED, &created))
}

async fn read<K: Kind>(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let state = app.store.lock();
    let object = state
        .object::<K>(&ns, &name)
        .ok_or_else(|| ApiError::not_found_of::<K>(&name))?;
    Ok(json(StatusCode::OK, object))
}

async fn replace<K: Kind>(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    refuse_dry_run(&params)?;
    let wanted: K = decode(&body)?;
    let updated = app.store.lock().replace_object(&ns, &name, wanted)?;
    Ok(json(StatusCode::OK, &updated))
}

async fn delete<K: Kind>(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    refuse_dry_run(&params)?;
    let deleted: K = app.store.lock().delete_object(&ns, &name)?;
    if K::RETURNS_DELETED_OBJECT {
        return Ok(json(StatusCode::OK, &deleted));
    }
    let status = Status {
        status: Some("Success".to_owned()),
        details: Some(StatusDetails {
            name: Some(name),
            group: Some(K::GROUP.to_owned()).filter(|g| !g.is_empty()),
            kind: Some(K::URL_PATH_SEGMENT.to_owned()),
            uid: deleted.metadata().uid.clone(),
            ..StatusDetails::default()
        }),
        ..Status::default()
    };
    Ok(json(StatusCode::OK, &status))
}
