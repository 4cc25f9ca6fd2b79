//! Evaluation of a parsed condition against an event. It never panics and never allocates: it
//! walks the tree and borrows from the condition and the event. Paths that lead nowhere are
//! `null`, and `==` on arrays and objects looks at most [`MAX_VALUE_DEPTH`] levels deep.

use serde_json::Value;

use super::{CmpOp, Expr, Literal, Operand, Path, Root, Step, Subject};

/// How deep `==` looks into arrays and objects; deeper values are unequal. Payloads parsed by
/// `serde_json` are at most 128 deep anyway; this keeps evaluation's stack bounded for any value.
const MAX_VALUE_DEPTH: usize = 128;

/// A value during evaluation, borrowed from the condition or the event.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(&'a str),
    /// An array or object (scalars are unpacked into the other variants).
    Json(&'a Value),
}

impl<'a> Val<'a> {
    fn of_json(v: &'a Value) -> Val<'a> {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => n.as_f64().map_or(Val::Null, Val::Num),
            Value::String(s) => Val::Str(s),
            Value::Array(_) | Value::Object(_) => Val::Json(v),
        }
    }

    fn truthy(self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => b,
            Val::Num(n) => n != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::Json(Value::Array(a)) => !a.is_empty(),
            Val::Json(Value::Object(o)) => !o.is_empty(),
            Val::Json(v) => Val::of_json(v).truthy(),
        }
    }

    fn equals(self, other: Val<'_>) -> bool {
        match (self, other) {
            (Val::Null, Val::Null) => true,
            (Val::Bool(a), Val::Bool(b)) => a == b,
            (Val::Num(a), Val::Num(b)) => a == b,
            (Val::Str(a), Val::Str(b)) => a == b,
            (Val::Json(a), Val::Json(b)) => json_equals(a, b, 0),
            _ => false,
        }
    }

    fn order(self, other: Val<'_>) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Val::Num(a), Val::Num(b)) => a.partial_cmp(&b),
            (Val::Str(a), Val::Str(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// JSON equality with numbers compared numerically, bounded in depth.
fn json_equals(a: &Value, b: &Value, depth: usize) -> bool {
    if depth > MAX_VALUE_DEPTH {
        return false;
    }
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equals(x, y, depth + 1))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, x)| y.get(k).is_some_and(|y| json_equals(x, y, depth + 1)))
        }
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => Val::of_json(a).equals(Val::of_json(b)),
    }
}

impl Expr {
    pub(super) fn eval(&self, s: &Subject<'_>) -> bool {
        match self {
            Expr::Or(items) => items.iter().any(|e| e.eval(s)),
            Expr::And(items) => items.iter().all(|e| e.eval(s)),
            Expr::Not(e) => !e.eval(s),
            Expr::Truthy(o) => o.value(s).truthy(),
            Expr::In(o, list) => {
                let v = o.value(s);
                list.iter().any(|l| v.equals(l.value()))
            }
            Expr::Compare(a, op, b) => {
                let (a, b) = (a.value(s), b.value(s));
                use std::cmp::Ordering::*;
                match op {
                    CmpOp::Eq => a.equals(b),
                    CmpOp::Ne => !a.equals(b),
                    CmpOp::Gt => a.order(b) == Some(Greater),
                    CmpOp::Ge => matches!(a.order(b), Some(Greater | Equal)),
                    CmpOp::Lt => a.order(b) == Some(Less),
                    CmpOp::Le => matches!(a.order(b), Some(Less | Equal)),
                }
            }
        }
    }
}

impl Operand {
    fn value<'a>(&'a self, s: &Subject<'a>) -> Val<'a> {
        match self {
            Operand::Literal(l) => l.value(),
            Operand::Path(p) => p.resolve(s),
            Operand::Group(e) => Val::Bool(e.eval(s)),
        }
    }
}

impl Literal {
    fn value(&self) -> Val<'_> {
        match self {
            Literal::Null => Val::Null,
            Literal::Bool(b) => Val::Bool(*b),
            Literal::Number(n) => Val::Num(*n),
            Literal::String(s) => Val::Str(s),
        }
    }
}

