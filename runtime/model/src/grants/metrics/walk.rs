//! The walk over a parsed query: every node visited with the times it is evaluated at, every
//! vector and matrix selector matched against the grant, and every read (after offsets, `@`,
//! ranges and enclosing subqueries) kept within `max_range` before the query's end.

use std::time::{Duration, SystemTime};

use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

use super::selector::{metric_name, selector_text};
use super::{Denial, MetricsGrant, QueryError, denied};

/// Most evaluations a subquery with an explicit step may ask for (as `query-range` per series).
const MAX_SUBQUERY_STEPS: u128 = 11_000;
/// Functions that read series the query does not name: `info` joins `target_info` (or any
/// selector of its second argument's choosing) into its result.
const IMPLICIT_READERS: &[&str] = &["info"];

/// Milliseconds since the epoch, signed and wide: offsets, `@` times and ranges are added to
/// guest-chosen values without overflow.
pub(super) type Millis = i128;

pub(super) fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

fn offset_millis(offset: Option<&Offset>) -> Millis {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => millis(*d),
        Some(Offset::Neg(d)) => -millis(*d),
    }
}

/// The evaluation times of an expression: from `lo` to `hi`, in epoch milliseconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) lo: Millis,
    pub(super) hi: Millis,
}

/// What a walk over one query needs: the grant, the query's own start and end (for `@ start()`
/// and `@ end()`) and the earliest time a read may reach.
pub(super) struct Walk<'a> {
    pub(super) grant: &'a MetricsGrant,
    pub(super) start: Millis,
    pub(super) end: Millis,
    pub(super) earliest: Millis,
}

impl Walk<'_> {
    /// Checks every node of the tree, left to right. A work list rather than recursion: the
    /// call runs on the guest's fiber stack, and a tree may be hundreds of levels deep.
    pub(super) fn expr(&self, root: &Expr, at: Window) -> Result<(), QueryError> {
        let mut work = vec![(root, at)];
        while let Some((expr, at)) = work.pop() {
            match expr {
                Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
                Expr::Paren(p) => work.push((&p.expr, at)),
                Expr::Unary(u) => work.push((&u.expr, at)),
                Expr::Binary(b) => {
                    work.push((&b.rhs, at));
                    work.push((&b.lhs, at));
                }
                Expr::Aggregate(a) => {
                    work.push((&a.expr, at));
                    if let Some(param) = &a.param {
                        work.push((param, at));
                    }
                }
                Expr::Call(call) => {
                    if IMPLICIT_READERS.contains(&call.func.name) {
                        return denied(format!(
                            "function `{}` reads series the query does not name, so no grant covers it",
                            call.func.name
                        ));
                    }
                    work.extend(call.args.args.iter().rev().map(|arg| (&**arg, at)));
                }
                Expr::VectorSelector(vs) => {
                    self.selector(vs)?;
                    self.reach(&selector_text(vs), vs.at.as_ref(), &vs.offset, 0, at)?;
                }
                Expr::MatrixSelector(ms) => {
                    self.selector(&ms.vs)?;
                    let text = format!(
                        "{}[{}]",
                        selector_text(&ms.vs),
                        humantime::format_duration(ms.range)
                    );
                    self.reach(
                        &text,
                        ms.vs.at.as_ref(),
                        &ms.vs.offset,
                        millis(ms.range),
                        at,
                    )?;
                }
                Expr::Subquery(sq) => {
                    let range = millis(sq.range);
                    if let Some(step) = sq.step {
                        let step = step.as_millis();
                        if step == 0 || sq.range.as_millis() / step > MAX_SUBQUERY_STEPS {
                            return Err(QueryError::Invalid(format!(
                                "a subquery of {} with a step of {} evaluates more than {MAX_SUBQUERY_STEPS} times; raise the step",
                                humantime::format_duration(sq.range),
                                humantime::format_duration(Duration::from_millis(
                                    u64::try_from(step).unwrap_or(u64::MAX)
                                )),
                            )));
                        }
                    }
                    let base = self.pinned(sq.at.as_ref(), at);
                    let off = offset_millis(sq.offset.as_ref());
                    let inner = Window {
                        lo: base.lo - off - range,
                        hi: base.hi - off,
                    };
                    self.within("a subquery", inner)?;
                    work.push((&sq.expr, inner));
                }
                Expr::Extension(_) => {
                    return Err(QueryError::Invalid(
                        "`query` holds an expression that is not PromQL".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The evaluation times after an `@` modifier.
    fn pinned(&self, at_modifier: Option<&AtModifier>, at: Window) -> Window {
        let t = match at_modifier {
            None => return at,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
            Some(AtModifier::At(time)) => match time.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(after) => millis(after),
                Err(before) => -millis(before.duration()),
            },
        };
        Window { lo: t, hi: t }
    }

    /// Checks the samples a selector reads: `range` before each of its evaluation times, after
    /// its `@` and offset.
    fn reach(
        &self,
        text: &str,
        at_modifier: Option<&AtModifier>,
        offset: &Option<Offset>,
        range: Millis,
        at: Window,
    ) -> Result<(), QueryError> {
        let base = self.pinned(at_modifier, at);
        let off = offset_millis(offset.as_ref());
        let read = Window {
            lo: base.lo - off - range,
            hi: base.hi - off,
        };
        self.within(&format!("selector `{text}`"), read)
    }

    fn within(&self, what: &str, read: Window) -> Result<(), QueryError> {
        if read.hi > self.end {
            return denied(format!(
                "{what} reads after the query's end (a negative offset or a later `@`)"
            ));
        }
        if read.lo < self.earliest {
            let back = Duration::from_millis(u64::try_from(self.end - read.lo).unwrap_or(u64::MAX));
            return denied(format!(
                "{what} reaches {} before the query's end, beyond the granted max_range {}",
                humantime::format_duration(back),
                humantime::format_duration(self.grant.max_range)
            ));
        }
        Ok(())
    }

    /// Does some entry grant this selector?
    fn selector(&self, vs: &VectorSelector) -> Result<(), QueryError> {
        let text = selector_text(vs);
        if !vs.matchers.or_matchers.is_empty() {
            return denied(format!(
                "selector `{text}` uses `or` between matchers, which Prometheus does not define"
            ));
        }
        let metric = metric_name(vs).map_err(|why| {
            QueryError::Denied(Denial(format!("selector `{text}` is not granted: {why}")))
        })?;
        self.grant.admit(&text, metric, &vs.matchers.matchers)
    }
}
