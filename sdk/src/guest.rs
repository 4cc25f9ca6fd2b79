//! The two kinds of guest, [`Playbook`] and [`Collector`], and the glue that exports them.

use crate::bindings::{collector as collector_world, playbook as playbook_world};
use crate::{Outcome, Result, TriggerEvent};

/// A playbook: responds to one trigger event.
///
/// Implement it on a unit struct and export it with [`export_playbook!`](crate::export_playbook).
/// An `Err` fails the run, with the error's text as the reason. A panic traps the guest; the
/// host fails the run with the panic message, which the guest prints to stderr.
///
/// ```no_run
/// use grace_sdk::{Outcome, Playbook, Result, TriggerEvent};
///
/// struct Hello;
///
/// impl Playbook for Hello {
///     fn run(event: TriggerEvent) -> Result<Outcome> {
///         grace_sdk::info!("hello from {}", event.resource);
///         Ok(Outcome::unchanged("said hello"))
///     }
/// }
///
/// grace_sdk::export_playbook!(Hello);
/// ```
pub trait Playbook {
    /// Responds to `event`.
    fn run(event: TriggerEvent) -> Result<Outcome>;
}

/// A collector: looks at the world and emits trigger events, on its manifest's schedule.
///
/// Implement it on a unit struct and export it with
/// [`export_collector!`](crate::export_collector). Events left with timestamp 0 are stamped with
/// the run clock's time when `collect` returns.
pub trait Collector {
    /// Collects once.
    fn collect() -> Result<Vec<TriggerEvent>>;
}

/// Exports a [`Playbook`] as the component's `run` function.
///
/// Use it once, at the top level of a `cdylib` crate built for `wasm32-wasip2`.
#[macro_export]
macro_rules! export_playbook {
    ($playbook:ty) => {
        const _: () = {
            type __GracePlaybook = $crate::__private::PlaybookExport<$playbook>;
            $crate::__private::playbook::export!(
                __GracePlaybook with_types_in $crate::__private::playbook
            );
        };
    };
}

/// Exports a [`Collector`] as the component's `collect` function.
///
/// Use it once, at the top level of a `cdylib` crate built for `wasm32-wasip2`.
#[macro_export]
macro_rules! export_collector {
    ($collector:ty) => {
        const _: () = {
            type __GraceCollector = $crate::__private::CollectorExport<$collector>;
            $crate::__private::collector::export!(
                __GraceCollector with_types_in $crate::__private::collector
            );
        };
    };
}

/// The generated `Guest` implementation behind [`export_playbook!`](crate::export_playbook).
pub struct PlaybookExport<P>(std::marker::PhantomData<P>);

impl<P: Playbook> playbook_world::Guest for PlaybookExport<P> {
    fn run(
        event: playbook_world::TriggerEvent,
    ) -> std::result::Result<playbook_world::Outcome, String> {
        P::run(TriggerEvent::from_wit(event))
            .map(Outcome::into_wit)
            .map_err(|e| e.to_string())
    }
}

/// The generated `Guest` implementation behind [`export_collector!`](crate::export_collector).
pub struct CollectorExport<C>(std::marker::PhantomData<C>);

impl<C: Collector> collector_world::Guest for CollectorExport<C> {
    fn collect() -> std::result::Result<Vec<collector_world::TriggerEvent>, String> {
        let mut events = C::collect().map_err(|e| e.to_string())?;
        if events.iter().any(|e| e.timestamp == 0) {
            let now = crate::clock::now();
            for event in events.iter_mut().filter(|e| e.timestamp == 0) {
                event.timestamp = now;
            }
        }
        Ok(events.into_iter().map(TriggerEvent::into_wit).collect())
    }
}
