//! The Jira Cloud client (see the module above).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use super::VENDOR;
use crate::http::Http;
use crate::text::{cut, printable};
use crate::{DeliveryError, Secret};

/// A summary's limit (Jira: "less than 255 characters").
pub const MAX_SUMMARY: usize = 254;
/// The most characters of a comment or description GRACE writes.
pub const MAX_TEXT: usize = 30_000;

/// How GRACE signs in to Jira.
#[derive(Debug, Clone)]
pub enum JiraAuth {
    /// An Atlassian account's email and an API token.
    Basic {
        /// The account's email.
        email: String,
        /// The API token.
        token: Secret,
    },
    /// An OAuth 2.0 (3LO) access token.
    Bearer(Secret),
}

/// An issue to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIssue {
    /// The project's key (`OPS`).
    pub project: String,
    /// The issue type's name (`Task`, `Incident`).
    pub issue_type: String,
    /// One line.
    pub summary: String,
    /// Paragraphs of the description.
    pub description: Vec<String>,
    /// A link to the run, appended to the description.
    pub link: Option<String>,
    /// Labels (no spaces), among them the one GRACE finds the issue by.
    pub labels: Vec<String>,
}

/// A Jira Cloud site or OAuth resource.
#[derive(Debug, Clone)]
pub struct JiraClient {
    http: Http,
    base: String,
    auth: JiraAuth,
}

/// Checks a project key: an uppercase letter, then uppercase letters, digits or `_`, at most 10.
pub fn validate_project_key(key: &str) -> Result<(), String> {
    let ok = (2..=10).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_uppercase())
        && key
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a Jira project key (OPS)",
            cut(&printable(key), 40)
        ))
    }
}

/// Checks an issue key (`OPS-123`), as Jira answered it and as it goes into a URL path.
pub fn validate_issue_key(key: &str) -> Result<(), String> {
    let ok = key.rsplit_once('-').is_some_and(|(project, number)| {
        validate_project_key(project).is_ok()
            && !number.is_empty()
            && number.len() <= 12
            && number.chars().all(|c| c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a Jira issue key (OPS-123)",
            cut(&printable(key), 40)
        ))
    }
}

/// Checks a label: 1 to 255 characters, no white space.
pub fn validate_label(label: &str) -> Result<(), String> {
    if label.is_empty()
        || label.chars().count() > 255
        || label
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
    {
        Err("a Jira label is 1 to 255 characters without spaces, quotes or backslashes".to_owned())
    } else {
        Ok(())
    }
}

/// Paragraphs (and a link) as an Atlassian Document Format document. Empty paragraphs are
/// left out: ADF refuses an empty text node.
pub fn adf(paragraphs: &[String], link: Option<&str>) -> Value {
    let mut budget = MAX_TEXT;
    let mut content: Vec<Value> = Vec::new();
    for p in paragraphs {
        let text = cut(&printable(p), budget.max(1));
        if text.trim().is_empty() || budget == 0 {
            continue;
        }
        budget = budget.saturating_sub(text.chars().count());
        content.push(json!({
            "type": "paragraph",
            "content": [{ "type": "text", "text": text }],
        }));
    }
    if let Some(link) = link {
        content.push(json!({
            "type": "paragraph",
            "content": [{
                "type": "text",
                "text": "The run in GRACE",
                "marks": [{ "type": "link", "attrs": { "href": link } }],
            }],
        }));
    }
    if content.is_empty() {
        content.push(json!({
            "type": "paragraph",
            "content": [{ "type": "text", "text": "(no details)" }],
        }));
    }
    json!({ "type": "doc", "version": 1, "content": content })
}

#[derive(Deserialize)]
struct Created {
    key: String,
}

#[derive(Deserialize)]
struct Found {
    #[serde(default)]
    issues: Vec<Created>,
}

#[derive(Deserialize)]
struct Transitions {
    #[serde(default)]
    transitions: Vec<Transition>,
}

#[derive(Deserialize)]
struct Transition {
    id: String,
    name: String,
    #[serde(default)]
    to: Option<Status>,
}

#[derive(Deserialize)]
struct Status {
    name: String,
}

fn rejected(message: String) -> DeliveryError {
    DeliveryError::Rejected {
        vendor: VENDOR,
        message,
    }
}

impl JiraClient {
    /// A client of the Jira at `base` (`https://<site>.atlassian.net`, or
    /// `https://api.atlassian.com/ex/jira/<cloud id>` with OAuth).
    pub fn new(http: Http, base: &str, auth: JiraAuth) -> JiraClient {
        JiraClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            auth,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .http
            .client()
            .request(method, format!("{}{path}", self.base))
            .header("accept", "application/json");
        match &self.auth {
            JiraAuth::Basic { email, token } => request.header(
                "authorization",
                format!(
                    "Basic {}",
                    STANDARD.encode(format!("{email}:{}", token.expose()))
                ),
            ),
            JiraAuth::Bearer(token) => request.bearer_auth(token.expose()),
        }
    }

