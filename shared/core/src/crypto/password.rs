//! argon2id password hashing (PHC strings) with an equal-cost path for unknown users, and a
//! bound on how many hashes run at once.
//!
//! Each hash holds 19 MiB for tens of milliseconds. Unbounded, a flood of sign-ins runs one per
//! request on the blocking pool (hundreds at once: gigabytes, and every answer late). So every
//! hash first takes a [`HashSlot`] — one per CPU by default — and a request that gets none
//! within the configured wait is refused at once with [`Busy`], which dialects answer as a
//! retryable 503. The slot travels into the blocking task and is freed when the hash ends, even
//! if the request was dropped meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use argon2::{
    Algorithm, Argon2, CustomizedPasswordHasher, Params, PasswordHash, PasswordVerifier, Version,
};

use super::CryptoError;
use super::spent::{Spent, Tally};
use crate::ports::{Rng, RngExt};

/// OWASP's argon2id parameters: 19 MiB, 2 iterations, 1 lane.
pub const OWASP_M_KIB: u32 = 19 * 1024;
pub const OWASP_T: u32 = 2;
pub const OWASP_P: u32 = 1;

const SALT_LEN: usize = 16;

/// A fresh salt for one password hash.
#[derive(Clone, Copy, Debug)]
pub struct Salt([u8; SALT_LEN]);

impl Salt {
    pub fn draw(rng: &dyn Rng) -> Result<Self, CryptoError> {
        Ok(Self(rng.bytes()?))
    }
}

/// Hashes and verifies passwords. Cheap to clone (shares its state); verification is CPU-bound
/// (tens of ms), so async callers run it on a blocking thread.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    /// argon2 computations so far (hashes, verifications and equal-cost burns alike), so tests
    /// can prove that every path of a sign-in costs exactly one.
    runs: AtomicU64,
    /// The requests' waits for the hashing threads: from handing a hash over to having its
    /// result, the hash and both hand-offs between threads (see [`PasswordHasher::waited`]).
    waited: Spent,
    /// What the unknown-user path verifies against: a PHC string of this hasher's parameters
    /// with a random salt and a random output, which no password matches (see [`dummy_phc`]).
    dummy_phc: String,
    /// One permit per hash allowed to run at once.
    slots: Arc<Semaphore>,
    /// How long [`PasswordHasher::slot`] waits for a permit.
    wait: Duration,
    /// The threads that run the hashes, one per slot (see [`Workers`]), started by the first
    /// hash: most functions never hash a password, and a cold start need not start threads.
    workers: std::sync::OnceLock<Workers>,
    concurrency: usize,
}

/// No hashing slot freed up within the wait: the caller should answer "try again shortly".
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("every password hashing slot is busy")]
pub struct Busy;

/// The right to run one hash now. Hand it the work with [`HashSlot::run`].
#[must_use = "a slot does nothing until it runs a hash"]
pub struct HashSlot {
    hasher: PasswordHasher,
    permit: OwnedSemaphorePermit,
}

/// The hash never ran to its end (its worker thread is gone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the password hashing thread failed")]
pub struct HashFailed;

impl HashSlot {
    /// Runs `work` on one of the hasher's own threads; the slot is freed when `work` returns.
    pub async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce(&PasswordHasher) -> T + Send + 'static,
    ) -> Result<T, HashFailed> {
        let HashSlot { hasher, permit } = self;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start = Spent::start();
        let workers = hasher.workers().clone();
        let inner = hasher.inner.clone();
        workers.submit(Box::new(move || {
            let out = work(&hasher);
            drop(permit);
            let _ = tx.send(out);
        }))?;
        let out = rx.await.map_err(|_| HashFailed);
        inner.waited.add(start);
        out
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The threads that run argon2, one per slot, for the life of the hasher. Not tokio's blocking
/// pool: there a flood of sign-ins spreads the hashes over hundreds of threads, each keeping
/// the freed 19 MiB blocks in its own malloc arena, and the process grew by 650 MB/s to a peak
/// of 13.9 GB (SECURITY.md). On as many threads as slots, the memory stays slots × 19 MiB.
/// (A thread pool crate would bring its own scheduler for what is one queue.)
#[derive(Clone)]
struct Workers(Arc<std::sync::Mutex<std::sync::mpsc::Sender<Job>>>);

impl Workers {
    fn start(threads: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            // A thread that cannot start leaves the others to serve the queue.
            let _ = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            // A panicking hash fails its own request, not the thread.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return, // every hasher handle is gone
                        }
                    }
                });
        }
        Self(Arc::new(std::sync::Mutex::new(tx)))
    }

    fn submit(&self, job: Job) -> Result<(), HashFailed> {
        let tx = self.0.lock().map_err(|_| HashFailed)?;
        tx.send(job).map_err(|_| HashFailed)
    }
}

