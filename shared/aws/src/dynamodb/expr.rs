//! The port's conditions and updates as DynamoDB expressions, expiry-aware: an expired item is
//! absent to every condition (TTL deletion lags, so the expressions decide, not TTL).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use latchkey_core::store::{Cond, ExpiryChange, Update};

use super::codec::{AvMap, EXP, PK, to_av};

/// Placeholders for one request's expressions.
#[derive(Default)]
pub struct Expr {
    names: HashMap<String, String>,
    values: AvMap,
}

impl Expr {
    pub fn name(&mut self, name: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, n)| n.as_str() == name) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), name.to_owned());
        placeholder
    }

    pub fn value(&mut self, av: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), av);
        placeholder
    }

    pub fn now(&mut self, now: i64) -> String {
        let key = ":now".to_owned();
        self.values
            .insert(key.clone(), AttributeValue::N(now.to_string()));
        key
    }

    /// The item, if there is one, has not expired.
    pub fn unexpired(&mut self, now: i64) -> String {
        let (exp, now) = (self.name(EXP), self.now(now));
        format!("(attribute_not_exists({exp}) OR {exp} > {now})")
    }

    /// No item, or a live one: an update must not build on an expired item's stale attributes.
    pub fn not_stale(&mut self, now: i64) -> String {
        let (pk, unexpired) = (self.name(PK), self.unexpired(now));
        format!("(attribute_not_exists({pk}) OR {unexpired})")
    }

    /// The item exists and has not expired.
    pub fn live(&mut self, now: i64) -> String {
        let (pk, unexpired) = (self.name(PK), self.unexpired(now));
        format!("(attribute_exists({pk}) AND {unexpired})")
    }

    /// No item, or an expired one.
    pub fn absent(&mut self, now: i64) -> String {
        let (pk, exp, now) = (self.name(PK), self.name(EXP), self.now(now));
        format!("(attribute_not_exists({pk}) OR {exp} <= {now})")
    }

    /// `None` for [`Cond::Always`].
    pub fn cond(&mut self, cond: &Cond, now: i64) -> Option<String> {
        Some(match cond {
            Cond::Always => return None,
            Cond::Exists => self.live(now),
            Cond::NotExists => self.absent(now),
            Cond::Eq(name, value) => {
                let (n, v, live) = (self.name(name), self.value(to_av(value)), self.live(now));
                format!("({n} = {v} AND {live})")
            }
            Cond::Cmp(name, op, value) => {
                // The type guard comes first: a string compared with a number is simply false
                // in DynamoDB, and emulators that raise on it never get to evaluate it.
                let (n, number, v, live) = (
                    self.name(name),
                    self.value(AttributeValue::S("N".into())),
                    self.value(AttributeValue::N(value.to_string())),
                    self.live(now),
                );
                format!(
                    "(attribute_type({n}, {number}) AND {n} {} {v} AND {live})",
                    op.symbol()
                )
            }
            Cond::Missing(name) => {
                let (n, absent) = (self.name(name), self.absent(now));
                format!("(attribute_not_exists({n}) OR {absent})")
            }
            Cond::And(all) => self.combine(all, " AND ", now),
            Cond::Or(any) => self.combine(any, " OR ", now),
        })
    }

    pub fn combine(&mut self, conds: &[Cond], sep: &str, now: i64) -> String {
        let mut parts = Vec::with_capacity(conds.len());
        for c in conds {
            let part = match self.cond(c, now) {
                Some(p) => p,
                None => self.always(),
            };
            parts.push(part);
        }
        if parts.is_empty() {
            // An empty And holds; an empty Or does not (as `Cond::holds` says).
            return if sep == " AND " {
                self.always()
            } else {
                self.never()
            };
        }
        // Every part is parenthesised already; DynamoDB refuses `((...))` ("redundant
        // parentheses"), so a single part stands alone.
        if let [single] = parts.as_slice() {
            return single.clone();
        }
        format!("({})", parts.join(sep))
    }

    pub fn never(&mut self) -> String {
        let pk = self.name(PK);
        format!("(attribute_exists({pk}) AND attribute_not_exists({pk}))")
    }

    /// A condition that always holds, for operations that require one (`ConditionCheck`).
    pub fn always(&mut self) -> String {
        let pk = self.name(PK);
        format!("(attribute_exists({pk}) OR attribute_not_exists({pk}))")
    }

    pub fn update(&mut self, update: &Update) -> String {
        let mut set: Vec<String> = Vec::new();
        let mut add: Vec<String> = Vec::new();
        let mut remove: Vec<String> = Vec::new();
        for (name, value) in &update.set {
            let (n, v) = (self.name(name), self.value(to_av(value)));
            set.push(format!("{n} = {v}"));
        }
        for (name, value) in &update.set_if_missing {
            let (n, v) = (self.name(name), self.value(to_av(value)));
            set.push(format!("{n} = if_not_exists({n}, {v})"));
        }
        for (name, by) in &update.add {
            let (n, v) = (
                self.name(name),
                self.value(AttributeValue::N(by.to_string())),
            );
            add.push(format!("{n} {v}"));
        }
        for name in &update.remove {
            remove.push(self.name(name));
        }
        match update.expiry {
            ExpiryChange::Keep => {}
            ExpiryChange::Set(at) => {
                let (n, v) = (
                    self.name(EXP),
                    self.value(AttributeValue::N(at.to_string())),
                );
                set.push(format!("{n} = {v}"));
            }
            ExpiryChange::Clear => remove.push(self.name(EXP)),
        }
        if set.is_empty() && add.is_empty() && remove.is_empty() {
            // An empty update still creates the item: remove an attribute nobody uses.
            remove.push(self.name("latchkey_noop"));
        }
        let mut clauses = Vec::new();
        if !set.is_empty() {
            clauses.push(format!("SET {}", set.join(", ")));
        }
        if !add.is_empty() {
            clauses.push(format!("ADD {}", add.join(", ")));
        }
        if !remove.is_empty() {
            clauses.push(format!("REMOVE {}", remove.join(", ")));
        }
        clauses.join(" ")
    }

    pub fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub fn values(&self) -> Option<AvMap> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::store::CmpOp;

    #[test]
    fn conditions_are_expiry_aware() {
        let mut e = Expr::default();
        let c = e
            .cond(
                &Cond::And(vec![
                    Cond::Exists,
                    Cond::missing_or("attempts", CmpOp::Lt, 6),
                ]),
                100,
            )
            .unwrap();
        assert!(c.contains("attribute_exists(#n0)"), "{c}");
        assert!(c.contains("> :now"), "{c}");
        assert!(
            c.contains("<= :now"),
            "missing counts an expired item as absent: {c}"
        );
        assert_eq!(e.names.get("#n0").map(String::as_str), Some("pk"));
        let mut e = Expr::default();
        assert_eq!(e.cond(&Cond::Always, 1), None);
        let mut e = Expr::default();
        let c = e
            .cond(&Cond::Or(vec![Cond::Always, Cond::Exists]), 1)
            .unwrap();
        assert!(
            c.contains("attribute_exists(#n0) OR attribute_not_exists(#n0)"),
            "{c}"
        );
    }

    #[test]
    fn a_combination_of_one_adds_no_parentheses() {
        let one = Expr::default()
            .cond(
                &Cond::And(vec![Cond::Exists, Cond::Or(vec![Cond::eq("s", "on")])]),
                1,
            )
            .unwrap();
        let bare = Expr::default()
            .cond(&Cond::And(vec![Cond::Exists, Cond::eq("s", "on")]), 1)
            .unwrap();
        assert_eq!(one, bare);
    }

    #[test]
    fn update_expressions_group_clauses() {
        let mut e = Expr::default();
        let u = e.update(
            &Update::new()
                .set("a", 1)
                .add("n", 2)
                .remove("r")
                .expire_at(5),
        );
        assert!(
            u.starts_with("SET ") && u.contains(" ADD ") && u.contains(" REMOVE "),
            "{u}"
        );
        let mut e = Expr::default();
        assert!(e.update(&Update::new()).starts_with("REMOVE "));
        let mut e = Expr::default();
        assert!(
            e.update(&Update::new().never_expire())
                .starts_with("REMOVE ")
        );
    }
}
