//! The parts of the [`App`] a handler may take, each by [`FromRef`]: a handler names the part
//! it needs (`State(scheduler): State<Arc<Scheduler>>`), never the whole app.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use grace_ledger::Ledger;
use grace_sim::Simulation;

use crate::app::App;
use crate::auth::{Audit, Authenticator};
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::scheduler::Scheduler;
use crate::sources::supervisor::SourceSupervisor;
use crate::store::Store;
use crate::supervisor::Supervisor;
use crate::trust::HostTrust;

macro_rules! part {
    ($t:ty, $field:ident) => {
        impl FromRef<App> for $t {
            fn from_ref(app: &App) -> Self {
                app.$field.clone()
            }
        }
    };
}

part!(Store, store);
part!(Arc<Ledger>, ledger);
part!(Arc<Metrics>, metrics);
part!(Arc<Intake>, intake);
part!(Arc<Scheduler>, scheduler);
part!(Arc<Registry>, registry);
part!(Arc<SourceSupervisor>, sources);
part!(Arc<Authenticator>, auth);
part!(Audit, audit);
part!(Arc<HostTrust>, trust);
part!(Option<Arc<grace_cluster::Cluster>>, cluster);
part!(Option<Arc<crate::graph::Graph>>, graph);
part!(Arc<crate::anomaly::Anomalies>, anomalies);
part!(Arc<crate::notify::Notifier>, notifier);
part!(Arc<crate::outcomes::Outcomes>, outcomes);
part!(Arc<crate::meta::Meta>, meta);
part!(
    Option<Arc<crate::shared_playbooks::SharedPlaybooks>>,
    shared_playbooks
);
part!(
    Option<Arc<crate::shared_policies::SharedPolicies>>,
    shared_policies
);
part!(
    Option<Arc<crate::shared_credentials::SharedCredentials>>,
    shared_credentials
);

impl FromRef<App> for Arc<crate::dashboard::LedgerChecks> {
    fn from_ref(app: &App) -> Self {
        app.dashboard.ledger_checks.clone()
    }
}

/// What the body guard needs: the limits and deadline of request bodies.
#[derive(Clone, Copy)]
pub struct BodyLimits {
    /// `max_upload_bytes`.
    pub max_upload_bytes: usize,
    /// `max_body_bytes`.
    pub max_body_bytes: usize,
    /// `body_read_timeout`.
    pub body_read_timeout: Duration,
}

impl FromRef<App> for BodyLimits {
    fn from_ref(app: &App) -> Self {
        BodyLimits {
            max_upload_bytes: app.config.max_upload_bytes,
            max_body_bytes: app.config.max_body_bytes,
            body_read_timeout: app.config.body_read_timeout,
        }
    }
}

/// What `/healthz`, `/metrics` and `/v1/fleet` show: the server's health at a glance.
#[derive(Clone)]
pub struct Health {
    /// The background tasks.
    pub supervisor: Arc<Supervisor>,
    /// The simulated fleet, in simulation.
    pub sim: Option<Arc<Simulation>>,
    /// Each capability's providers by name, described.
    pub providers: Arc<BTreeMap<&'static str, BTreeMap<String, String>>>,
    /// Enabled playbooks.
    pub registry: Arc<Registry>,
    /// Queue depth.
    pub intake: Arc<Intake>,
    /// Runs by state.
    pub store: Store,
    /// Ledger entries.
    pub ledger: Arc<Ledger>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Sources' health.
    pub sources: Arc<SourceSupervisor>,
    /// This replica's part in a cluster.
    pub cluster: Option<Arc<grace_cluster::Cluster>>,
    /// The dashboard's open event streams.
    pub dashboard: Arc<crate::dashboard::Dashboard>,
}

impl FromRef<App> for Health {
    fn from_ref(app: &App) -> Self {
        Health {
            supervisor: app.supervisor.clone(),
            sim: app.sim.clone(),
            providers: app.providers.clone(),
            registry: app.registry.clone(),
            intake: app.intake.clone(),
            store: app.store.clone(),
            ledger: app.ledger.clone(),
            metrics: app.metrics.clone(),
            sources: app.sources.clone(),
            cluster: app.cluster.clone(),
            dashboard: app.dashboard.clone(),
        }
    }
}
