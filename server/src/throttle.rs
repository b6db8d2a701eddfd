//! Slows password guessing: failed sign-ins are counted per account and per client address
//! over a sliding window; past the limit, sign-ins for that account (or from that address)
//! are refused *before* the password is checked, until the window has moved on.
//!
//! In memory, bounded, and per process: a restart forgets the counts, which only gives an
//! attacker one fresh window per restart.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Failed sign-ins one account may take per window.
pub const PER_ACCOUNT: usize = 5;
/// Failed sign-ins one address may make per window (it may be a shared office NAT).
pub const PER_ADDRESS: usize = 20;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Keys tracked per kind; beyond this the stalest are forgotten, so memory stays bounded
/// whatever an attacker sends.
const MAX_KEYS: usize = 100_000;

#[derive(Clone, Default)]
pub struct SignInThrottle {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    accounts: Failures<String>,
    addresses: Failures<IpAddr>,
}

struct Failures<K> {
    by_key: HashMap<K, VecDeque<Instant>>,
}

impl<K> Default for Failures<K> {
    fn default() -> Self {
        Failures {
            by_key: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Failures<K> {
    /// How long until `key` may try again, if it is over `limit`.
    fn wait(&mut self, key: &K, limit: usize, now: Instant) -> Option<Duration> {
        let times = self.by_key.get_mut(key)?;
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            times.pop_front();
        }
        if times.is_empty() {
            self.by_key.remove(key);
            return None;
        }
        (times.len() >= limit).then(|| WINDOW - now.duration_since(times[times.len() - limit]))
    }

    fn record(&mut self, key: K, limit: usize, now: Instant) {
        if self.by_key.len() >= MAX_KEYS && !self.by_key.contains_key(&key) {
            self.forget_stalest(now);
        }
        let times = self.by_key.entry(key).or_default();
        times.push_back(now);
        // Only the last `limit` failures matter.
        while times.len() > limit {
            times.pop_front();
        }
    }

    fn forget_stalest(&mut self, now: Instant) {
        self.by_key.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.duration_since(*t) < WINDOW)
        });
        if self.by_key.len() >= MAX_KEYS {
            // Everyone is recent: drop an arbitrary tenth rather than grow.
            let drop: Vec<K> = self.by_key.keys().take(MAX_KEYS / 10).cloned().collect();
            for k in drop {
                self.by_key.remove(&k);
            }
        }
    }
}

impl SignInThrottle {
    /// `Some(wait)` when this sign-in must be refused without looking at the password.
    pub fn check(&self, account: &str, address: IpAddr) -> Option<Duration> {
        self.check_at(account, address, Instant::now())
    }

    pub fn failed(&self, account: &str, address: IpAddr) {
        self.failed_at(account, address, Instant::now());
    }

    /// A correct password clears the account's failures (not the address's).
    pub fn succeeded(&self, account: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.accounts.by_key.remove(account);
    }

    fn check_at(&self, account: &str, address: IpAddr, now: Instant) -> Option<Duration> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let a = inner.accounts.wait(&account.to_owned(), PER_ACCOUNT, now);
        let b = inner.addresses.wait(&address, PER_ADDRESS, now);
        a.max(b)
    }

    fn failed_at(&self, account: &str, address: IpAddr, now: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.accounts.record(account.to_owned(), PER_ACCOUNT, now);
        inner.addresses.record(address, PER_ADDRESS, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn an_account_is_locked_after_its_limit_until_the_window_moves_on() {
        let t = SignInThrottle::default();
        let start = Instant::now();
        for i in 0..PER_ACCOUNT {
            assert_eq!(t.check_at("ann", ip(i as u8), start), None);
            t.failed_at("ann", ip(i as u8), start);
        }
        // From any address.
        let wait = t.check_at("ann", ip(99), start).expect("locked");
        assert_eq!(wait, WINDOW);
        assert_eq!(t.check_at("bob", ip(99), start), None, "others are not");
        assert_eq!(t.check_at("ann", ip(99), start + WINDOW), None);
    }

    #[test]
    fn an_address_guessing_many_accounts_is_locked() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        for i in 0..PER_ADDRESS {
            t.failed_at(&format!("user{i}"), ip(1), now);
        }
        assert!(t.check_at("fresh", ip(1), now).is_some());
        assert!(t.check_at("fresh", ip(2), now).is_none());
    }

    #[test]
    fn success_clears_the_account() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        for _ in 0..PER_ACCOUNT - 1 {
            t.failed_at("ann", ip(1), now);
        }
        t.succeeded("ann");
        t.failed_at("ann", ip(1), now);
        assert!(t.check_at("ann", ip(1), now).is_none());
    }

    #[test]
    fn memory_stays_bounded() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        for i in 0..(MAX_KEYS + 10) {
            t.failed_at(&format!("u{i}"), ip(1), now);
        }
        assert!(t.inner.lock().unwrap().accounts.by_key.len() <= MAX_KEYS);
    }
}