/// What a path leads to.
pub(super) enum Found<'a> {
    /// One of the event's own fields.
    Str(&'a str),
    /// A value in the payload.
    Json(&'a Value),
    /// Nothing.
    Missing,
}

impl Path {
    fn resolve<'a>(&self, s: &Subject<'a>) -> Val<'a> {
        match self.lookup(s) {
            Found::Str(s) => Val::Str(s),
            Found::Json(v) => Val::of_json(v),
            Found::Missing => Val::Null,
        }
    }

    pub(super) fn lookup<'a>(&self, s: &Subject<'a>) -> Found<'a> {
        let event = s.event;
        let mut value = match self.root {
            Root::Payload => &event.payload,
            Root::Graph => match s.graph {
                Some(graph) => graph,
                None => return Found::Missing,
            },
            Root::EventType => return Found::Str(&event.event_type),
            Root::Resource => return Found::Str(&event.resource),
            Root::Source => return Found::Str(&event.source),
            Root::Actor => return Found::Str(&event.actor),
        };
        for step in &self.steps {
            let next = match (step, value) {
                (Step::Key(k), Value::Object(map)) => map.get(k),
                (Step::Index(i), Value::Array(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(v) => value = v,
                None => return Found::Missing,
            }
        }
        Found::Json(value)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::Condition;
    use super::super::tests::event;
    use super::*;

    /// (condition, expected result on `event()`).
    pub(crate) const CASES: &[(&str, bool)] = &[
        // numbers
        ("value > 500", true),
        ("value > 1000", false),
        ("value >= 912.5", true),
        ("value < 912.5", false),
        ("value <= 912.5", true),
        ("count == 3", true),
        ("count == 3.0", true),
        ("int == 1.0", true),
        ("1 == 1.0", true),
        ("count != 3", false),
        ("-1 < zero", true),
        ("value > -1e3", true),
        ("big > 1e299", true),
        // strings
        ("name == 'api'", true),
        (r#"name == "api""#, true),
        ("name > 'abc'", true),
        ("name < 'b'", true),
        ("name != 'web'", true),
        // type mismatches: ordering is false, equality is false
        ("name > 5", false),
        ("value > '5'", false),
        ("!(value > '5')", true),
        ("'1' == 1", false),
        ("null == false", false),
        ("0 == false", false),
        ("ok == 1", false),
        // missing paths are null
        ("missing == null", true),
        ("missing != 5", true),
        ("missing > 0", false),
        ("missing < 0", false),
        ("missing", false),
        ("!missing", true),
        ("none == null", true),
        ("labels.missing.deeper == null", true),
        ("items[9] == null", true),
        ("name[0] == null", true),
        ("name.first == null", true),
        // nested paths
        ("labels.env == 'prod'", true),
        ("labels['app.kubernetes.io/name'] == 'web'", true),
        ("items[0] == 1", true),
        ("items[1] == 'two'", true),
        ("items[2].three == 3", true),
        ("payload.value == value", true),
        ("labels == labels && items == items", true),
        ("labels == items", false),
        // truthiness
        ("payload", true),
        ("items", true),
        ("list_empty", false),
        ("labels", true),
        ("obj_empty", false),
        ("name", true),
        ("empty", false),
        ("count", true),
        ("zero", false),
        ("ok", true),
        ("off", false),
        ("!!ok", true),
        // precedence and keywords
        ("value > 500 && labels.env == 'prod'", true),
        ("value > 500 and labels.env == 'dev'", false),
        ("value < 500 || labels.env == 'prod'", true),
        ("value < 500 or labels.env == 'dev'", false),
        ("false || true && false", false),
        ("true || true && false", true),
        ("(true || true) && false", false),
        ("!true || true", true),
        ("!false && false", false),
        ("not value > 1000", true),
        ("not (value > 500 and ok)", false),
        ("(value > 500) == true", true),
        ("((((value))))", true),
        // in
        ("name in ['web', 'api']", true),
        ("name in ['web']", false),
        ("count in [1, 2, 3.0]", true),
        ("missing in [null]", true),
        ("ok in [true]", true),
        ("not name in ['api']", false),
        // escapes
        (r#"quote == 'say "hi"\n'"#, true),
        (r#"quote == "say \"hi\"\n""#, true),
        (r#"'it\'s' == "it's""#, true),
        (r#"bs == 'back\\slash'"#, true),
        ("'tab\\there' == 'tab\there'", true),
        // event fields, and payload keys with reserved names
        ("event.type == 'metrics.latency'", true),
        ("event.resource == 'api-service'", true),
        (
            "event.source == 'prometheus' && event.actor == 'latency-collector'",
            true,
        ),
        ("event.type == type", false),
        ("payload.event.kind == 'deploy'", true),
        ("payload.in == 1", true),
        ("payload.resource == null", true),
        // whitespace is free
        ("  value>500&&labels.env=='prod'  ", true),
    ];

    #[test]
    fn conditions_evaluate_as_documented() {
        assert!(CASES.len() >= 40);
        let e = event();
        for (text, expected) in CASES {
            let c = Condition::parse(text).unwrap_or_else(|err| panic!("`{text}`: {err}"));
            assert_eq!(c.eval(&e), *expected, "`{text}`");
            assert_eq!(c.to_string(), *text);
        }
    }

    #[test]
    fn equality_of_very_deep_values_is_bounded() {
        let mut deep = serde_json::json!(1);
        for _ in 0..(MAX_VALUE_DEPTH + 10) {
            deep = serde_json::json!([deep]);
        }
        let mut e = event();
        e.payload = serde_json::json!({ "a": deep.clone(), "b": deep, "c": [[1]], "d": [[1.0]] });
        // Beyond the depth bound values are unequal rather than overflowing the stack.
        assert!(!Condition::parse("a == b").unwrap().eval(&e));
        assert!(Condition::parse("c == d").unwrap().eval(&e));
    }

    #[test]
    fn event_graph_paths_read_the_facts_stored_with_the_event() {
        let e = event();
        let facts = serde_json::json!({
            "node": "service:shop/cart",
            "health": "degraded",
            "upstreams": { "service:shop/postgres": "unhealthy" },
            "dependents": { "service:shop/web": "healthy" },
            "unhealthy_upstreams": 1,
            "unhealthy_dependents": 0,
        });
        for (text, expected) in [
            ("event.graph.health == 'degraded'", true),
            (
                "event.graph.unhealthy_upstreams > 0 && event.graph.unhealthy_dependents == 0",
                true,
            ),
            (
                r#"event.graph.upstreams["service:shop/postgres"] == "unhealthy""#,
                true,
            ),
            (
                r#"event.graph.dependents["service:shop/api"] != null"#,
                false,
            ),
            ("event.graph.node == 'service:shop/cart'", true),
            ("event.graph", true),
        ] {
            let c = Condition::parse(text).unwrap_or_else(|err| panic!("`{text}`: {err}"));
            assert_eq!(c.eval_with(&e, Some(&facts)), expected, "`{text}`");
            // Without a graph, every `event.graph` path is null.
            assert!(
                !c.eval(&e) || text.contains("!= null"),
                "`{text}` without facts"
            );
        }
        let inputs = Condition::parse("event.graph.health == 'x'")
            .unwrap()
            .inputs_with(&e, Some(&facts));
        assert_eq!(
            inputs,
            [(
                "event.graph.health".to_owned(),
                serde_json::json!("degraded")
            )]
        );
    }

    #[test]
    fn a_payload_key_named_graph_is_not_the_graph() {
        let mut e = event();
        e.payload = serde_json::json!({ "graph": { "health": "healthy" } });
        let c = Condition::parse("event.graph.health == 'healthy'").unwrap();
        assert!(!c.eval(&e), "a publisher cannot pose as the graph");
        assert!(
            Condition::parse("graph.health == 'healthy'")
                .unwrap()
                .eval(&e)
        );
    }
}
