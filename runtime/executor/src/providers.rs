//! The named providers of one capability, and which of them serves a resource.
//!
//! A **provider** is a configured real thing (an AWS account and region, a Docker-API endpoint,
//! a kube context, a Prometheus server) or the simulation, implementing the capability's
//! executor trait under a name unique on the host (`sim`, `aws-eu`, `docker-edge`). Which
//! provider serves a resource is configuration: [`Routes`], compiled from `[[providers]]` by
//! [`crate::routing`]. Resolution is **first match wins**: the routes are tried in the order
//! they were written, and a resource none of them matches goes to the capability's default
//! provider, if it has one. There is no rerouting: a resource has exactly one provider.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::{ContainerExecutor, ExecError, KubernetesExecutor, MetricsExecutor, ScalingExecutor};

pub use grace_model::provider::Capability;

/// An executor trait object, tied to the capability it serves (so `Providers<dyn
/// ScalingExecutor>` knows it routes `scaling`).
pub trait Served: Send + Sync {
    /// The capability.
    const CAPABILITY: Capability;
}

impl Served for dyn ScalingExecutor {
    const CAPABILITY: Capability = Capability::Scaling;
}
impl Served for dyn ContainerExecutor {
    const CAPABILITY: Capability = Capability::Containers;
}
impl Served for dyn KubernetesExecutor {
    const CAPABILITY: Capability = Capability::Kubernetes;
}
impl Served for dyn MetricsExecutor {
    const CAPABILITY: Capability = Capability::Metrics;
}

/// One provider: its name and its executor. Dereferences to the executor.
pub struct Provider<T: ?Sized> {
    name: Arc<str>,
    executor: Arc<T>,
}

impl<T: ?Sized> Clone for Provider<T> {
    fn clone(&self) -> Self {
        Provider {
            name: Arc::clone(&self.name),
            executor: Arc::clone(&self.executor),
        }
    }
}

impl<T: ?Sized> Provider<T> {
    /// The provider's name on this host.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its executor.
    pub fn executor(&self) -> &Arc<T> {
        &self.executor
    }
}

impl<T: ?Sized> Deref for Provider<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.executor
    }
}

impl<T: ?Sized> fmt::Debug for Provider<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Provider({})", self.name)
    }
}

/// One route: resources matching `pattern` (a glob) go to `provider`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The glob, as written (`*` matches any run of characters, everything else is literal).
    pub pattern: String,
    /// The provider's name.
    pub provider: String,
}

/// Which provider serves a resource of one capability: routes tried in order (first match
/// wins), then the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// The routes, in the order they were written.
    pub routes: Vec<Route>,
    /// The provider of resources no route matches; without one they are refused.
    pub default: Option<String>,
}

/// Why no provider serves a resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The capability has no provider on this host at all.
    #[error("no {capability} provider is configured on this host")]
    NoProvider {
        /// The capability.
        capability: Capability,
    },
    /// No route matches the resource and the capability has no default provider.
    #[error(
        "no {capability} provider serves `{resource}`: no [[providers]] route of `{capability}` matches it and `{capability}` has no default provider"
    )]
    Unmapped {
        /// The capability.
        capability: Capability,
        /// The resource, as routed (shortened for display).
        resource: String,
    },
}

impl From<RouteError> for ExecError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::NoProvider { .. } => ExecError::Unavailable(e.to_string()),
            RouteError::Unmapped { .. } => ExecError::NotFound(e.to_string()),
        }
    }
}

/// Why routes cannot be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {capability} routes name `{provider}`, which is not a {capability} provider here")]
pub struct UnknownProvider {
    /// The capability.
    pub capability: Capability,
    /// The name no provider has.
    pub provider: String,
}

/// The named providers of one capability and its routes.
pub struct Providers<T: ?Sized> {
    named: BTreeMap<Arc<str>, Arc<T>>,
    routes: Arc<Routes>,
}

impl<T: ?Sized> Clone for Providers<T> {
    fn clone(&self) -> Self {
        Providers {
            named: self.named.clone(),
            routes: Arc::clone(&self.routes),
        }
    }
}

impl<T: ?Sized> Default for Providers<T> {
    fn default() -> Self {
        Providers {
            named: BTreeMap::new(),
            routes: Arc::default(),
        }
    }
}

impl<T: ?Sized> fmt::Debug for Providers<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Providers")
            .field("names", &self.named.keys().collect::<Vec<_>>())
            .field("routes", &self.routes)
            .finish()
    }
}

/// How much of a resource an error message quotes.
const QUOTED_BYTES: usize = 128;

