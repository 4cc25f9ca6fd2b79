//! A small Kubernetes API server for tests: `apps/v1` Deployments with their `autoscaling/v1`
//! scale subresource, core `v1` Services and `discovery.k8s.io/v1` EndpointSlices, speaking the
//! real JSON (the objects are k8s-openapi's types), so that a real client (kube, kubectl) works
//! against it unmodified.
//!
//! What it does like the real server:
//!
//! - the paths and methods of deployments and their scale subresource, services and endpoint
//!   slices:
//!
//!   | path | methods |
//!   | --- | --- |
//!   | `/apis/apps/v1/deployments` | `GET` (list, `?watch=true`) |
//!   | `/apis/apps/v1/namespaces/{ns}/deployments` | `GET` (list, `?watch=true`), `POST` |
//!   | `/apis/apps/v1/namespaces/{ns}/deployments/{name}` | `GET`, `PUT`, `PATCH`, `DELETE` |
//!   | `/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale` | `GET`, `PUT`, `PATCH` |
//!   | `/api/v1/services` | `GET` (list) |
//!   | `/api/v1/namespaces/{ns}/services` | `GET` (list), `POST` |
//!   | `/api/v1/namespaces/{ns}/services/{name}` | `GET`, `PUT`, `DELETE` |
//!   | `/apis/discovery.k8s.io/v1/endpointslices` | `GET` (list) |
//!   | `/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices` | `GET` (list), `POST` |
//!   | `/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{name}` | `GET`, `PUT`, `DELETE` |
//!   | `/apis/apps/v1/replicasets`, `…/namespaces/{ns}/replicasets[/{name}]` | as services |
//!   | `/version` | `GET` |
//!
//!   with merge patch, JSON patch and strategic merge patch of deployments (by `name` for lists
//!   of named objects, which covers what kubectl and kube send for deployments);
//! - label (equality-based, so `kubernetes.io/service-name=web` finds a service's slices) and
//!   field (`metadata.name`, `metadata.namespace`) selectors;
//! - a global `resourceVersion` that every write of every kind takes the next value of; a write
//!   naming a stale one gets `409 Conflict` with a real `Status` object; `metadata.generation`
//!   grows when a deployment's spec (an endpoint slice's content) changes and only then;
//! - the defaults and allocations of services (a cluster IP, `targetPort`, `protocol`, ...) and
//!   `generateName` on create;
//! - `?watch=true` streams `ADDED` / `MODIFIED` / `DELETED` events, resuming from a
//!   `resourceVersion`;
//! - a controller that makes each deployment's status follow its spec one replica per
//!   [`ServerConfig::step`], rolling through a new pod template (a rollout restart) too;
//! - `404`, `400`, `409`, `415` and `422` answers with `Status` objects like the real ones.
//!
//! What it adds for tests, as a Rust API on [`TestServer`]: seeding deployments, services and
//! endpoint slices and deleting them, reading the state directly, making the next writes to a
//! deployment lose to another writer, failing or hanging requests, pausing the controller, and
//! the log of every request.
//!
//! - ReplicaSets as the deployment controller keeps them: one per pod template a deployment
//!   has had, with its revision, owner reference and `pod-template-hash` (`replica_sets`), which
//!   is what `kubectl rollout history` and `rollout undo` read;
//!
//! What it does not do: authentication, admission, pods as objects (ReplicaSets do not make
//! pods, and their status stays empty),
//! server-side apply, `dryRun`, pagination, conditions in the status, watch bookmarks (other than
//! the end of `sendInitialEvents`). Services and endpoint slices have no watch (`?watch=true` is
//! refused with `400`), no `PATCH` (`405`) and no controller: slices do not follow services or
//! pods, and a deleted service leaves its slices (no owner references, no garbage collection);
//! services get no load balancer, and dual stack is not modelled. It listens on loopback
//! addresses only. The request log keeps every request for the server's lifetime: it is meant
//! for tests, not for long runs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), grace_kube_testserver::StartError> {
//! use grace_kube_testserver::{ServerConfig, TestServer};
//! let server = TestServer::start(ServerConfig::default()).await?;
//! server.seed_rolled_out("shop", "checkout", 2);
//! server.seed_service("shop", "checkout", &[("app", "checkout")], &[8080]);
//! println!("kube clients can use {}", server.url());
//! # Ok(()) }
//! ```

mod controller;
mod endpoint_slices;
mod faults;
mod object_routes;
mod objects;
mod patch;
mod replica_sets;
mod routes;
mod selectors;
mod services;
mod status;
mod store;
mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use tokio::task::JoinHandle;

pub use endpoint_slices::{SERVICE_NAME_LABEL, SliceEndpoint, endpoint_slice};
pub use faults::{Fault, RequestRecord};
pub use services::service;
pub use status::ApiError;
pub use store::HISTORY;