/// A PHC string as a stored hash of `params` looks, with a random salt and a random 32-byte
/// output: verifying a password against it costs what verifying against a user's hash does,
/// and fails (a match would need the output's preimage). Written out by hand rather than
/// hashed, so that no hasher costs a hash to build (a Lambda cold start would pay it).
fn dummy_phc(params: &Params, rng: &dyn Rng) -> Result<String, CryptoError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let salt: [u8; SALT_LEN] = rng.bytes()?;
    let output: [u8; 32] = rng.bytes()?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        b64.encode(salt),
        b64.encode(output)
    ))
}

impl PasswordHasher {
    /// OWASP parameters.
    pub fn new(rng: &dyn Rng) -> Result<Self, CryptoError> {
        Self::with_params(OWASP_M_KIB, OWASP_T, OWASP_P, rng)
    }

    /// Other parameters (tests use cheaper ones).
    pub fn with_params(m_kib: u32, t: u32, p: u32, rng: &dyn Rng) -> Result<Self, CryptoError> {
        let params = Params::new(m_kib, t, p, None)
            .map_err(|e| CryptoError::Input(format!("argon2 parameters: {e}")))?;
        let limits = crate::config::HashLimits::default();
        Ok(Self {
            inner: Arc::new(Inner {
                dummy_phc: dummy_phc(&params, rng)?,
                params,
                runs: AtomicU64::new(0),
                waited: Spent::default(),
                slots: Arc::new(Semaphore::new(limits.concurrency)),
                wait: Duration::from_millis(limits.wait_ms),
                workers: std::sync::OnceLock::new(),
                concurrency: limits.concurrency,
            }),
        })
    }

    /// The same hasher with `limits.concurrency` hashes at once (at least one) and a wait of
    /// `limits.wait_ms` for a turn. Call it while building the application, before any clone.
    pub fn limited(self, limits: crate::config::HashLimits) -> Self {
        let concurrency = limits.concurrency.max(1);
        Self {
            inner: Arc::new(Inner {
                params: self.inner.params.clone(),
                runs: AtomicU64::new(self.runs()),
                waited: Spent::default(),
                dummy_phc: self.inner.dummy_phc.clone(),
                slots: Arc::new(Semaphore::new(concurrency)),
                wait: Duration::from_millis(limits.wait_ms),
                workers: std::sync::OnceLock::new(),
                concurrency,
            }),
        }
    }

    /// Starts the hashing threads now rather than at the first hash: a long-running server's
    /// first sign-in then does not pay for them (a few hundred µs here; a function, whose cold
    /// start should not, leaves them to its first hash).
    pub fn start_workers(&self) {
        self.workers();
    }

    /// The hashing threads, started by whichever comes first: a hash or [`Self::start_workers`].
    fn workers(&self) -> &Workers {
        self.inner
            .workers
            .get_or_init(|| Workers::start(self.inner.concurrency))
    }