fn shortened(text: &str) -> String {
    if text.len() <= QUOTED_BYTES {
        return text.to_owned();
    }
    let mut end = QUOTED_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl<T: ?Sized + Served> Providers<T> {
    /// No provider: every call of the capability is refused as unavailable.
    pub fn none() -> Self {
        Self::default()
    }

    /// One provider, serving every resource of the capability (its default).
    pub fn single(name: impl Into<Arc<str>>, executor: Arc<T>) -> Self {
        let name = name.into();
        let mut providers = Self::none();
        providers.routes = Arc::new(Routes {
            routes: Vec::new(),
            default: Some(name.to_string()),
        });
        providers.named.insert(name, executor);
        providers
    }

    /// Adds (or replaces) a provider; it serves nothing until routes name it.
    pub fn insert(&mut self, name: impl Into<Arc<str>>, executor: Arc<T>) {
        self.named.insert(name.into(), executor);
    }

    /// Installs the routes, resolved with the project's one glob ([`grace_model::glob`]);
    /// every provider they name must be here.
    pub fn set_routes(&mut self, routes: Routes) -> Result<(), UnknownProvider> {
        let named = routes
            .routes
            .iter()
            .map(|r| &r.provider)
            .chain(routes.default.as_ref());
        for name in named {
            if !self.named.contains_key(name.as_str()) {
                return Err(UnknownProvider {
                    capability: T::CAPABILITY,
                    provider: name.clone(),
                });
            }
        }
        self.routes = Arc::new(routes);
        Ok(())
    }

    /// The provider serving `resource`: the first route whose glob matches it, else the default.
    pub fn route(&self, resource: &str) -> Result<Provider<T>, RouteError> {
        if self.named.is_empty() {
            return Err(RouteError::NoProvider {
                capability: T::CAPABILITY,
            });
        }
        let matched = self
            .routes
            .routes
            .iter()
            .find(|r| grace_model::glob::matches(&r.pattern, resource))
            .map(|r| r.provider.as_str());
        matched
            .or(self.routes.default.as_deref())
            .and_then(|name| self.get(name))
            .ok_or_else(|| RouteError::Unmapped {
                capability: T::CAPABILITY,
                resource: shortened(resource),
            })
    }

    /// The default provider, if the capability has one.
    pub fn default_provider(&self) -> Option<Provider<T>> {
        self.routes.default.as_deref().and_then(|n| self.get(n))
    }

    /// A provider by name.
    pub fn get(&self, name: &str) -> Option<Provider<T>> {
        self.named
            .get_key_value(name)
            .map(|(name, executor)| Provider {
                name: Arc::clone(name),
                executor: Arc::clone(executor),
            })
    }

    /// The providers' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.named.keys().map(|k| &**k)
    }

    /// Whether the capability has no provider.
    pub fn is_empty(&self) -> bool {
        self.named.is_empty()
    }

    /// The routes.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaling::Group;

    /// A scaling provider that is only a name: routing never calls it.
    struct Named;

    #[async_trait::async_trait]
    impl ScalingExecutor for Named {
        fn check_group_name<'a>(
            &self,
            _: &'static str,
            name: &'a str,
        ) -> Result<&'a str, crate::IdentError> {
            Ok(name)
        }
        async fn describe_group(&self, name: &str) -> Result<Group, ExecError> {
            Err(ExecError::NotFound(name.into()))
        }
        async fn set_desired_capacity(&self, name: &str, _: u32) -> Result<Group, ExecError> {
            Err(ExecError::NotFound(name.into()))
        }
        async fn wait_in_service(
            &self,
            name: &str,
            _: std::time::Duration,
        ) -> Result<Group, ExecError> {
            Err(ExecError::NotFound(name.into()))
        }
        async fn reconcile(
            &self,
            change: &crate::scaling::Change,
        ) -> Result<crate::Reconciled<Group>, ExecError> {
            let crate::scaling::Change::SetDesiredCapacity { group, .. } = change;
            Err(ExecError::NotFound(group.clone()))
        }
    }

    fn two(default: Option<&str>) -> Providers<dyn ScalingExecutor> {
        let mut p: Providers<dyn ScalingExecutor> = Providers::none();
        p.insert("sim", Arc::new(Named));
        p.insert("aws-eu", Arc::new(Named));
        let routes = Routes {
            routes: vec![
                Route {
                    pattern: "web".into(),
                    provider: "aws-eu".into(),
                },
                Route {
                    pattern: "web".into(),
                    provider: "sim".into(),
                },
            ],
            default: default.map(str::to_owned),
        };
        p.set_routes(routes).unwrap();
        p
    }

    #[test]
    fn the_first_matching_route_wins_then_the_default() {
        let p = two(Some("sim"));
        assert_eq!(p.route("web").unwrap().name(), "aws-eu");
        assert_eq!(p.route("api").unwrap().name(), "sim");
    }

    #[test]
    fn an_unmapped_resource_names_itself_and_the_capability() {
        let e = two(None).route("api").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no scaling provider serves `api`: no [[providers]] route of `scaling` matches it and `scaling` has no default provider"
        );
    }

    #[test]
    fn no_provider_at_all_is_unavailable() {
        let e = Providers::<dyn ScalingExecutor>::none()
            .route("web")
            .unwrap_err();
        assert_eq!(
            e,
            RouteError::NoProvider {
                capability: Capability::Scaling
            }
        );
        assert!(matches!(ExecError::from(e), ExecError::Unavailable(_)));
    }

    #[test]
    fn a_single_provider_serves_everything() {
        let p = Providers::<dyn ScalingExecutor>::single("sim", Arc::new(Named));
        assert_eq!(p.route("anything").unwrap().name(), "sim");
    }

    #[test]
    fn routes_to_a_provider_that_is_not_here_are_refused() {
        let mut p = Providers::<dyn ScalingExecutor>::single("sim", Arc::new(Named));
        let e = p
            .set_routes(Routes {
                routes: Vec::new(),
                default: Some("aws".into()),
            })
            .unwrap_err();
        assert_eq!(e.provider, "aws");
    }
}
