//! `/v1/pauses`: the playbooks the meta-loop paused for a resource (see [`crate::meta`]);
//! `POST /v1/pauses/resume`: a person resumes one (audited, so recorded in the ledger).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::app::App;
use crate::auth::Caller;
use crate::auth::audit::{Audit, AuditAction};
use crate::error::ApiError;
use crate::meta::{Meta, Pause};

/// The longest playbook name or resource a resume names (longer ones name nothing paused).
const MAX_NAME: usize = 1024;

/// The routes.
pub fn router() -> Router<App> {
    Router::new()
        .route("/", get(list))
        .route("/resume", post(resume))
}

async fn list(State(meta): State<Arc<Meta>>) -> Json<Vec<Pause>> {
    Json(meta.pauses())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResumeBody {
    playbook: String,
    resource: String,
}

/// `POST /v1/pauses/resume` with `{"playbook", "resource"}`: the pause lifted.
async fn resume(
    State(audit): State<Audit>,
    State(meta): State<Arc<Meta>>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Pause>, ApiError> {
    let parsed = checked(&body);
    // What the ledger records of the request: the names once checked, never the raw body.
    let args = match &parsed {
        Ok(b) => serde_json::json!({ "playbook": b.playbook, "resource": b.resource }),
        Err(_) => serde_json::json!({ "invalid": true }),
    };
    let result = parsed.and_then(|b| {
        meta.resume(&b.playbook, &b.resource)?.ok_or_else(|| {
            ApiError::not_found(format!(
                "playbook `{}` is not paused for `{}`",
                b.playbook, b.resource
            ))
        })
    });
    audit
        .record(&caller, AuditAction::PausesResume, args, &result)
        .await;
    result.map(Json)
}

fn checked(body: &[u8]) -> Result<ResumeBody, ApiError> {
    let b: ResumeBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::body(format!(
            "not a resume ({{\"playbook\": \"...\", \"resource\": \"...\"}}): {e}"
        ))
    })?;
    for (field, v) in [("playbook", &b.playbook), ("resource", &b.resource)] {
        if v.is_empty() || v.len() > MAX_NAME {
            return Err(ApiError::field(
                field,
                format!("`{field}` must be 1 to {MAX_NAME} bytes"),
            ));
        }
    }
    Ok(b)
}
