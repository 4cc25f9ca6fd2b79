//! Jira Cloud's REST API v3 as a test server: issues, comments, transitions, and the JQL search
//! GRACE finds its issues with.
//!
//! Checked as Atlassian documents it (developer.atlassian.com, "The Jira Cloud platform REST
//! API", "Basic auth for REST APIs", "Rate limiting"; the v3 OpenAPI document):
//! - `Authorization: Basic base64(email:api token)` → else `401` with a plain-text body;
//! - `Accept: application/json`; bodies `Content-Type: application/json`;
//! - `POST /rest/api/3/issue`: `fields.project.key` of a project → else `400 {"errors":
//!   {"project": "valid project is required"}}`; `fields.issuetype.name` of one of its types;
//!   `fields.summary` one line of 1 to 254 characters; `fields.description` an Atlassian
//!   Document Format document (`doc`, version 1, no empty text node); labels without spaces;
//!   answers `201 {"id","key","self"}`;
//! - `POST …/issue/{key}/comment` with an ADF `body` → `201`; an unknown issue → `404`;
//! - `GET …/issue/{key}/transitions` → the transitions from its status; `POST` with
//!   `{"transition":{"id"}}` → `204`, or `400` for a transition not available from its status;
//! - `GET /rest/api/3/search/jql?jql=project = KEY AND labels = "label" ORDER BY created DESC`;
//! - a rate limit is `429` with `Retry-After` and `X-RateLimit-Reset`.
//!
//! The workflow is Jira's default: To Do → In Progress → Done.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::{Fault, Faults, lock};

/// An issue as Jira keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// `OPS-1`.
    pub key: String,
    /// Its summary.
    pub summary: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// Its status's name.
    pub status: String,
    /// Its description (ADF).
    pub description: Value,
    /// Its comments (ADF).
    pub comments: Vec<Value>,
}

#[derive(Default)]
struct World {
    issues: Vec<Issue>,
}

/// The server.
#[derive(Clone)]
pub struct JiraServer {
    addr: SocketAddr,
    auth: String,
    project: String,
    world: Arc<Mutex<World>>,
    /// Faults and the request log.
    pub faults: Faults,
}

/// `(id, name, from, to)`: Jira's default workflow.
const TRANSITIONS: [(&str, &str, &str, &str); 5] = [
    ("11", "Start Progress", "To Do", "In Progress"),
    ("21", "Stop Progress", "In Progress", "To Do"),
    ("31", "Done", "To Do", "Done"),
    ("32", "Done", "In Progress", "Done"),
    ("41", "Reopen", "Done", "To Do"),
];

impl JiraServer {
    /// Starts it on its own runtime, for `email` with `token`, holding project `project`
    /// (issue types `Task` and `Incident`).
    pub fn start(email: &str, token: &str, project: &str) -> JiraServer {
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{email}:{token}"))
        );
        let project = project.to_owned();
        crate::on_own_runtime(move || {
            Box::pin(async move {
                let mut server = JiraServer {
                    addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                    auth,
                    project,
                    world: Arc::new(Mutex::new(World::default())),
                    faults: Faults::default(),
                };
                let router = Router::new()
                    .route("/rest/api/3/issue", post(create))
                    .route("/rest/api/3/search/jql", get(search))
                    .route("/rest/api/3/issue/{key}", get(issue))
                    .route("/rest/api/3/issue/{key}/comment", post(comment))
                    .route(
                        "/rest/api/3/issue/{key}/transitions",
                        get(transitions).post(transition),
                    )
                    .with_state(server.clone());
                server.addr = crate::serve(router).await;
                server
            })
        })
    }

    /// The site's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every issue.
    pub fn issues(&self) -> Vec<Issue> {
        lock(&self.world).issues.clone()
    }

    /// Checks what every request shares: a fault, authentication, `Accept`, the content type
    /// of a body. `Err` is the answer.
    fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        has_body: bool,
    ) -> Result<(), Box<Response>> {
        let refuse = |r: Response| {
            self.faults
                .received(method.as_str(), path, r.status().as_u16());
            Err(Box::new(r))
        };
        match self.faults.next() {
            Some(Fault::RateLimited(after)) => {
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(json!({ "errorMessages": ["Rate limit exceeded."], "errors": {} })),
                )
                    .into_response();
                let after = after.unwrap_or(1);
                if let Ok(v) = after.to_string().parse() {
                    r.headers_mut().insert("retry-after", v);
                }
                if let Ok(v) = "jira-burst-based".parse() {
                    r.headers_mut().insert("ratelimit-reason", v);
                }
                return refuse(r);
            }
            Some(Fault::Status(s)) => {
                return refuse(
                    StatusCode::from_u16(s)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                        .into_response(),
                );
            }
            Some(Fault::Delay(_)) | None => {}
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        if header("authorization") != self.auth {
            self.faults
                .violation(format!("{method} {path}: bad or missing credentials"));
            return refuse(
                (
                    StatusCode::UNAUTHORIZED,
                    [("content-type", "text/plain;charset=UTF-8")],
                    "Client must be authenticated to access this resource.",
                )
                    .into_response(),
            );
        }
        if !header("accept").contains("application/json") {
            self.faults
                .violation(format!("{method} {path}: no `Accept: application/json`"));
        }
        if has_body && !header("content-type").starts_with("application/json") {
            self.faults.violation(format!(
                "{method} {path}: content type `{}`",
                header("content-type")
            ));
            return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response());
        }
        Ok(())
    }

    fn answer(&self, method: &str, path: &str, r: Response) -> Response {
        self.faults.received(method, path, r.status().as_u16());
        r
    }
}

