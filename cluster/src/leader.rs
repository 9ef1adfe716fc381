//! Lease-based leader election for the controllers and the scheduler, as client-go's `leaderelection`
//! package does it, through the API (a `coordination.k8s.io/v1` Lease in `kube-system`) so that several
//! `flotilla server` processes on one datastore run exactly one copy of each.
//!
//! A candidate takes the Lease when nobody holds it, when its holder released it, or when the record has
//! not changed for `leaseDurationSeconds` as measured on the candidate's own clock (like client-go, the
//! holder's `renewTime` is never compared with the local clock, so clock skew between machines does not
//! matter). Every write carries the Lease's resourceVersion, so two candidates racing for it cannot both
//! win. The leader renews every `retry_period`; when it has not managed to renew for `renew_deadline`
//! (shorter than the lease duration, so it stops before anyone else may start) or finds another holder, it
//! stops leading. On graceful shutdown it releases the Lease so another server takes over at once.
//!
//! The elected work runs on a runtime of its own: stopping leadership shuts that runtime down, which ends
//! every task the controllers spawned, without their code knowing about elections.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;

/// The namespace of the control plane's Leases.
pub const LEASE_NAMESPACE: &str = "kube-system";
/// The Lease of the controllers.
pub const CONTROLLERS_LEASE: &str = "flotilla-controllers";
/// The Lease of the scheduler.
pub const SCHEDULER_LEASE: &str = "flotilla-scheduler";

/// How long a Lease lasts and how often it is renewed (kube-controller-manager's `--leader-elect-*`
/// flags, with their defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a holder's claim lasts after its last renewal, as observed by the others.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Why a timing was refused.
#[derive(Debug, thiserror::Error)]
pub enum TimingError {
    #[error(
        "leader election: the lease duration ({lease:?}) must be longer than the renew deadline ({renew:?}), which \
         must be longer than the retry period ({retry:?}); hint: e.g. 15s, 10s and 2s"
    )]
    Order { lease: Duration, renew: Duration, retry: Duration },
}

impl Timing {
    /// Checks client-go's constraints: lease duration > renew deadline > retry period > 0.
    pub fn validate(&self) -> Result<(), TimingError> {
        if self.lease_duration > self.renew_deadline
            && self.renew_deadline > self.retry_period
            && !self.retry_period.is_zero()
        {
            Ok(())
        } else {
            Err(TimingError::Order { lease: self.lease_duration, renew: self.renew_deadline, retry: self.retry_period })
        }
    }
}

/// Parses a flag's duration as Go writes them: `15s`, `500ms`, `1m`, or plain seconds (`2.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        _ => return Err(format!("unknown unit {unit:?} in duration {text:?}; hint: use e.g. 15s or 500ms")),
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(Duration::from_secs_f64(n * scale)),
        _ => Err(format!("invalid duration {text:?}; hint: use e.g. 15s or 500ms")),
    }
}

/// The elected work: called at the start of every term, run on the term's own runtime.
pub type Work = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// One election: which Lease, who we are, how fast.
#[derive(Debug, Clone)]
pub struct Election {
    pub namespace: String,
    pub name: String,
    /// `<node>_<uuid>`: unique per process, readable in `kubectl get lease`.
    pub identity: String,
    pub timing: Timing,
}

impl Election {
    /// An election for the Lease `kube-system/<name>`; `identity` from [`identity`].
    pub fn new(name: &str, identity: &str, timing: Timing) -> Self {
        Self { namespace: LEASE_NAMESPACE.to_string(), name: name.to_string(), identity: identity.to_string(), timing }
    }
}

/// This process's identity in elections: `<node>_<uuid>`, as kube-controller-manager's `<host>_<uuid>`.
pub fn identity(node_name: &str) -> String {
    format!("{node_name}_{}", uuid::Uuid::new_v4())
}

/// The part of a Lease record that changes when anyone renews or takes it: seeing it change is what
/// tells a candidate that the holder is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: String,
    renew_time: Option<String>,
    transitions: i32,
    duration: Option<i32>,
}

impl Record {
    fn of(spec: &LeaseSpec) -> Self {
        Self {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0.to_string()),
            transitions: spec.lease_transitions.unwrap_or(0),
            duration: spec.lease_duration_seconds,
        }
    }
}

