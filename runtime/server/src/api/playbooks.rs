//! `/v1/playbooks`: upload (multipart: `manifest` + `component`), list, show, enable, disable,
//! delete, download a version's component.

use std::sync::Arc;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::app::App;
use crate::error::ApiError;
use crate::store::{PlaybookRecord, VersionRecord};

pub fn router(max_upload_bytes: usize) -> Router<Arc<App>> {
    Router::new()
        .route(
            "/",
            post(upload)
                .layer(DefaultBodyLimit::max(max_upload_bytes))
                .get(list),
        )
        .route("/{name}", get(show).delete(delete))
        .route("/{name}/enable", post(enable))
        .route("/{name}/disable", post(disable))
        .route("/{name}/versions/{version}/component", get(component))
}

/// A playbook in a list.
#[derive(Serialize)]
struct Summary {
    name: String,
    kind: grace_engine::Kind,
    enabled: bool,
    active_version: String,
    digest: String,
    version_count: usize,
    triggers: Vec<String>,
}

#[derive(Serialize)]
struct Detail {
    #[serde(flatten)]
    summary: Summary,
    versions: Vec<VersionRecord>,
}

fn summary(r: &PlaybookRecord) -> Summary {
    let active = r.active();
    let triggers = active
        .and_then(|v| grace_engine::Manifest::parse(&v.manifest).ok())
        .map(|m| {
            m.triggers
                .iter()
                .map(|t| format!("{} on {}", t.event_type, t.resource))
                .collect()
        })
        .unwrap_or_default();
    Summary {
        name: r.name.clone(),
        kind: active.map_or(grace_engine::Kind::Playbook, |v| v.kind),
        enabled: r.enabled,
        active_version: r.active_version.clone(),
        digest: active.map(|v| v.digest.clone()).unwrap_or_default(),
        version_count: r.versions.len(),
        triggers,
    }
}

/// `POST /v1/playbooks`.
async fn upload(
    State(app): State<Arc<App>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::media_type(format!(
            "upload a `multipart/form-data` body with the parts `manifest` and `component` ({})",
            e.body_text()
        ))
    })?;
    let mut manifest = None;
    let mut component = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::too_large(format!(
                    "the upload is larger than the server's limit of {} bytes",
                    app.config.max_upload_bytes
                )));
            }
            Err(e) => {
                return Err(ApiError::body(format!(
                    "malformed multipart body: {}",
                    e.body_text()
                )));
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(format!(
                    "the upload is larger than the server's limit of {} bytes",
                    app.config.max_upload_bytes
                ))
            } else {
                ApiError::body(format!("malformed multipart body: {}", e.body_text()))
            }
        })?;
        match name.as_str() {
            "manifest" => {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::field("manifest", "the manifest is not UTF-8 text"))?;
                manifest = Some(text);
            }
            "component" => component = Some(bytes.to_vec()),
            other => {
                return Err(ApiError::field(
                    other,
                    format!("unknown part `{other}`: expected `manifest` and `component`"),
                ));
            }
        }
    }
    let manifest =
        manifest.ok_or_else(|| ApiError::field("manifest", "the `manifest` part is missing"))?;
    let component =
        component.ok_or_else(|| ApiError::field("component", "the `component` part is missing"))?;
    let (created, record) = app.upload(manifest, component).await?;
    let body =
        serde_json::to_value(summary(&record)).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(body),
    ))
}

/// `GET /v1/playbooks`.
async fn list(State(app): State<Arc<App>>) -> Result<Json<Vec<Summary>>, ApiError> {
    Ok(Json(app.store.playbooks()?.iter().map(summary).collect()))
}

fn find(app: &App, name: &str) -> Result<PlaybookRecord, ApiError> {
    app.store
        .playbook(name)?
        .ok_or_else(|| ApiError::not_found(format!("no playbook named `{name}`")))
}

/// `GET /v1/playbooks/{name}`.
async fn show(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Json<Detail>, ApiError> {
    let record = find(&app, &name)?;
    Ok(Json(Detail {
        summary: summary(&record),
        versions: record.versions,
    }))
}

/// `POST /v1/playbooks/{name}/enable`.
async fn enable(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Json<Summary>, ApiError> {
    Ok(Json(summary(&app.set_enabled(&name, true).await?)))
}

/// `POST /v1/playbooks/{name}/disable`.
async fn disable(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Json<Summary>, ApiError> {
    Ok(Json(summary(&app.set_enabled(&name, false).await?)))
}

/// `DELETE /v1/playbooks/{name}`.
async fn delete(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/playbooks/{name}/versions/{version}/component`.
async fn component(
    State(app): State<Arc<App>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let record = find(&app, &name)?;
    let v = record
        .versions
        .iter()
        .find(|v| v.version == version)
        .ok_or_else(|| ApiError::not_found(format!("`{name}` has no version `{version}`")))?;
    let bytes = app
        .store
        .component(&v.digest)?
        .ok_or_else(|| ApiError::internal("a version without its component"))?;
    Ok(([(header::CONTENT_TYPE, "application/wasm")], bytes))
}
