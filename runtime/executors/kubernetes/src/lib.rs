//! GRACE's `kubernetes` capability on a cluster's API server, through kube.
//!
//! [`Kube`] implements [`grace_executor::KubernetesExecutor`] on `apps/v1` Deployments:
//!
//! - `get_deployment` reads the deployment (absent status counts are 0, as the API omits zeros);
//! - `scale_deployment` goes through the `scale` subresource like `kubectl scale`: it reads the
//!   scale, writes it back with the new count and the `resourceVersion` it read, and on
//!   `409 Conflict` reads again, up to `conflict_retries` times, then fails with
//!   [`ExecError::Conflict`](grace_executor::ExecError::Conflict);
//! - `rollout_restart` is `kubectl rollout restart`: a strategic merge patch setting the pod
//!   template annotation `kubectl.kubernetes.io/restartedAt`;
//! - `wait_for_rollout` reads every `poll_interval` until the rollout is complete by the rule of
//!   `kubectl rollout status`, or fails with `TimedOut` naming ready and desired replicas.
//!
//! Every API request is bounded by `call_timeout`, and failures map to
//! [`ExecError`](grace_executor::ExecError) by what they mean, each message naming the operation
//! and the deployment:
//!
//! | the API server answered, or the request met | `ExecError` |
//! | --- | --- |
//! | `404` | `NotFound` |
//! | `409` (still, after the retries of a scale) | `Conflict` |
//! | `400`, `422` | `InvalidArgument` |
//! | `504`, a `Timeout` status, no answer within `call_timeout` | `TimedOut` |
//! | `429`, other `5xx`, no connection, credentials that cannot be obtained | `Unavailable` |
//! | `401`, `403` (the message lists the RBAC needed), an answer that is not the API's | `Other` |
//!
//! kube's own retrying of `429`/`503` is turned off: GRACE's engine retries transient errors
//! itself, with its budget and a ledger record for each attempt.
//!
//! # Configuring a real cluster
//!
//! In `grace.toml` (every key optional, see [`KubeSettings`]):
//!
//! ```toml
//! [kubernetes]
//! kubeconfig = "/etc/grace/kubeconfig"
//! context = "prod-eu"
//! call_timeout = "10s"
//! poll_interval = "1s"
//! conflict_retries = 5
//! ```
//!
//! Without `kubeconfig`, [`Kube::connect`] does what kubectl does: `KUBECONFIG`, then
//! `~/.kube/config`, and, when neither exists, the in-cluster configuration of a pod (its service
//! account token and CA under `/var/run/secrets/kubernetes.io/serviceaccount`, and
//! `KUBERNETES_SERVICE_HOST`/`PORT`). `context` picks a kubeconfig context other than the current
//! one. Whatever the credentials (client certificates, tokens, exec plugins), they are the
//! kubeconfig's, handled by kube.
//!
//! The identity GRACE acts as needs, in each namespace its playbooks may touch, this much RBAC
//! and no more:
//!
//! ```yaml
//! apiVersion: rbac.authorization.k8s.io/v1
//! kind: Role
//! metadata: {name: grace, namespace: shop}
//! rules:
//!   - apiGroups: ["apps"]
//!     resources: ["deployments"]
//!     verbs: ["get", "list", "watch", "patch"]
//!   - apiGroups: ["apps"]
//!     resources: ["deployments/scale"]
//!     verbs: ["get", "update", "patch"]
//! ---
//! apiVersion: rbac.authorization.k8s.io/v1
//! kind: RoleBinding
//! metadata: {name: grace, namespace: shop}
//! roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: grace}
//! subjects:
//!   - {kind: ServiceAccount, name: grace, namespace: grace-system}
//! ```
//!
//! (A `ClusterRole` with a `ClusterRoleBinding` grants the same in every namespace.) A request
//! RBAC refuses fails with `Other`, naming these permissions.
//!
//! # Tests
//!
//! The tests run against `grace-kube-testserver` (tests/kube-apiserver), an in-process API server
//! that speaks the real `apps/v1` JSON, with kube unmodified; the same code runs against a real
//! cluster.

mod client;
mod convert;
pub mod discover;
mod errors;
mod executor;
mod settings;

pub use client::Kube;
pub use errors::ConnectError;
pub use executor::RESTARTED_AT;
pub use settings::{
    DEFAULT_CALL_TIMEOUT, DEFAULT_CONFLICT_RETRIES, DEFAULT_POLL_INTERVAL, KubeSettings,
};