fn errors(field_errors: Value, messages: &[&str]) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "errorMessages": messages, "errors": field_errors })),
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "errorMessages": ["Issue does not exist or you do not have permission to see it."],
            "errors": {}
        })),
    )
        .into_response()
}

/// An ADF document as Jira takes it: `doc`, version 1, block nodes holding non-empty text.
pub fn check_adf(doc: &Value) -> Result<(), String> {
    if doc["type"] != "doc" || doc["version"] != 1 {
        return Err("not an ADF doc of version 1".to_owned());
    }
    let content = doc["content"].as_array().ok_or("no content")?;
    for block in content {
        let kind = block["type"].as_str().unwrap_or("");
        if ![
            "paragraph",
            "heading",
            "codeBlock",
            "bulletList",
            "blockquote",
            "rule",
        ]
        .contains(&kind)
        {
            return Err(format!("block node `{kind}`"));
        }
        for inline in block["content"].as_array().into_iter().flatten() {
            if inline["type"] == "text" && inline["text"].as_str().is_none_or(str::is_empty) {
                return Err("an empty text node".to_owned());
            }
            for mark in inline["marks"].as_array().into_iter().flatten() {
                if mark["type"] == "link"
                    && mark["attrs"]["href"].as_str().is_none_or(str::is_empty)
                {
                    return Err("a link mark without href".to_owned());
                }
            }
        }
    }
    Ok(())
}

