//! The one table saying what each route of the API needs: public, or a scope.
//!
//! The middleware ([`super::require`]) looks every matched request up here by its method and its
//! route pattern (as the router spells it, `/v1/runs/{id}/cancel`). A route missing from the
//! table is refused with `403 route_without_scope`, whoever asks: adding a route means adding a
//! line here, and `every_route_of_the_router_has_an_entry` (in `api`'s tests) fails until then.
//!
//! `HEAD` is looked up as `GET`. Entries for routes that do not exist (yet) are harmless.

use axum::http::Method;

use super::Scope;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token: liveness, and the dashboard's sign-in and static files.
    Public,
    /// A token with this scope (or `admin`).
    Scope(Scope),
}

use Access::{Public, Scope as Needs};
use Scope::{Admin, Approve, Operate, Read};

/// `(method, route pattern, access)`, grouped by resource.
pub const ROUTES: &[(&str, &str, Access)] = &[
    // Liveness probes carry no credentials.
    ("GET", "/healthz", Public),
    // Readiness for load balancers: no credentials either.
    ("GET", "/readyz", Public),
    // Prometheus sends the token of a `read` scope (`authorization.credentials_file`).
    ("GET", "/metrics", Needs(Read)),
    ("GET", "/v1/openapi.json", Needs(Read)),
    ("GET", "/v1/fleet", Needs(Read)),
    ("GET", "/v1/graph", Needs(Read)),
    ("GET", "/v1/incidents", Needs(Read)),
    ("GET", "/v1/incidents/{id}", Needs(Read)),
    ("GET", "/v1/incidents/{id}/causes", Needs(Read)),
    ("GET", "/v1/outcomes", Needs(Read)),
    ("GET", "/v1/pauses", Needs(Read)),
    ("POST", "/v1/pauses/resume", Needs(Operate)),
    ("GET", "/v1/graph/nodes/{*id}", Needs(Read)),
    // As the OpenAPI document spells the route above (its id holds `/`).
    ("GET", "/v1/graph/nodes/{id}", Needs(Read)),
    ("GET", "/v1/cluster", Needs(Read)),
    // Every replica's ledger, read through this one: what `/v1/ledger` shows of its own.
    ("GET", "/v1/cluster/ledgers", Needs(Read)),
    (
        "GET",
        "/v1/cluster/ledgers/{replica}/tree-head",
        Needs(Read),
    ),
    (
        "GET",
        "/v1/cluster/ledgers/{replica}/checkpoint",
        Needs(Read),
    ),
    ("GET", "/v1/cluster/ledgers/{replica}/entries", Needs(Read)),
    (
        "GET",
        "/v1/cluster/ledgers/{replica}/consistency",
        Needs(Read),
    ),
    // Playbooks.
    ("GET", "/v1/playbooks", Needs(Read)),
    ("POST", "/v1/playbooks", Needs(Operate)),
    ("GET", "/v1/playbooks/{name}", Needs(Read)),
    ("DELETE", "/v1/playbooks/{name}", Needs(Operate)),
    ("POST", "/v1/playbooks/{name}/enable", Needs(Operate)),
    ("POST", "/v1/playbooks/{name}/disable", Needs(Operate)),
    (
        "GET",
        "/v1/playbooks/{name}/versions/{version}/component",
        Needs(Read),
    ),
    // Events and the push sources.
    ("GET", "/v1/events", Needs(Read)),
    ("POST", "/v1/events", Needs(Operate)),
    ("GET", "/v1/sources", Needs(Read)),
    ("GET", "/v1/sources/{name}", Needs(Read)),
    // The push routes' paths answer `GET` as `/v1/sources/{name}` does (`api::sources`).
    ("GET", "/v1/sources/alertmanager", Needs(Read)),
    ("GET", "/v1/sources/metrics", Needs(Read)),
    ("POST", "/v1/sources/alertmanager", Needs(Operate)),
    ("POST", "/v1/sources/metrics", Needs(Operate)),
    // Signed by the vendor (checked by the handler), not by a token: see `crate::notify`.
    ("GET", "/v1/sources/github", Needs(Read)),
    ("GET", "/v1/sources/pagerduty", Needs(Read)),
    ("POST", "/v1/sources/github", Public),
    ("POST", "/v1/sources/pagerduty", Public),
    ("POST", "/v1/integrations/slack/interactions", Public),
    ("GET", "/v1/notifications", Needs(Read)),
    ("GET", "/v1/notifications/{id}", Needs(Read)),
    // Runs.
    ("GET", "/v1/runs", Needs(Read)),
    ("GET", "/v1/runs/{id}", Needs(Read)),
    ("POST", "/v1/runs/{id}/cancel", Needs(Operate)),
    ("POST", "/v1/runs/{id}/resume", Needs(Operate)),
    // The ledger.
    ("GET", "/v1/ledger/entries", Needs(Read)),
    ("GET", "/v1/ledger/head", Needs(Read)),
    ("GET", "/v1/ledger/verify", Needs(Read)),
    ("GET", "/v1/ledger/checkpoint", Needs(Read)),
    ("GET", "/v1/ledger/proof/{seq}", Needs(Read)),
    ("GET", "/v1/ledger/tree-head", Needs(Read)),
    ("GET", "/v1/ledger/consistency", Needs(Read)),
    // Approvals: deciding is its own scope, so that approvers need not be operators.
    ("GET", "/v1/approvals", Needs(Read)),
    ("GET", "/v1/approvals/{id}", Needs(Read)),
    ("POST", "/v1/approvals/{id}/approve", Needs(Approve)),
    ("POST", "/v1/approvals/{id}/deny", Needs(Approve)),
    // Policies decide what playbooks may do: reading them is `read`, changing them `admin`.
    ("GET", "/v1/policies", Needs(Read)),
    ("GET", "/v1/policies/{name}", Needs(Read)),
    ("POST", "/v1/policies", Needs(Admin)),
    ("PUT", "/v1/policies", Needs(Admin)),
    ("PUT", "/v1/policies/{name}", Needs(Admin)),
    ("DELETE", "/v1/policies/{name}", Needs(Admin)),
    // Tokens, even listing them: names and scopes say who can do what.
    ("GET", "/v1/tokens", Needs(Admin)),
    ("POST", "/v1/tokens", Needs(Admin)),
    ("DELETE", "/v1/tokens/{id}", Needs(Admin)),
    // Principals: making one makes a person who may approve.
    ("GET", "/v1/principals", Needs(Admin)),
    ("POST", "/v1/principals", Needs(Admin)),
    // The dashboard (`crate::dashboard`): the same scopes, presented by the sign-in cookie.
    // Signing in and out, and the pages' own scripts and styles, need no token.
    ("GET", "/login", Public),
    ("POST", "/login", Public),
    ("POST", "/logout", Public),
    ("GET", "/assets/{name}", Public),
    ("GET", "/", Needs(Read)),
    ("GET", "/ui/stream", Needs(Read)),
    ("GET", "/runs", Needs(Read)),
    ("GET", "/runs/{id}", Needs(Read)),
    ("GET", "/approvals", Needs(Read)),
    ("POST", "/approvals/{id}/approve", Needs(Approve)),
    ("POST", "/approvals/{id}/deny", Needs(Approve)),
    ("GET", "/playbooks", Needs(Read)),
    ("POST", "/playbooks/{name}/enable", Needs(Operate)),
    ("POST", "/playbooks/{name}/disable", Needs(Operate)),
    ("GET", "/charts", Needs(Read)),
    ("GET", "/charts/data", Needs(Read)),
    ("GET", "/charts/series", Needs(Read)),
    ("GET", "/graph", Needs(Read)),
    ("GET", "/ledger/verify", Needs(Read)),
];