/// The last record seen and when (on our clock) it was first seen.
#[derive(Debug, Default)]
struct Observed {
    record: Option<(Record, Instant)>,
}

impl Observed {
    fn see(&mut self, record: Record, now: Instant) {
        match &self.record {
            Some((seen, _)) if *seen == record => {}
            _ => self.record = Some((record, now)),
        }
    }

    /// Someone else holds the Lease and has renewed it within its duration, as far as we can tell.
    fn held_by_other(&self, identity: &str, default_duration: Duration, now: Instant) -> bool {
        let Some((record, since)) = &self.record else { return false };
        if record.holder.is_empty() || record.holder == identity {
            return false;
        }
        let duration =
            record.duration.filter(|d| *d > 0).map(|d| Duration::from_secs(d as u64)).unwrap_or(default_duration);
        now.duration_since(*since) < duration
    }
}

fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

fn lease_seconds(timing: &Timing) -> i32 {
    // Whole seconds, as the API field is; at least one so the Lease never reads as already expired.
    timing.lease_duration.as_secs().clamp(1, i32::MAX as u64) as i32
}

/// One attempt to take or renew the Lease. Ok(true): we hold it now.
async fn try_acquire_or_renew(api: &Api<Lease>, election: &Election, observed: &mut Observed) -> kube::Result<bool> {
    let now = Instant::now();
    let Some(mut lease) = api.get_opt(&election.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(election.name.clone()),
                namespace: Some(election.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(election.identity.clone()),
                lease_duration_seconds: Some(lease_seconds(&election.timing)),
                acquire_time: Some(now_micro()),
                renew_time: Some(now_micro()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(created) => {
                observed.see(Record::of(created.spec.as_ref().unwrap_or(&LeaseSpec::default())), now);
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    observed.see(Record::of(&spec), now);
    if observed.held_by_other(&election.identity, election.timing.lease_duration, now) {
        return Ok(false);
    }
    let mut next = spec.clone();
    let renewing = spec.holder_identity.as_deref() == Some(election.identity.as_str());
    if !renewing {
        next.holder_identity = Some(election.identity.clone());
        next.acquire_time = Some(now_micro());
        next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    next.renew_time = Some(now_micro());
    next.lease_duration_seconds = Some(lease_seconds(&election.timing));
    lease.spec = Some(next);
    // The resourceVersion read above makes this a compare-and-swap: a racing candidate gets a conflict.
    match api.replace(&election.name, &PostParams::default(), &lease).await {
        Ok(updated) => {
            observed.see(Record::of(updated.spec.as_ref().unwrap_or(&LeaseSpec::default())), now);
            if !renewing {
                tracing::info!(lease = %election.name, identity = %election.identity, "acquired the lease");
            }
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up (holder cleared, duration 1 s), if we still hold it.
async fn release(api: &Api<Lease>, election: &Election) -> kube::Result<()> {
    let Some(mut lease) = api.get_opt(&election.name).await? else { return Ok(()) };
    let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
    if spec.holder_identity.as_deref() != Some(election.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(now_micro());
    spec.acquire_time = Some(now_micro());
    api.replace(&election.name, &PostParams::default(), &lease).await?;
    tracing::info!(lease = %election.name, identity = %election.identity, "released the lease");
    Ok(())
}

/// The work of one term, on its own runtime; dropping it ends every task the work spawned.
struct Term {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Term {
    fn start(name: &str, work: &Work) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("{name}-leader"))
            .enable_all()
            .build()?;
        runtime.spawn(work());
        Ok(Self { runtime: Some(runtime) })
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        // Does not wait for the tasks, so it is safe inside the async context we are called from.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Waits `period`, or less if shutdown comes first; true when shutting down.
async fn pause(period: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    let stopped = tokio::select! {
        _ = tokio::time::sleep(period) => false,
        _ = shutdown.wait_for(|stop| *stop) => true,
    };
    stopped || *shutdown.borrow()
}

/// Runs `work` whenever this process holds the Lease of `election`, until `shutdown` turns true; then
/// stops the work and releases the Lease.
pub async fn run(client: kube::Client, election: Election, work: Work, mut shutdown: watch::Receiver<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &election.namespace);
    let timing = election.timing;
    // Each API call is bounded so a hung connection cannot keep a leader from noticing it lost the Lease.
    let attempt_timeout = timing.renew_deadline.min(timing.lease_duration / 2).max(timing.retry_period);
    let mut observed = Observed::default();
    loop {
        // Candidate.
        loop {
            if *shutdown.borrow() {
                return;
            }
            match tokio::time::timeout(attempt_timeout, try_acquire_or_renew(&api, &election, &mut observed)).await {
                Ok(Ok(true)) => break,
                Ok(Ok(false)) => {}
                Ok(Err(err)) => tracing::debug!(lease = %election.name, error = %err, "cannot read or take the lease"),
                Err(_) => tracing::debug!(lease = %election.name, "taking the lease timed out"),
            }
            if pause(timing.retry_period, &mut shutdown).await {
                return;
            }
        }
        // Leader.
        let term = match Term::start(&election.name, &work) {
            Ok(term) => term,
            Err(err) => {
                tracing::error!(lease = %election.name, error = %err, "cannot start the elected work");
                if pause(timing.retry_period, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        tracing::info!(lease = %election.name, identity = %election.identity, "leading");
        let mut renewed = Instant::now();
        let lost = loop {
            if pause(timing.retry_period, &mut shutdown).await {
                break false;
            }
            match tokio::time::timeout(attempt_timeout, try_acquire_or_renew(&api, &election, &mut observed)).await {
                Ok(Ok(true)) => renewed = Instant::now(),
                Ok(Ok(false)) => break true,
                Ok(Err(err)) => tracing::warn!(lease = %election.name, error = %err, "cannot renew the lease"),
                Err(_) => tracing::warn!(lease = %election.name, "renewing the lease timed out"),
            }
            if renewed.elapsed() >= timing.renew_deadline {
                break true;
            }
        };
        drop(term);
        if !lost {
            if let Err(err) = tokio::time::timeout(attempt_timeout, release(&api, &election))
                .await
                .unwrap_or_else(|_| Err(kube::Error::Service("releasing the lease timed out".into())))
            {
                tracing::warn!(lease = %election.name, error = %err, "cannot release the lease");
            }
            return;
        }
        tracing::warn!(lease = %election.name, identity = %election.identity, "lost the lease; stopped leading");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str, renew: &str, duration: i32) -> Record {
        Record { holder: holder.into(), renew_time: Some(renew.into()), transitions: 0, duration: Some(duration) }
    }

    #[test]
    fn a_fresh_holder_keeps_the_lease_until_its_record_stops_changing() {
        let t0 = Instant::now();
        let mut seen = Observed::default();
        seen.see(record("a", "1", 15), t0);
        assert!(seen.held_by_other("b", Duration::from_secs(15), t0 + Duration::from_secs(14)));
        assert!(!seen.held_by_other("b", Duration::from_secs(15), t0 + Duration::from_secs(15)));
        // A renewal restarts the clock, whatever its timestamp says.
        seen.see(record("a", "2", 15), t0 + Duration::from_secs(10));
        assert!(seen.held_by_other("b", Duration::from_secs(15), t0 + Duration::from_secs(20)));
        // Seeing the same record again does not.
        seen.see(record("a", "2", 15), t0 + Duration::from_secs(20));
        assert!(!seen.held_by_other("b", Duration::from_secs(15), t0 + Duration::from_secs(26)));
    }

    #[test]
    fn own_or_released_leases_are_free() {
        let t0 = Instant::now();
        let mut seen = Observed::default();
        seen.see(record("a", "1", 15), t0);
        assert!(!seen.held_by_other("a", Duration::from_secs(15), t0));
        seen.see(record("", "2", 1), t0);
        assert!(!seen.held_by_other("b", Duration::from_secs(15), t0));
        assert!(!Observed::default().held_by_other("b", Duration::from_secs(15), t0));
    }

    #[test]
    fn durations_parse_as_go_flags() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("3h").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn timing_must_be_ordered() {
        assert!(Timing::default().validate().is_ok());
        let bad = Timing {
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(2),
            retry_period: Duration::from_millis(500),
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("must be longer than the renew deadline"), "{err}");
    }
}