    /// How many hashes may run at once.
    pub fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// A turn to hash: at once if a slot is free, else the first to free up within the wait.
    /// Waiting requests are served in arrival order.
    pub async fn slot(&self) -> Result<HashSlot, Busy> {
        let slots = self.inner.slots.clone();
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(Busy),
            Err(TryAcquireError::NoPermits) => {
                match tokio::time::timeout(self.inner.wait, slots.acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) | Err(_) => return Err(Busy),
                }
            }
        };
        Ok(HashSlot {
            hasher: self.clone(),
            permit,
        })
    }

    /// How many argon2 computations this hasher (and its clones) made.
    pub fn runs(&self) -> u64 {
        self.inner.runs.load(Ordering::Relaxed)
    }

    /// How many hashes requests handed to the hashing threads, and how long they waited for
    /// them in all (the hash and the hand-offs; a wait for a free slot is not counted). The
    /// flows benchmark times a handler outside it (infra/BENCH.md).
    pub fn waited(&self) -> Tally {
        self.inner.waited.tally()
    }

    fn argon2(&self) -> Argon2<'static> {
        self.inner.runs.fetch_add(1, Ordering::Relaxed);
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            self.inner.params.clone(),
        )
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) with a fresh 16-byte salt.
    pub fn hash(&self, password: &str, rng: &dyn Rng) -> Result<String, CryptoError> {
        self.hash_with_salt(password, &Salt::draw(rng)?)
    }

    /// As [`Self::hash`], with a salt drawn beforehand (so the hash can run on another thread
    /// than the one holding the randomness port).
    pub fn hash_with_salt(&self, password: &str, salt: &Salt) -> Result<String, CryptoError> {
        let salt = salt.0;
        let hash = self
            .argon2()
            .hash_password_customized(
                password.as_bytes(),
                &salt,
                None,
                None,
                self.inner.params.clone(),
            )
            .map_err(|e| CryptoError::Failure(format!("argon2: {e}")))?;
        Ok(hash.to_string())
    }

    /// Whether `password` matches `phc`; false for a malformed PHC string. The parameters
    /// recorded in the PHC string are the ones used.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        match PasswordHash::new(phc) {
            Ok(hash) if hash.algorithm.as_str() == "argon2id" => self
                .argon2()
                .verify_password(password.as_bytes(), &hash)
                .is_ok(),
            _ => false,
        }
    }

    /// Does the work of one failed `verify` — the same code, against a hash of this hasher's
    /// parameters — so that an unknown user costs what a known one does.
    pub fn verify_unknown_user(&self, password: &str) {
        let _ = self.verify(password, &self.inner.dummy_phc);
    }

    /// Whether `phc` was made with other parameters (or another algorithm) than this hasher's.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return true;
        };
        let Ok(params) = Params::try_from(&hash) else {
            return true;
        };
        hash.algorithm.as_str() != "argon2id"
            || params.m_cost() != self.inner.params.m_cost()
            || params.t_cost() != self.inner.params.t_cost()
            || params.p_cost() != self.inner.params.p_cost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SeededRng;

    fn cheap() -> PasswordHasher {
        PasswordHasher::with_params(256, 1, 1, &SeededRng::new(1)).unwrap()
    }

    /// A hasher starts its threads at its first hash, as many as its slots, and only once.
    #[tokio::test]
    async fn hash_threads_start_at_the_first_hash() {
        let limits = crate::config::HashLimits {
            concurrency: 3,
            wait_ms: 500,
        };
        let h = cheap().limited(limits);
        assert!(h.inner.workers.get().is_none(), "no threads before a hash");
        let rng = std::sync::Arc::new(SeededRng::new(4));
        let phc = h
            .slot()
            .await
            .unwrap()
            .run(move |h| h.hash("pw", rng.as_ref()))
            .await
            .unwrap()
            .unwrap();
        let first = h.inner.workers.get().map(|w| Arc::as_ptr(&w.0));
        assert!(first.is_some(), "threads once a hash ran");
        let again = h.slot().await.unwrap().run(move |h| h.verify("pw", &phc));
        assert!(again.await.unwrap());
        assert_eq!(h.inner.workers.get().map(|w| Arc::as_ptr(&w.0)), first);
    }

    /// The wait a request spends on its hash is counted and timed, and what runs outside a
    /// slot (a hash on the caller's thread, as the CLI's) is not.
    #[tokio::test]
    async fn waits_for_the_hashing_threads_are_counted_and_timed() {
        let h = cheap();
        let rng = SeededRng::new(5);
        let phc = h.hash("pw", &rng).unwrap();
        assert_eq!(h.waited(), Tally::default(), "a direct hash is no wait");
        let slow = std::time::Duration::from_millis(2);
        let waited = h
            .slot()
            .await
            .unwrap()
            .run(move |h| {
                let start = Spent::start();
                while start.elapsed() < slow {
                    std::hint::black_box(h.verify("pw", &phc));
                }
            })
            .await;
        assert!(waited.is_ok());
        let w = h.waited();
        assert_eq!(w.count, 1);
        assert!(w.time >= slow, "the wait covers the work: {w:?}");
    }

    #[test]
    fn round_trip_and_wrong_password() {
        let h = cheap();
        let phc = h.hash("correct horse", &SeededRng::new(2)).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=256,t=1,p=1$"));
        assert!(h.verify("correct horse", &phc));
        assert!(!h.verify("correct horsf", &phc));
        assert!(!h.verify("", &phc));
    }

    #[test]
    fn salts_differ_per_hash() {
        let h = cheap();
        let rng = SeededRng::new(3);
        assert_ne!(h.hash("same", &rng).unwrap(), h.hash("same", &rng).unwrap());
    }

    #[test]
    fn malformed_or_foreign_hashes_never_verify() {
        let h = cheap();
        for bad in [
            "",
            "plain",
            "$argon2id$v=19$m=256,t=1,p=1$",
            "$2b$12$abcdefghijklmnopqrstuv",
        ] {
            assert!(!h.verify("x", bad), "{bad}");
            assert!(h.needs_rehash(bad));
        }
        // argon2i with the right password is still refused: only argon2id is ours.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(256, 1, 1, None).unwrap(),
        )
        .hash_password_customized(
            b"pw",
            b"saltsaltsaltsalt",
            Some("argon2i"),
            None,
            Params::new(256, 1, 1, None).unwrap(),
        )
        .unwrap()
        .to_string();
        assert!(argon2i.starts_with("$argon2i$"));
        assert!(!h.verify("pw", &argon2i));
    }

    #[test]
    fn owasp_parameters_are_recorded_and_honoured() {
        let owasp = PasswordHasher::new(&SeededRng::new(4)).unwrap();
        let phc = owasp.hash("pw", &SeededRng::new(5)).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!owasp.needs_rehash(&phc));
        // A hasher with other parameters still verifies it (parameters come from the PHC string)
        // and says it should be re-hashed.
        let other = cheap();
        assert!(other.verify("pw", &phc));
        assert!(other.needs_rehash(&phc));
    }

    #[test]
    fn the_unknown_user_path_does_one_hash_of_the_configured_cost() {
        // Counted: exactly one argon2 computation, like a verification.
        let h = cheap();
        let before = h.runs();
        h.verify_unknown_user("anything");
        assert_eq!(h.runs(), before + 1);
        let phc = h.hash("pw", &SeededRng::new(6)).unwrap();
        let before = h.runs();
        assert!(!h.verify("other", &phc));
        assert_eq!(h.runs(), before + 1, "a wrong password costs one as well");
        // Of the configured cost, not a cheaper one: argon2's memory cost dominates, and the
        // decoy is a hash of this hasher's parameters, in the form of a stored one.
        let decoy = &h.inner.dummy_phc;
        assert!(
            decoy.starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
            "{decoy}"
        );
        assert!(PasswordHash::new(decoy).is_ok(), "{decoy}");
        assert_eq!(decoy.len(), phc.len(), "as long as a real hash");
        assert!(!h.needs_rehash(decoy));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slots_bound_concurrent_hashes_and_refuse_after_the_wait() {
        use crate::config::HashLimits;
        let h = cheap().limited(HashLimits {
            concurrency: 2,
            wait_ms: 0,
        });
        assert_eq!(h.concurrency(), 2);
        let a = h.slot().await.unwrap();
        let b = h.slot().await.unwrap();
        assert!(h.slot().await.is_err(), "a third hash waits for nobody");
        // A slot is freed when its work is done, not before.
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let running = tokio::spawn(a.run(move |_| {
            started_tx.send(()).unwrap();
            go_rx.recv().unwrap();
        }));
        started_rx.recv().unwrap();
        assert!(h.slot().await.is_err(), "still hashing");
        go_tx.send(()).unwrap();
        running.await.unwrap().unwrap();
        let c = h.slot().await.unwrap();
        drop((b, c));
        // With a wait, a request gets the next slot that frees up within it.
        let h = cheap().limited(HashLimits {
            concurrency: 1,
            wait_ms: 5_000,
        });
        let first = h.slot().await.unwrap();
        let waiter = {
            let h = h.clone();
            tokio::spawn(async move { h.slot().await.is_ok() })
        };
        tokio::task::yield_now().await;
        drop(first);
        assert!(waiter.await.unwrap());
    }
}
