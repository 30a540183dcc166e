//! Rate limiting per target shard: token buckets for records and bytes, and an AIMD factor that
//! halves a shard's rate when Kinesis throttles it and recovers additively while it does not.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `rate` tokens per second, holding at most one second's worth. Taking more
/// than is there leaves a debt that later callers wait out, so one large request is allowed
/// (a PutRecords batch may exceed a second of a shard's budget) and the average rate holds.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `rate` tokens per second.
    pub fn new(rate: f64, now: Instant) -> Self {
        TokenBucket {
            rate,
            tokens: rate,
            last: now,
        }
    }

    /// The refill rate (tokens per second).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Changes the refill rate (keeps the tokens, capped at one second's worth).
    pub fn set_rate(&mut self, rate: f64, now: Instant) {
        self.refill(now);
        self.rate = rate;
        self.tokens = self.tokens.min(rate);
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        self.last = now;
    }

    /// How long to wait before `n` tokens may be taken: until the bucket holds `n`, or is full
    /// when `n` exceeds its capacity.
    pub fn wait(&mut self, n: f64, now: Instant) -> Duration {
        self.refill(now);
        let need = n.min(self.rate);
        if self.tokens >= need {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((need - self.tokens) / self.rate)
        }
    }

    /// Takes `n` tokens (possibly into debt).
    pub fn take(&mut self, n: f64, now: Instant) {
        self.refill(now);
        self.tokens -= n;
    }
}

/// Lowest fraction of the configured rate AIMD goes down to.
const MIN_FACTOR: f64 = 1.0 / 32.0;
/// Fraction of the configured rate regained per second without throttling.
const RECOVERY_PER_SECOND: f64 = 0.05;

/// One shard's limits: records and bytes per second, scaled by an AIMD factor.
#[derive(Debug, Clone)]
pub struct ShardRate {
    records: TokenBucket,
    bytes: TokenBucket,
    base: (f64, f64),
    factor: f64,
    adjusted: Instant,
}

impl ShardRate {
    /// Limits of `records` and `bytes` per second.
    pub fn new(records: f64, bytes: f64, now: Instant) -> Self {
        ShardRate {
            records: TokenBucket::new(records, now),
            bytes: TokenBucket::new(bytes, now),
            base: (records, bytes),
            factor: 1.0,
            adjusted: now,
        }
    }

    /// The fraction of the configured rate currently allowed.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// Current records per second.
    pub fn records_per_second(&self) -> f64 {
        self.records.rate()
    }

    /// What one call may carry for this shard: a second of its current rate (at least one
    /// record).
    pub fn cap(&mut self, now: Instant) -> super::batch::ShardCap {
        self.recover(now);
        super::batch::ShardCap {
            records: (self.records.rate().floor() as usize).max(1),
            bytes: (self.bytes.rate().floor() as usize).max(1),
        }
    }

    fn apply(&mut self, now: Instant) {
        self.records.set_rate(self.base.0 * self.factor, now);
        self.bytes.set_rate(self.base.1 * self.factor, now);
    }

    /// Wait before sending `records` records of `bytes` bytes to this shard.
    pub fn wait(&mut self, records: usize, bytes: usize, now: Instant) -> Duration {
        self.recover(now);
        self.records
            .wait(records as f64, now)
            .max(self.bytes.wait(bytes as f64, now))
    }

    /// Accounts for records sent.
    pub fn take(&mut self, records: usize, bytes: usize, now: Instant) {
        self.records.take(records as f64, now);
        self.bytes.take(bytes as f64, now);
    }

    /// The shard throttled: halve the rate (multiplicative decrease).
    pub fn throttled(&mut self, now: Instant) {
        self.factor = (self.factor / 2.0).max(MIN_FACTOR);
        self.adjusted = now;
        self.apply(now);
    }

    /// Additive increase: regain [`RECOVERY_PER_SECOND`] of the base rate per second since the
    /// last adjustment.
    fn recover(&mut self, now: Instant) {
        if self.factor >= 1.0 {
            self.adjusted = now;
            return;
        }
        let dt = now.saturating_duration_since(self.adjusted).as_secs_f64();
        if dt >= 0.1 {
            self.factor = (self.factor + dt * RECOVERY_PER_SECOND).min(1.0);
            self.adjusted = now;
            self.apply(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_rate_on_average() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0, t0);
        assert_eq!(b.wait(100.0, t0), Duration::ZERO);
        b.take(100.0, t0);
        // Empty: 50 tokens take half a second.
        assert_eq!(b.wait(50.0, t0), Duration::from_millis(500));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.wait(50.0, t1), Duration::ZERO);
        // Never more than a second's worth is stored.
        let t2 = t1 + Duration::from_secs(60);
        b.take(0.0, t2);
        assert_eq!(b.wait(100.0, t2), Duration::ZERO);
        b.take(100.0, t2);
        assert!(b.wait(1.0, t2) > Duration::ZERO);
    }

    #[test]
    fn a_request_larger_than_the_bucket_leaves_a_debt() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0, t0);
        // 300 at once is allowed from a full bucket, and then the next 100 wait 3 s.
        assert_eq!(b.wait(300.0, t0), Duration::ZERO);
        b.take(300.0, t0);
        assert_eq!(b.wait(100.0, t0), Duration::from_secs(3));
    }

    #[test]
    fn sending_n_records_takes_n_over_rate_seconds() {
        let t0 = Instant::now();
        let mut r = ShardRate::new(200.0, 1e9, t0);
        let mut now = t0;
        for _ in 0..20 {
            now += r.wait(50, 10, now);
            r.take(50, 10, now);
        }
        // 1000 records at 200/s with one second of burst: 4 s.
        let took = now.duration_since(t0).as_secs_f64();
        assert!((3.7..=4.05).contains(&took), "{took}");
    }

    #[test]
    fn throttling_halves_and_recovery_is_additive() {
        let t0 = Instant::now();
        let mut r = ShardRate::new(1000.0, 1e6, t0);
        r.throttled(t0);
        assert_eq!(r.factor(), 0.5);
        r.throttled(t0);
        assert_eq!(r.factor(), 0.25);
        assert_eq!(r.records_per_second(), 250.0);
        for _ in 0..20 {
            r.throttled(t0);
        }
        assert_eq!(r.factor(), MIN_FACTOR);
        // 5% of the base per second: from 1/32 to 1 in about 19.4 s.
        let _ = r.wait(1, 1, t0 + Duration::from_secs(10));
        assert!((r.factor() - (MIN_FACTOR + 0.5)).abs() < 1e-9);
        let _ = r.wait(1, 1, t0 + Duration::from_secs(30));
        assert_eq!(r.factor(), 1.0);
        assert_eq!(r.records_per_second(), 1000.0);
    }
}
