//! How fast each user may send: a per-user GCRA limit (`governor`), a burst of
//! [`BURST_SECONDS`] worth of messages, then the configured rate.

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

/// Seconds' worth of messages a user may send at once.
pub const BURST_SECONDS: u32 = 3;

pub struct SendLimit {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl SendLimit {
    /// `rate` messages per second per user (at least one).
    pub fn new(rate: u32) -> Self {
        let rate = NonZeroU32::new(rate.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = rate.saturating_mul(NonZeroU32::new(BURST_SECONDS).unwrap_or(NonZeroU32::MIN));
        SendLimit {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    /// Takes one message from `user`'s budget; `false` when they are sending too fast.
    pub fn allow(&self, user: &str) -> bool {
        self.limiter.check_key(&user.to_owned()).is_ok()
    }

    /// Forgets users whose budget is full again (they would start from a full one anyway).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// How many users' budgets are held.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sending_is_limited_to_a_burst_then_the_rate_per_user() {
        let limit = SendLimit::new(20);
        let allowed = (0..100).filter(|_| limit.allow("alice")).count();
        assert_eq!(allowed, 60);
        assert!(limit.allow("bob"), "budgets are per user");
    }

    #[test]
    fn idle_users_are_forgotten() {
        let limit = SendLimit::new(1000);
        for i in 0..50 {
            assert!(limit.allow(&format!("user{i}")));
        }
        assert_eq!(limit.held(), 50);
        // A budget of 3,000 refills one message in a millisecond.
        std::thread::sleep(std::time::Duration::from_millis(20));
        limit.forget_idle();
        assert_eq!(limit.held(), 0);
    }
}
