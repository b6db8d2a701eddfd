//! How fast each user may act: per-user GCRA limits (`governor`) for sending (a burst of
//! [`BURST_SECONDS`] worth of messages, then the configured rate), creating rooms,
//! searching and saying one is typing.

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

/// Seconds' worth of messages a user may send at once.
pub const BURST_SECONDS: u32 = 3;
/// Rooms a user may create at once, before the hourly rate applies.
pub const ROOM_BURST: u32 = 5;
/// Searches per second per user, and at once.
const SEARCHES_PER_SECOND: u32 = 5;
const SEARCH_BURST: u32 = 10;
/// `typing` frames passed on per second per user, and at once (a client sends one every
/// three seconds while its user types; a few tabs or conversations fit).
const TYPING_PER_SECOND: u32 = 2;
const TYPING_BURST: u32 = 4;

fn non_zero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// One budget per user.
pub struct UserRate {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl UserRate {
    /// `rate` messages per second per user (at least one), bursts of [`BURST_SECONDS`].
    pub fn sends(rate: u32) -> Self {
        let rate = non_zero(rate);
        Self::new(Quota::per_second(rate).allow_burst(rate.saturating_mul(non_zero(BURST_SECONDS))))
    }

    /// `per_hour` rooms per user, bursts of [`ROOM_BURST`] (or fewer if the rate is lower).
    pub fn rooms(per_hour: u32) -> Self {
        Self::new(
            Quota::per_hour(non_zero(per_hour)).allow_burst(non_zero(ROOM_BURST.min(per_hour))),
        )
    }

    pub fn searches() -> Self {
        Self::new(
            Quota::per_second(non_zero(SEARCHES_PER_SECOND)).allow_burst(non_zero(SEARCH_BURST)),
        )
    }

    pub fn typing() -> Self {
        Self::new(
            Quota::per_second(non_zero(TYPING_PER_SECOND)).allow_burst(non_zero(TYPING_BURST)),
        )
    }

    fn new(quota: Quota) -> Self {
        UserRate {
            limiter: RateLimiter::keyed(quota),
        }
    }

    /// Takes one action from `user`'s budget; `false` when they are acting too fast.
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
        let limit = UserRate::sends(20);
        let allowed = (0..100).filter(|_| limit.allow("alice")).count();
        assert_eq!(allowed, 60);
        assert!(limit.allow("bob"), "budgets are per user");
    }

    #[test]
    fn rooms_come_in_bursts_of_five_then_by_the_hour() {
        let limit = UserRate::rooms(20);
        assert_eq!((0..10).filter(|_| limit.allow("alice")).count(), 5);
        let slow = UserRate::rooms(2);
        assert_eq!((0..10).filter(|_| slow.allow("alice")).count(), 2);
    }

    #[test]
    fn idle_users_are_forgotten() {
        let limit = UserRate::sends(1000);
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
