//! `/v1/playbooks`: upload (multipart: `manifest` + `component` + `signature`), list, show,
//! enable, disable, delete, download a version's component. Every change is audited in the
//! ledger with its caller.

use std::sync::Arc;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use super::state::BodyLimits;
use crate::app::App;
use crate::auth::Caller;
use crate::auth::{Audit, AuditAction};
use crate::error::ApiError;
use crate::registry::Registry;
use crate::shared_playbooks::{Change, ShareError, SharedPlaybooks};
use crate::signing::{Signature, SignatureError, SignedBy};
use crate::store::{PlaybookRecord, VersionRecord};

pub fn router(max_upload_bytes: usize) -> Router<App> {
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
pub(crate) struct Summary {
    pub(crate) name: String,
    pub(crate) kind: grace_engine::Kind,
    pub(crate) enabled: bool,
    pub(crate) active_version: String,
    pub(crate) digest: String,
    pub(crate) version_count: usize,
    pub(crate) triggers: Vec<String>,
    /// Whether the active version was signed by a trust root.
    pub(crate) signed: bool,
    /// Who signed the active version.
    pub(crate) signed_by: Option<SignedBy>,
}

#[derive(Serialize)]
struct Detail {
    #[serde(flatten)]
    summary: Summary,
    versions: Vec<VersionRecord>,
}

pub(crate) fn summary(r: &PlaybookRecord) -> Summary {
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
        signed: active.is_some_and(|v| v.signed_by.is_some()),
        signed_by: active.and_then(|v| v.signed_by.clone()),
    }
}

/// Checks an upload's signature against the trust roots; an unsigned upload passes only when
/// the server allows unsigned playbooks, loudly.
fn check_signature(
    registry: &Registry,
    signature: Option<&str>,
    component: &[u8],
    manifest: &str,
) -> Result<Option<SignedBy>, ApiError> {
    let refused = |e: SignatureError| ApiError::field("signature", e.to_string());
    match signature {
        Some(text) => {
            let signature = Signature::parse(text).map_err(refused)?;
            let by = registry
                .trust_roots()
                .verify(&signature, component, manifest.as_bytes())
                .map_err(refused)?;
            Ok(Some(by))
        }
        None if registry.allows_unsigned() => {
            tracing::warn!(
                digest = %crate::signing::digest(component),
                "INSECURE: accepting an UNSIGNED playbook upload (allow_unsigned_playbooks)"
            );
            Ok(None)
        }
        None => Err(refused(SignatureError::Unsigned)),
    }
}

/// Clustered: shares `change`, just made to playbook `name`, with the other replicas. The change
/// stands here either way; when it cannot be shared, the caller is told to make it again.
async fn share(
    shared: Option<&SharedPlaybooks>,
    name: &str,
    change: Change<'_>,
) -> Result<(), ApiError> {
    let Some(shared) = shared else {
        return Ok(());
    };
    shared
        .publish(name, change)
        .await
        .map_err(|e| shared_error(&e))
}

fn shared_error(e: &ShareError) -> ApiError {
    match e {
        ShareError::Conflict { .. } => ApiError::conflict(e.to_string()),
        e => ApiError::unavailable(format!(
            "not shared with the cluster's other replicas: {e}; do it again once the cluster is ready (what was done on this replica stands)"
        )),
    }
}

/// `POST /v1/playbooks`: the upload, audited with its caller whatever the outcome.
async fn upload(
    State(registry): State<Arc<Registry>>,
    State(shared): State<Option<Arc<SharedPlaybooks>>>,
    State(limits): State<BodyLimits>,
    State(audit): State<Audit>,
    caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let mut asked = json!({});
    let mut result = receive(&registry, shared.as_deref(), limits, multipart, &mut asked).await;
    if result.is_ok()
        && let (Some(name), Some(version)) = (asked["playbook"].as_str(), asked["version"].as_str())
        && let Err(e) = share(shared.as_deref(), name, Change::Uploaded(version)).await
    {
        result = Err(e);
    }
    let answer = result.as_ref().map(|(_, body)| body);
    audit
        .record(&caller, AuditAction::PlaybooksUpload, asked, &answer)
        .await;
    result.map(|(status, body)| (status, Json(body)))
}