async fn create(State(s): State<JiraServer>, headers: HeaderMap, body: Bytes) -> Response {
    let path = "/rest/api/3/issue";
    if let Err(r) = s.check(&Method::POST, path, &headers, true) {
        return *r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        s.faults.violation("create: body not JSON");
        return s.answer(
            "POST",
            path,
            errors(json!({}), &["Unexpected character in the body."]),
        );
    };
    let f = &body["fields"];
    let mut field_errors = serde_json::Map::new();
    if f["project"]["key"].as_str() != Some(s.project.as_str()) {
        field_errors.insert("project".into(), json!("valid project is required"));
    }
    if !["Task", "Incident"].contains(&f["issuetype"]["name"].as_str().unwrap_or("")) {
        field_errors.insert(
            "issuetype".into(),
            json!("The issue type selected is invalid."),
        );
    }
    let summary = f["summary"].as_str().unwrap_or("");
    if summary.trim().is_empty() {
        field_errors.insert(
            "summary".into(),
            json!("You must specify a summary of the issue."),
        );
    } else if summary.chars().count() > 254 {
        field_errors.insert(
            "summary".into(),
            json!("Summary must be less than 255 characters."),
        );
    } else if summary.contains(['\n', '\r']) {
        field_errors.insert(
            "summary".into(),
            json!("The summary is invalid because it contains newline characters."),
        );
    }
    if let Err(why) = check_adf(&f["description"]) {
        field_errors.insert("description".into(), json!(format!("Operation value must be an Atlassian Document (see the Atlassian Document Format): {why}")));
    }
    let labels: Vec<String> = f["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_owned))
        .collect();
    if labels
        .iter()
        .any(|l| l.contains(char::is_whitespace) || l.is_empty())
    {
        field_errors.insert("labels".into(), json!("The label can't contain spaces."));
    }
    if !field_errors.is_empty() {
        s.faults
            .violation(format!("create: {}", Value::Object(field_errors.clone())));
        return s.answer("POST", path, errors(Value::Object(field_errors), &[]));
    }
    let mut world = lock(&s.world);
    let key = format!("{}-{}", s.project, world.issues.len() + 1);
    world.issues.push(Issue {
        key: key.clone(),
        summary: summary.to_owned(),
        labels,
        status: "To Do".to_owned(),
        description: f["description"].clone(),
        comments: Vec::new(),
    });
    let id = 10_000 + world.issues.len();
    s.answer(
        "POST",
        path,
        (
            StatusCode::CREATED,
            axum::Json(json!({ "id": id.to_string(), "key": key, "self": format!("{}/rest/api/3/issue/{id}", s.url()) })),
        )
            .into_response(),
    )
}

async fn search(
    State(s): State<JiraServer>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let path = "/rest/api/3/search/jql";
    if let Err(r) = s.check(&Method::GET, path, &headers, false) {
        return *r;
    }
    let jql = q.get("jql").map(String::as_str).unwrap_or("");
    // The one query GRACE sends: `project = KEY AND labels = "label" ORDER BY created DESC`.
    let parsed = jql
        .strip_prefix("project = ")
        .and_then(|rest| rest.split_once(" AND labels = \""))
        .and_then(|(project, rest)| {
            rest.strip_suffix("\" ORDER BY created DESC")
                .map(|label| (project, label))
        });
    let Some((project, label)) = parsed.filter(|(_, l)| !l.contains('"')) else {
        s.faults
            .violation(format!("search: unexpected JQL `{jql}`"));
        return s.answer("GET", path, errors(json!({}), &["Error in the JQL Query."]));
    };
    let world = lock(&s.world);
    let found: Vec<Value> = world
        .issues
        .iter()
        .rev()
        .filter(|i| {
            i.key.starts_with(&format!("{project}-")) && i.labels.iter().any(|l| l == label)
        })
        .take(
            q.get("maxResults")
                .and_then(|m| m.parse().ok())
                .unwrap_or(50),
        )
        .map(|i| json!({ "id": "10001", "key": i.key }))
        .collect();
    s.answer(
        "GET",
        path,
        axum::Json(json!({ "issues": found, "isLast": true })).into_response(),
    )
}

async fn issue(
    State(s): State<JiraServer>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    let path = format!("/rest/api/3/issue/{key}");
    if let Err(r) = s.check(&Method::GET, &path, &headers, false) {
        return *r;
    }
    let world = lock(&s.world);
    let r = match world.issues.iter().find(|i| i.key == key) {
        Some(i) => {
            axum::Json(json!({ "key": i.key, "fields": { "status": { "name": i.status } } }))
                .into_response()
        }
        None => not_found(),
    };
    s.answer("GET", &path, r)
}

async fn comment(
    State(s): State<JiraServer>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/rest/api/3/issue/{key}/comment");
    if let Err(r) = s.check(&Method::POST, &path, &headers, true) {
        return *r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Err(why) = check_adf(&body["body"]) {
        s.faults.violation(format!("comment: {why}"));
        return s.answer(
            "POST",
            &path,
            errors(json!({ "comment": "Comment body can not be empty!" }), &[]),
        );
    }
    let mut world = lock(&s.world);
    let r = match world.issues.iter_mut().find(|i| i.key == key) {
        Some(i) => {
            i.comments.push(body["body"].clone());
            (
                StatusCode::CREATED,
                axum::Json(
                    json!({ "id": (10_000 + i.comments.len()).to_string(), "body": body["body"] }),
                ),
            )
                .into_response()
        }
        None => not_found(),
    };
    s.answer("POST", &path, r)
}

async fn transitions(
    State(s): State<JiraServer>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    let path = format!("/rest/api/3/issue/{key}/transitions");
    if let Err(r) = s.check(&Method::GET, &path, &headers, false) {
        return *r;
    }
    let world = lock(&s.world);
    let r = match world.issues.iter().find(|i| i.key == key) {
        Some(i) => {
            let list: Vec<Value> = TRANSITIONS
                .iter()
                .filter(|(_, _, from, _)| *from == i.status)
                .map(|(id, name, _, to)| json!({ "id": id, "name": name, "hasScreen": false, "isAvailable": true, "to": { "name": to, "id": "1" } }))
                .collect();
            axum::Json(json!({ "expand": "transitions", "transitions": list })).into_response()
        }
        None => not_found(),
    };
    s.answer("GET", &path, r)
}

async fn transition(
    State(s): State<JiraServer>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/rest/api/3/issue/{key}/transitions");
    if let Err(r) = s.check(&Method::POST, &path, &headers, true) {
        return *r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = body["transition"]["id"].as_str().unwrap_or("");
    let mut world = lock(&s.world);
    let Some(issue) = world.issues.iter_mut().find(|i| i.key == key) else {
        return s.answer("POST", &path, not_found());
    };
    let Some((_, _, _, to)) = TRANSITIONS
        .iter()
        .find(|(tid, _, from, _)| *tid == id && *from == issue.status)
    else {
        s.faults.violation(format!(
            "transition {id} not available from {}",
            issue.status
        ));
        return s.answer(
            "POST",
            &path,
            errors(json!({}), &["Transition id is not valid for this issue."]),
        );
    };
    issue.status = (*to).to_owned();
    s.answer("POST", &path, StatusCode::NO_CONTENT.into_response())
}
