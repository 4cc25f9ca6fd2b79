//! What a condition read from an event, for people: each path it names and the value that path
//! led to, so that "`value > 500` is false" can say `value` was 40. The verdict itself stays
//! [`Condition::eval`]'s, the one the trigger mesh uses; this only walks the same tree for its
//! paths and resolves them with the same lookup.

use serde_json::Value;

use super::eval::Found;
use super::{Condition, Expr, Operand, Path, Root, Step, Subject};
use crate::event::TriggerEvent;

impl Condition {
    /// Each path the condition names (once, in the order written) and its value on `event`:
    /// `null` where the path leads nowhere, as evaluation sees it.
    pub fn inputs(&self, event: &TriggerEvent) -> Vec<(String, Value)> {
        self.inputs_with(event, None)
    }

    /// [`Condition::inputs`] with the health graph's facts about the event's resource, as
    /// [`Condition::eval_with`] reads them.
    pub fn inputs_with(&self, event: &TriggerEvent, graph: Option<&Value>) -> Vec<(String, Value)> {
        let subject = Subject { event, graph };
        let mut paths: Vec<&Path> = Vec::new();
        collect(&self.expr, &mut paths);
        paths
            .into_iter()
            .map(|p| {
                let value = match p.lookup(&subject) {
                    Found::Str(s) => Value::String(s.to_owned()),
                    Found::Json(v) => v.clone(),
                    Found::Missing => Value::Null,
                };
                (p.text(), value)
            })
            .collect()
    }
}

fn collect<'a>(expr: &'a Expr, out: &mut Vec<&'a Path>) {
    let operand = |o: &'a Operand, out: &mut Vec<&'a Path>| match o {
        Operand::Path(p) => {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Operand::Group(e) => collect(e, out),
        Operand::Literal(_) => {}
    };
    match expr {
        Expr::Or(items) | Expr::And(items) => items.iter().for_each(|e| collect(e, out)),
        Expr::Not(e) => collect(e, out),
        Expr::Compare(a, _, b) => {
            operand(a, out);
            operand(b, out);
        }
        Expr::In(o, _) | Expr::Truthy(o) => operand(o, out),
    }
}

impl Path {
    /// The path as it may be written: `value`, `labels.env`, `event.resource`, `items[0]`.
    fn text(&self) -> String {
        let mut out = match self.root {
            Root::Payload => String::from("payload"),
            Root::EventType => String::from("event.type"),
            Root::Resource => String::from("event.resource"),
            Root::Source => String::from("event.source"),
            Root::Actor => String::from("event.actor"),
            Root::Graph => String::from("event.graph"),
        };
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Step::Key(k) if is_ident(k) => {
                    // A payload key is written bare at the start: `value`, not `payload.value`.
                    if i == 0 && self.root == Root::Payload {
                        out.clear();
                    } else {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Step::Key(k) => out.push_str(&format!("[{}]", Value::String(k.clone()))),
                Step::Index(n) => out.push_str(&format!("[{n}]")),
            }
        }
        out
    }
}

fn is_ident(k: &str) -> bool {
    const RESERVED: [&str; 9] = [
        "and", "or", "not", "in", "true", "false", "null", "event", "payload",
    ];
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !RESERVED.contains(&k)
}

#[cfg(test)]
mod tests {
    use super::super::tests::event;
    use super::*;

    #[test]
    fn inputs_name_each_path_once_with_its_value() {
        let c = Condition::parse("value > 500 && labels.env == 'prod' || value < 0 || missing")
            .expect("parses");
        assert_eq!(
            c.inputs(&event()),
            vec![
                ("value".to_owned(), serde_json::json!(912.5)),
                ("labels.env".to_owned(), serde_json::json!("prod")),
                ("missing".to_owned(), Value::Null),
            ]
        );
    }

    #[test]
    fn event_fields_and_odd_keys_are_written_as_they_can_be_parsed() {
        let c = Condition::parse(
            "event.resource == 'x' || labels[\"app.kubernetes.io/name\"] || items[2].three",
        )
        .expect("parses");
        let names: Vec<String> = c.inputs(&event()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "event.resource",
                "labels[\"app.kubernetes.io/name\"]",
                "items[2].three"
            ]
        );
        for name in names {
            assert!(Condition::parse(&name).is_ok(), "`{name}` parses back");
        }
    }
}