use crate::faults::Hooks;
use crate::routes::App;
use crate::selectors::Filter;
use crate::store::Store;

/// How the server behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The pace of the controller: every `step`, each deployment's status moves one replica
    /// towards its spec.
    pub step: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            step: Duration::from_millis(100),
        }
    }
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The address is not a loopback address.
    #[error("the test API server listens on loopback addresses only, not `{0}`")]
    NotLoopback(SocketAddr),
    /// Binding failed.
    #[error("cannot listen on `{addr}`: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running test API server; it stops when dropped (or at [`TestServer::shutdown`]).
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    url: String,
    store: Store,
    hooks: Hooks,
    stop: tokio::sync::watch::Sender<bool>,
    serving: Option<JoinHandle<()>>,
    controller: Option<JoinHandle<()>>,
}

/// A valid deployment manifest: `replicas` pods of one container, selected by `app: <name>`.
pub fn deployment(namespace: &str, name: &str, replicas: i32) -> Deployment {
    let labels = BTreeMap::from([("app".to_owned(), name.to_owned())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".to_owned(),
                        image: Some(format!("registry.invalid/{name}:1")),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    }
}

impl TestServer {
    /// Starts a server on a free port of 127.0.0.1.
    pub async fn start(config: ServerConfig) -> Result<TestServer, StartError> {
        TestServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts a server on `addr`, which must be a loopback address.
    pub async fn bind(addr: SocketAddr, config: ServerConfig) -> Result<TestServer, StartError> {
        if !addr.ip().is_loopback() {
            return Err(StartError::NotLoopback(addr));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let store = Store::new();
        let hooks = Hooks::default();
        let app = App {
            store: store.clone(),
            hooks: hooks.clone(),
            stop: stopping.clone(),
        };
        let router = routes::router(app);
        let mut stop_serving = stopping.clone();
        let serving = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop_serving.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "the test API server stopped");
            }
        });
        let controller = tokio::spawn(controller::run(store.clone(), config.step, stopping));
        tracing::info!(%addr, step = ?config.step, "test API server listening");
        Ok(TestServer {
            addr,
            url: format!("http://{addr}"),
            store,
            hooks,
            stop,
            serving: Some(serving),
            controller: Some(controller),
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates `deployment` (its namespace is `metadata.namespace`, `default` when unset) as a
    /// `POST` would; the controller then rolls it out from zero ready replicas.
    pub fn seed(&self, deployment: Deployment) -> Result<Deployment, ApiError> {
        let ns = deployment
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        self.store.lock().insert(&ns, deployment, false)
    }

    /// Creates [`deployment`]`(namespace, name, replicas)` with its rollout already complete
    /// (every replica ready, generation 1 observed).
    ///
    /// # Panics
    ///
    /// When the deployment exists already or `replicas` is negative: a test set-up error.
    pub fn seed_rolled_out(&self, namespace: &str, name: &str, replicas: i32) -> Deployment {
        self.store
            .lock()
            .insert(namespace, deployment(namespace, name, replicas), true)
            .unwrap_or_else(|e| {
                panic!(
                    "cannot seed `{namespace}/{name}`: {}",
                    e.status().message.unwrap_or_default()
                )
            })
    }

    /// The deployment as stored now.
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Deployment> {
        self.store.lock().get(namespace, name).cloned()
    }

    /// Deploys `image` to the first container of `namespace/name`, as `kubectl set image`
    /// does: a new pod template, so a new revision (and ReplicaSet) the controller rolls out.
    pub fn set_image(
        &self,
        namespace: &str,
        name: &str,
        image: &str,
    ) -> Result<Deployment, ApiError> {
        self.store.lock().modify(namespace, name, |current| {
            let mut new = current.clone();
            if let Some(container) = new
                .spec
                .template
                .spec
                .as_mut()
                .and_then(|s| s.containers.first_mut())
            {
                container.image = Some(image.to_owned());
            }
            Ok(new)
        })
    }

    /// The ReplicaSets of `namespace`, by name.
    pub fn replica_sets(&self, namespace: &str) -> Vec<k8s_openapi::api::apps::v1::ReplicaSet> {
        match selectors::Filter::parse(Some(namespace), None, None) {
            Ok(filter) => self.store.lock().objects(&filter),
            Err(_) => Vec::new(),
        }
    }

    /// Creates `service` (its namespace is `metadata.namespace`, `default` when unset) as a
    /// `POST` would: defaults and a cluster IP included.
    pub fn create_service(&self, service: Service) -> Result<Service, ApiError> {
        let ns = namespace_of(&service.metadata);
        self.store.lock().create_object(&ns, service)
    }

    /// Creates [`service`]`(namespace, name, selector, ports)`.
    ///
    /// # Panics
    ///
    /// When the service exists already or is invalid (no ports, say): a test set-up error.
    pub fn seed_service(
        &self,
        namespace: &str,
        name: &str,
        selector: &[(&str, &str)],
        ports: &[u16],
    ) -> Service {
        self.create_service(service(namespace, name, selector, ports))
            .unwrap_or_else(|e| set_up_error(namespace, name, &e))
    }

    /// The service as stored now.
    pub fn service(&self, namespace: &str, name: &str) -> Option<Service> {
        self.store.lock().object(namespace, name).cloned()
    }

    /// Deletes the service as a `DELETE` would (its endpoint slices stay, as they would without
    /// the garbage collector); the deleted service, `None` when there was none.
    pub fn delete_service(&self, namespace: &str, name: &str) -> Option<Service> {
        self.store.lock().delete_object(namespace, name).ok()
    }

    /// Creates `slice` (its namespace is `metadata.namespace`, `default` when unset) as a `POST`
    /// would: a name from `generateName` when it has none.
    pub fn create_endpoint_slice(&self, slice: EndpointSlice) -> Result<EndpointSlice, ApiError> {
        let ns = namespace_of(&slice.metadata);
        self.store.lock().create_object(&ns, slice)
    }

    /// Creates [`endpoint_slice`]`(namespace, service, endpoints, port)`, named
    /// `<service>-<five characters>`: the answer has the name.
    ///
    /// # Panics
    ///
    /// When the slice is invalid (an address that is not IPv4, say): a test set-up error.
    pub fn seed_endpoint_slice(
        &self,
        namespace: &str,
        service: &str,
        endpoints: &[SliceEndpoint<'_>],
        port: u16,
    ) -> EndpointSlice {
        self.create_endpoint_slice(endpoint_slice(namespace, service, endpoints, port))
            .unwrap_or_else(|e| set_up_error(namespace, service, &e))
    }

    /// The endpoint slice as stored now.
    pub fn endpoint_slice(&self, namespace: &str, name: &str) -> Option<EndpointSlice> {
        self.store.lock().object(namespace, name).cloned()
    }

    /// The endpoint slices of `service` (labelled [`SERVICE_NAME_LABEL`]` = service`) in
    /// `namespace`, by name.
    pub fn endpoint_slices_of(&self, namespace: &str, service: &str) -> Vec<EndpointSlice> {
        let filter = Filter::label_equals(namespace, SERVICE_NAME_LABEL, service);
        self.store.lock().objects(&filter)
    }

    /// Deletes the endpoint slice as a `DELETE` would; the deleted slice, `None` when there was
    /// none.
    pub fn delete_endpoint_slice(&self, namespace: &str, name: &str) -> Option<EndpointSlice> {
        self.store.lock().delete_object(namespace, name).ok()
    }

    /// The current `resourceVersion` (the version of the last write).
    pub fn resource_version(&self) -> u64 {
        self.store.lock().resource_version()
    }

    /// Makes another writer change `namespace/name` just before each of its next `n` writes
    /// (any `PUT` or `PATCH` of it or of its scale): a write naming the `resourceVersion` it read
    /// then fails with `409 Conflict`, as on a busy cluster; a write without one succeeds after
    /// the other writer's. `n = 0` cancels what is pending.
    pub fn conflict_next_writes(&self, namespace: &str, name: &str, n: u32) {
        self.store.lock().conflict_next_writes(namespace, name, n);
    }

    /// The injected conflicts of `namespace/name` not yet used.
    pub fn pending_conflicts(&self, namespace: &str, name: &str) -> u32 {
        self.store.lock().pending_conflicts(namespace, name)
    }

    /// Makes the next `n` requests (any path) meet `fault`.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.hooks.fail_next(n, fault);
    }

    /// Makes every request meet `fault` until [`TestServer::clear_faults`].
    pub fn fail_always(&self, fault: Fault) {
        self.hooks.fail_always(fault);
    }

    /// Cancels every injected fault.
    pub fn clear_faults(&self) {
        self.hooks.clear();
    }

    /// Pauses (`true`) or resumes the controller: while paused, statuses do not move.
    pub fn pause_controller(&self, paused: bool) {
        self.store.lock().set_controller_paused(paused);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.hooks.requests()
    }

    /// Stops: hanging requests get `503`, watches end, and the listener closes.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in [self.serving.take(), self.controller.take()]
            .into_iter()
            .flatten()
        {
            // A task that panicked has said so in its own output already.
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("the test API server did not stop within 5 s");
            }
        }
    }
}

/// The namespace an object names, `default` when it names none (as kubectl assumes).
fn namespace_of(meta: &ObjectMeta) -> String {
    meta.namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned())
}

/// Seeding `namespace/name` failed: the test is wrong, not the code under test.
fn set_up_error(namespace: &str, name: &str, error: &ApiError) -> ! {
    panic!(
        "cannot seed `{namespace}/{name}`: {}",
        error.status().message.unwrap_or_default()
    )
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