    fn json_body(request: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
        request
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    /// Creates `issue`; its key.
    pub async fn create(&self, issue: &NewIssue) -> Result<String, DeliveryError> {
        validate_project_key(&issue.project).map_err(rejected)?;
        for label in &issue.labels {
            validate_label(label).map_err(rejected)?;
        }
        let summary = cut(
            &printable(&issue.summary).replace(['\n', '\r', '\t'], " "),
            MAX_SUMMARY,
        );
        let body = json!({
            "fields": {
                "project": { "key": issue.project },
                "issuetype": { "name": issue.issue_type },
                "summary": summary,
                "description": adf(&issue.description, issue.link.as_deref()),
                "labels": issue.labels,
            }
        });
        let request = Self::json_body(
            self.request(reqwest::Method::POST, "/rest/api/3/issue"),
            &body,
        );
        let created: Created = self.http.send(request).await?.json(VENDOR)?;
        validate_issue_key(&created.key).map_err(|m| DeliveryError::Transient {
            vendor: VENDOR,
            message: format!("its answer named no issue: {m}"),
        })?;
        Ok(created.key)
    }

    /// The issue of `project` carrying `label`, if there is one (the newest).
    pub async fn find_by_label(
        &self,
        project: &str,
        label: &str,
    ) -> Result<Option<String>, DeliveryError> {
        validate_project_key(project).map_err(rejected)?;
        validate_label(label).map_err(rejected)?;
        // Both are checked above: a project key and a label hold no quote or space, so the
        // query is exactly these two clauses.
        let jql = format!("project = {project} AND labels = \"{label}\" ORDER BY created DESC");
        let request = self
            .request(reqwest::Method::GET, "/rest/api/3/search/jql")
            .query(&[
                ("jql", jql.as_str()),
                ("fields", "key"),
                ("maxResults", "1"),
            ]);
        let found: Found = self.http.send(request).await?.json(VENDOR)?;
        Ok(found
            .issues
            .into_iter()
            .map(|i| i.key)
            .find(|k| validate_issue_key(k).is_ok()))
    }

    /// Adds a comment to `key`.
    pub async fn comment(
        &self,
        key: &str,
        paragraphs: &[String],
        link: Option<&str>,
    ) -> Result<(), DeliveryError> {
        validate_issue_key(key).map_err(rejected)?;
        let body = json!({ "body": adf(paragraphs, link) });
        let request = Self::json_body(
            self.request(
                reqwest::Method::POST,
                &format!("/rest/api/3/issue/{key}/comment"),
            ),
            &body,
        );
        self.http.send(request).await.map(|_| ())
    }

    /// Moves `key` through the transition named `to`, or leading to the status named `to`
    /// (case aside). `Ok(false)` when the issue is already in that status (no transition leads
    /// there, and its current one is it): resolving twice is not an error.
    pub async fn transition(&self, key: &str, to: &str) -> Result<bool, DeliveryError> {
        validate_issue_key(key).map_err(rejected)?;
        let path = format!("/rest/api/3/issue/{key}/transitions");
        let list: Transitions = self
            .http
            .send(self.request(reqwest::Method::GET, &path))
            .await?
            .json(VENDOR)?;
        let wanted = list.transitions.iter().find(|t| {
            t.name.eq_ignore_ascii_case(to)
                || t.to
                    .as_ref()
                    .is_some_and(|s| s.name.eq_ignore_ascii_case(to))
        });
        let Some(wanted) = wanted else {
            if self.status(key).await?.eq_ignore_ascii_case(to) {
                return Ok(false);
            }
            let names: Vec<String> = list
                .transitions
                .iter()
                .take(20)
                .map(|t| cut(&printable(&t.name), 60))
                .collect();
            return Err(rejected(format!(
                "{key} has no transition to `{}` (it has: {})",
                cut(&printable(to), 60),
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        };
        let body = json!({ "transition": { "id": wanted.id } });
        self.http
            .send(Self::json_body(
                self.request(reqwest::Method::POST, &path),
                &body,
            ))
            .await
            .map(|_| true)
    }

    /// The name of `key`'s status.
    async fn status(&self, key: &str) -> Result<String, DeliveryError> {
        let request = self
            .request(reqwest::Method::GET, &format!("/rest/api/3/issue/{key}"))
            .query(&[("fields", "status")]);
        let issue: Value = self.http.send(request).await?.json(VENDOR)?;
        Ok(issue
            .pointer("/fields/status/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_labels_are_checked_before_they_reach_a_path_or_a_query() {
        assert!(validate_project_key("OPS").is_ok());
        assert!(validate_project_key("OPS_2").is_ok());
        for bad in ["ops", "O", "OPS\" OR 1=1", "OPS/../x", "ABCDEFGHIJK"] {
            assert!(validate_project_key(bad).is_err(), "{bad}");
        }
        assert!(validate_issue_key("OPS-123").is_ok());
        for bad in ["OPS-", "OPS-1a", "ops-1", "OPS-1/comment", "-1"] {
            assert!(validate_issue_key(bad).is_err(), "{bad}");
        }
        assert!(validate_label("grace-incident-inc-7").is_ok());
        assert!(validate_label("two words").is_err());
        // A label goes into a JQL string: a quote or a backslash could end it.
        assert!(validate_label("a\"b").is_err());
        assert!(validate_label("a\\b").is_err());
    }

    #[test]
    fn descriptions_are_adf_without_empty_text_nodes() {
        let doc = adf(
            &["first".to_owned(), String::new(), "  ".to_owned()],
            Some("https://grace.example.com/runs/r1"),
        );
        assert_eq!(doc["type"], "doc");
        assert_eq!(doc["version"], 1);
        let content = doc["content"].as_array().map_or(0, Vec::len);
        assert_eq!(content, 2);
        assert_eq!(
            doc["content"][1]["content"][0]["marks"][0]["attrs"]["href"],
            "https://grace.example.com/runs/r1"
        );
        assert_eq!(
            adf(&[], None)["content"][0]["content"][0]["text"],
            "(no details)"
        );
    }
}