/// What `method` on the route `pattern` needs; `None` when the table has no entry (refuse).
pub fn required(method: &Method, pattern: &str) -> Option<Access> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && *p == pattern)
        .map(|(_, _, access)| *access)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_need_read_and_changes_need_more() {
        assert_eq!(
            required(&Method::GET, "/v1/runs"),
            Some(Access::Scope(Read))
        );
        assert_eq!(
            required(&Method::HEAD, "/v1/runs"),
            Some(Access::Scope(Read))
        );
        assert_eq!(
            required(&Method::POST, "/v1/playbooks"),
            Some(Access::Scope(Operate))
        );
        assert_eq!(
            required(&Method::POST, "/v1/approvals/{id}/approve"),
            Some(Access::Scope(Approve))
        );
        assert_eq!(
            required(&Method::GET, "/v1/tokens"),
            Some(Access::Scope(Admin))
        );
        assert_eq!(required(&Method::GET, "/healthz"), Some(Access::Public));
    }

    #[test]
    fn a_route_without_an_entry_has_no_access() {
        assert_eq!(required(&Method::POST, "/v1/runs"), None);
        assert_eq!(required(&Method::GET, "/v1/secrets"), None);
    }

    #[test]
    fn every_entry_is_listed_once() {
        for (i, (m, p, _)) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[i + 1..].iter().any(|(m2, p2, _)| m == m2 && p == p2),
                "{m} {p} is listed twice"
            );
        }
    }
}
