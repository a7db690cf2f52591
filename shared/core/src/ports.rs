//! The small ports besides the store: clock, randomness, mail and SMS delivery.
//! Each has a production implementation here or in an adapter crate, and a test double.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use async_trait::async_trait;

/// Wall-clock time. The only way the core learns what time it is.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Seconds since the Unix epoch.
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the system clock
    fn now_ms(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }
}

/// A clock that only moves when told to. Tests use it instead of sleeping.
#[derive(Debug)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    pub fn at(secs: i64) -> Self {
        Self {
            ms: AtomicI64::new(secs.saturating_mul(1000)),
        }
    }
    pub fn advance(&self, secs: i64) {
        self.ms
            .fetch_add(secs.saturating_mul(1000), Ordering::SeqCst);
    }
    pub fn set(&self, secs: i64) {
        self.ms.store(secs.saturating_mul(1000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RngFailure;

/// Cryptographically secure randomness.
pub trait Rng: Send + Sync {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RngFailure>;
}

/// Randomness helpers over any [`Rng`].
pub trait RngExt: Rng {
    fn bytes<const N: usize>(&self) -> Result<[u8; N], RngFailure> {
        let mut out = [0u8; N];
        self.fill(&mut out)?;
        Ok(out)
    }

    fn vec(&self, len: usize) -> Result<Vec<u8>, RngFailure> {
        let mut out = vec![0u8; len];
        self.fill(&mut out)?;
        Ok(out)
    }

    /// A uniform integer in `0..bound` (`bound` > 0), without modulo bias.
    fn below(&self, bound: u64) -> Result<u64, RngFailure> {
        let bound = bound.max(1);
        // Reject the top partial range so every residue is equally likely.
        let zone = u64::MAX - (u64::MAX % bound) - 1;
        loop {
            let n = u64::from_le_bytes(self.bytes::<8>()?);
            if n <= zone {
                return Ok(n % bound);
            }
        }
    }
}

impl<R: Rng + ?Sized> RngExt for R {}

/// The operating system's CSPRNG.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemRng;

impl Rng for SystemRng {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RngFailure> {
        getrandom::fill(dest).map_err(|_| RngFailure)
    }
}

/// Deterministic randomness for tests: SHA-256 of a seed and a counter. Never use for keys.
#[derive(Debug)]
pub struct SeededRng {
    seed: u64,
    counter: AtomicU64,
}

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            counter: AtomicU64::new(0),
        }
    }
}

impl Rng for SeededRng {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RngFailure> {
        use sha2::Digest;
        for chunk in dest.chunks_mut(32) {
            let n = self.counter.fetch_add(1, Ordering::SeqCst);
            let mut h = sha2::Sha256::new();
            h.update(self.seed.to_le_bytes());
            h.update(n.to_le_bytes());
            let block = h.finalize();
            for (d, s) in chunk.iter_mut().zip(block.iter()) {
                *d = *s;
            }
        }
        Ok(())
    }
}

/// Delivery failures, as the adapters report them after their own bounded retries.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Throttled or briefly unavailable: the caller may try again later.
    #[error("delivery temporarily unavailable: {0}")]
    Retryable(String),
    /// Refused for good (bad address, account not allowed to send, ...).
    #[error("delivery refused: {0}")]
    Rejected(String),
}

/// One email. `text` is the plain-text body; `html` an optional HTML alternative.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

// Bodies carry codes and links: Debug shows only the envelope.
impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// One text message to an E.164 number.
#[derive(Clone, PartialEq, Eq)]
pub struct Sms {
    pub to: String,
    pub body: String,
}

impl std::fmt::Debug for Sms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sms").finish_non_exhaustive()
    }
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send_email(&self, email: &Email) -> Result<(), SendError>;
}

#[async_trait]
pub trait SmsSender: Send + Sync {
    async fn send_sms(&self, sms: &Sms) -> Result<(), SendError>;
}

/// Where a request to email a login link goes once it is stored. On AWS nothing needs telling:
/// the table's stream hands the stored request to the `link-mailer` function. The local server
/// runs the same mailer in-process and is told here, so the link is in the outbox at once.
pub trait LinkQueue: Send + Sync {
    /// The mail request at `key` was stored.
    fn requested(&self, key: &crate::store::Key);
}

/// The queue of a deployment whose table stream feeds the mailer (nothing to do).
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamQueue;

impl LinkQueue for StreamQueue {
    fn requested(&self, _: &crate::store::Key) {}
}

/// A queue that keeps the requests, for tests to hand to the mailer when they choose.
#[derive(Debug, Default)]
pub struct RecordingQueue(Mutex<Vec<crate::store::Key>>);

