//! Structured audit events, emitted through `tracing` under the target `latchkey::audit`.
//! They carry ids, outcomes and reasons — never a secret, code, password or token.

use std::net::IpAddr;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    SignIn,
    SecondFactor,
    CodeSent,
    Session,
    Lockout,
    RateLimited,
    FactorEnrolled,
    FactorReset,
    TokensRevoked,
    UserCreated,
    UserChanged,
    UserDeleted,
    IntegrationCreated,
    IntegrationDeleted,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::SignIn => "sign_in",
            Event::SecondFactor => "second_factor",
            Event::CodeSent => "code_sent",
            Event::Session => "session",
            Event::Lockout => "lockout",
            Event::RateLimited => "rate_limited",
            Event::FactorEnrolled => "factor_enrolled",
            Event::FactorReset => "factor_reset",
            Event::TokensRevoked => "tokens_revoked",
            Event::UserCreated => "user_created",
            Event::UserChanged => "user_changed",
            Event::UserDeleted => "user_deleted",
            Event::IntegrationCreated => "integration_created",
            Event::IntegrationDeleted => "integration_deleted",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// One audit record.
#[derive(Clone, Debug)]
pub struct Audit {
    pub event: Event,
    pub outcome: Outcome,
    pub user_id: Option<u64>,
    pub ip: Option<IpAddr>,
    /// Dialect or channel: `magento`, `cli`, ...
    pub via: &'static str,
    /// A fixed reason word (`bad_password`, `unknown_user`, `replayed_code`, ...).
    pub reason: &'static str,
}

impl Audit {
    pub fn new(event: Event, outcome: Outcome, via: &'static str) -> Self {
        Self {
            event,
            outcome,
            user_id: None,
            ip: None,
            via,
            reason: "",
        }
    }
    pub fn user(mut self, id: u64) -> Self {
        self.user_id = Some(id);
        self
    }
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }
    pub fn reason(mut self, reason: &'static str) -> Self {
        self.reason = reason;
        self
    }

    pub fn emit(&self) {
        let outcome = match self.outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        };
        tracing::info!(
            target: "latchkey::audit",
            event = self.event.as_str(),
            outcome,
            user_id = self.user_id,
            ip = self.ip.map(|ip| ip.to_string()),
            via = self.via,
            reason = self.reason,
            "audit"
        );
    }
}
