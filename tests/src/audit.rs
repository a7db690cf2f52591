//! Captures the audit events (`tracing` target `latchkey::audit`) emitted while a test runs.

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// One captured audit event: its fields as text.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    pub fields: Vec<(String, String)>,
}

impl Captured {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
pub struct AuditLog(Arc<Mutex<Vec<Captured>>>);

impl AuditLog {
    pub fn events(&self) -> Vec<Captured> {
        self.0.lock().unwrap().clone()
    }

    /// Events with `event` = `kind` (and, if given, `reason` = `reason`).
    pub fn count(&self, kind: &str, reason: Option<&str>) -> usize {
        self.events()
            .iter()
            .filter(|e| {
                e.get("event") == Some(kind) && reason.is_none_or(|r| e.get("reason") == Some(r))
            })
            .count()
    }
}

struct Capture(AuditLog);

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        ));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "latchkey::audit" {
            return;
        }
        let mut captured = Captured::default();
        event.record(&mut Fields(&mut captured.fields));
        self.0.0.lock().unwrap().push(captured);
    }
}

/// Installs a capturing subscriber for the current thread; keep the guard alive while the
/// code under test runs (use a current-thread runtime so every task is on this thread).
pub fn capture() -> (AuditLog, tracing::subscriber::DefaultGuard) {
    let log = AuditLog::default();
    let subscriber = tracing_subscriber::registry().with(Capture(log.clone()));
    let guard = tracing::subscriber::set_default(subscriber);
    (log, guard)
}