impl RecordingQueue {
    /// The requests queued since the last call.
    pub fn take(&self) -> Vec<crate::store::Key> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

impl LinkQueue for RecordingQueue {
    fn requested(&self, key: &crate::store::Key) {
        if let Ok(mut v) = self.0.lock() {
            v.push(key.clone());
        }
    }
}

/// Checks a reCAPTCHA response token (the `g-recaptcha-response` a page got from Google's
/// widget). Production calls Google's siteverify over HTTPS (`latchkey_aws::recaptcha`); tests
/// and the local server use [`FakeRecaptcha`].
#[async_trait]
pub trait Recaptcha: Send + Sync {
    /// Whether `response` proves a human, for the client at `ip`. `Err` when the verifier could
    /// not be asked (the caller refuses: no answer is no proof).
    async fn verify(&self, response: &str, ip: std::net::IpAddr) -> Result<bool, SendError>;
}

/// A reCAPTCHA verifier that passes exactly one response token: Google's published test
/// response `FakeRecaptcha::PASS` by default. For tests and the local server; never production.
#[derive(Clone, Debug)]
pub struct FakeRecaptcha {
    pass: String,
}

impl FakeRecaptcha {
    pub const PASS: &'static str = "latchkey-test-recaptcha-pass";

    pub fn new() -> Self {
        Self {
            pass: Self::PASS.to_owned(),
        }
    }
}

impl FakeRecaptcha {
    /// A verifier that passes nothing (where reCAPTCHA is off, nothing asks it).
    pub fn refusing() -> Self {
        Self {
            pass: String::new(),
        }
    }
}

impl Default for FakeRecaptcha {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Recaptcha for FakeRecaptcha {
    async fn verify(&self, response: &str, _ip: std::net::IpAddr) -> Result<bool, SendError> {
        use subtle::ConstantTimeEq;
        Ok(!self.pass.is_empty() && bool::from(response.as_bytes().ct_eq(self.pass.as_bytes())))
    }
}

/// A mailer and SMS sender that keep what they were given, for tests.
#[derive(Debug, Default)]
pub struct RecordingOutbox {
    pub emails: Mutex<Vec<Email>>,
    pub sms: Mutex<Vec<Sms>>,
    /// When set, every send fails: `Some(true)` as retryable, `Some(false)` as refused.
    failing: Mutex<Option<bool>>,
}

impl RecordingOutbox {
    /// Makes every later send fail (`Some(retryable)`), or succeed again (`None`).
    pub fn fail_sends(&self, retryable: Option<bool>) {
        if let Ok(mut f) = self.failing.lock() {
            *f = retryable;
        }
    }

    fn refusal(&self) -> Result<(), SendError> {
        match self.failing.lock().map(|f| *f) {
            Ok(Some(true)) => Err(SendError::Retryable("test: failing".into())),
            Ok(Some(false)) => Err(SendError::Rejected("test: failing".into())),
            _ => Ok(()),
        }
    }

    pub fn emails(&self) -> Vec<Email> {
        self.emails.lock().map(|v| v.clone()).unwrap_or_default()
    }
    pub fn texts(&self) -> Vec<Sms> {
        self.sms.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Mailer for RecordingOutbox {
    async fn send_email(&self, email: &Email) -> Result<(), SendError> {
        self.refusal()?;
        self.emails
            .lock()
            .map_err(|_| SendError::Rejected("poisoned".into()))?
            .push(email.clone());
        Ok(())
    }
}

#[async_trait]
impl SmsSender for RecordingOutbox {
    async fn send_sms(&self, sms: &Sms) -> Result<(), SendError> {
        self.refusal()?;
        self.sms
            .lock()
            .map_err(|_| SendError::Rejected("poisoned".into()))?
            .push(sms.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at(100);
        assert_eq!(c.now(), 100);
        c.advance(30);
        assert_eq!(c.now(), 130);
        assert_eq!(c.now_ms(), 130_000);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let rng = SeededRng::new(7);
        let mut seen = [false; 10];
        for _ in 0..500 {
            let n = rng.below(10).unwrap();
            seen[n as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn seeded_rng_is_repeatable_and_system_rng_is_not_constant() {
        let a: [u8; 40] = SeededRng::new(1).bytes().unwrap();
        let b: [u8; 40] = SeededRng::new(1).bytes().unwrap();
        assert_eq!(a, b);
        let x: [u8; 16] = SystemRng.bytes().unwrap();
        let y: [u8; 16] = SystemRng.bytes().unwrap();
        assert_ne!(x, y);
    }
}