/// Reads the `manifest` part chunk by chunk, refusing it (`413`) as soon as it passes
/// [`MAX_MANIFEST_BYTES`](grace_engine::manifest::MAX_MANIFEST_BYTES), before it is read whole.
async fn read_manifest(
    limits: BodyLimits,
    mut field: axum::extract::multipart::Field<'_>,
) -> Result<String, ApiError> {
    use grace_engine::manifest::MAX_MANIFEST_BYTES;
    let mut bytes = Vec::new();
    loop {
        let chunk = field.chunk().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(format!(
                    "the upload is larger than the server's limit of {} bytes",
                    limits.max_upload_bytes
                ))
            } else {
                ApiError::body(format!("malformed multipart body: {}", e.body_text()))
            }
        })?;
        let Some(chunk) = chunk else { break };
        if bytes.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(ApiError::too_large_field(
                "manifest",
                format!("`manifest`: is larger than the limit of {MAX_MANIFEST_BYTES} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes)
        .map_err(|_| ApiError::field("manifest", "the manifest is not UTF-8 text"))
}

/// Reads, checks and stores an upload; notes in `asked` what was asked for.
async fn receive(
    registry: &Registry,
    shared: Option<&SharedPlaybooks>,
    limits: BodyLimits,
    multipart: Result<Multipart, MultipartRejection>,
    asked: &mut serde_json::Value,
) -> Result<(StatusCode, serde_json::Value), ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::media_type(format!(
            "upload a `multipart/form-data` body with the parts `manifest` and `component` ({})",
            e.body_text()
        ))
    })?;
    let mut manifest = None;
    let mut component = None;
    let mut signature = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::too_large(format!(
                    "the upload is larger than the server's limit of {} bytes",
                    limits.max_upload_bytes
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
        if name == "manifest" {
            manifest = Some(read_manifest(limits, field).await?);
            continue;
        }
        let bytes = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(format!(
                    "the upload is larger than the server's limit of {} bytes",
                    limits.max_upload_bytes
                ))
            } else {
                ApiError::body(format!("malformed multipart body: {}", e.body_text()))
            }
        })?;
        match name.as_str() {
            "component" => component = Some(bytes.to_vec()),
            "signature" => {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| ApiError::field("signature", "the signature is not UTF-8 text"))?;
                signature = Some(text);
            }
            other => {
                return Err(ApiError::field(
                    other,
                    format!(
                        "unknown part `{other}`: expected `manifest`, `component` and `signature`"
                    ),
                ));
            }
        }
    }
    let manifest =
        manifest.ok_or_else(|| ApiError::field("manifest", "the `manifest` part is missing"))?;
    let component =
        component.ok_or_else(|| ApiError::field("component", "the `component` part is missing"))?;
    asked["digest"] = json!(crate::signing::digest(&component));
    if let Ok(m) = grace_engine::Manifest::parse(&manifest) {
        asked["playbook"] = json!(m.name);
        asked["version"] = json!(m.version);
    }
    let signed_by = check_signature(registry, signature.as_deref(), &component, &manifest)?;
    asked["signed_by"] = json!(signed_by);
    let signature = signature.filter(|_| signed_by.is_some());
    // Clustered: a version the cluster has with other contents is refused before anything is
    // stored here, as on one server.
    if let (Some(shared), Some(name), Some(version)) = (
        shared,
        asked["playbook"].as_str(),
        asked["version"].as_str(),
    ) {
        let digest = crate::signing::digest(&component);
        shared
            .check_upload(name, version, &digest, &manifest)
            .await
            .map_err(|e| shared_error(&e))?;
    }
    let (created, record) = registry
        .upload(manifest, component, signed_by, signature)
        .await?;
    let body =
        serde_json::to_value(summary(&record)).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        body,
    ))
}

/// `GET /v1/playbooks`.
async fn list(State(registry): State<Arc<Registry>>) -> Result<Json<Vec<Summary>>, ApiError> {
    Ok(Json(registry.playbooks()?.iter().map(summary).collect()))
}

/// `GET /v1/playbooks/{name}`.
async fn show(
    State(registry): State<Arc<Registry>>,
    Path(name): Path<String>,
) -> Result<Json<Detail>, ApiError> {
    let record = registry.playbook(&name)?;
    Ok(Json(Detail {
        summary: summary(&record),
        versions: record.versions,
    }))
}

/// `POST /v1/playbooks/{name}/enable`.
async fn enable(
    State(registry): State<Arc<Registry>>,
    State(shared): State<Option<Arc<SharedPlaybooks>>>,
    State(audit): State<Audit>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Summary>, ApiError> {
    set_enabled(&registry, shared.as_deref(), &audit, &caller, name, true).await
}

/// `POST /v1/playbooks/{name}/disable`.
async fn disable(
    State(registry): State<Arc<Registry>>,
    State(shared): State<Option<Arc<SharedPlaybooks>>>,
    State(audit): State<Audit>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Summary>, ApiError> {
    set_enabled(&registry, shared.as_deref(), &audit, &caller, name, false).await
}

pub(crate) async fn set_enabled(
    registry: &Registry,
    shared: Option<&SharedPlaybooks>,
    audit: &Audit,
    caller: &Caller,
    name: String,
    enabled: bool,
) -> Result<Json<Summary>, ApiError> {
    let mut result = registry
        .set_enabled(&name, enabled)
        .await
        .map(|r| summary(&r))
        .map_err(ApiError::from);
    if result.is_ok()
        && let Err(e) = share(shared, &name, Change::Enabled(enabled)).await
    {
        result = Err(e);
    }
    let function = if enabled {
        AuditAction::PlaybooksEnable
    } else {
        AuditAction::PlaybooksDisable
    };
    audit
        .record(caller, function, json!({ "playbook": name }), &result)
        .await;
    result.map(Json)
}

/// `DELETE /v1/playbooks/{name}`.
async fn delete(
    State(registry): State<Arc<Registry>>,
    State(shared): State<Option<Arc<SharedPlaybooks>>>,
    State(audit): State<Audit>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut result = registry.delete(&name).await.map_err(ApiError::from);
    if result.is_ok()
        && let Err(e) = share(shared.as_deref(), &name, Change::Deleted).await
    {
        result = Err(e);
    }
    audit
        .record(
            &caller,
            AuditAction::PlaybooksDelete,
            json!({ "playbook": name }),
            &result,
        )
        .await;
    result.map(|()| StatusCode::NO_CONTENT)
}

/// `GET /v1/playbooks/{name}/versions/{version}/component`.
async fn component(
    State(registry): State<Arc<Registry>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let record = registry.playbook(&name)?;
    let v = record
        .versions
        .iter()
        .find(|v| v.version == version)
        .ok_or_else(|| ApiError::not_found(format!("`{name}` has no version `{version}`")))?;
    let bytes = registry.component(&v.digest)?;
    Ok(([(header::CONTENT_TYPE, "application/wasm")], bytes))
}
