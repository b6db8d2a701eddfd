//! Slows password guessing without handing an attacker a way to lock the owner out.
//!
//! Every sign-in attempt takes a place in three sliding 15-minute windows *before* its
//! password is checked, so parallel guesses cannot slip past a limit; a correct password
//! gives its place back. An attempt is refused at once, unchecked, when
//! - its account has had `per_pair` failures from this address, or
//! - this address has had [`PER_ADDRESS`] failures over all accounts, or
//! - its account has had `per_account` failures from all addresses, unless this address has
//!   signed in to the account before: the owner keeps trying from where they usually
//!   sign in, within their own per-address limit, while guesses from elsewhere wait.
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

use crate::locks::lock;

/// Failed sign-ins one address may make over all accounts per window (it may be a shared
/// office NAT, so well above the per-account limits).
pub const PER_ADDRESS: usize = 50;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Keys tracked per kind; beyond this the stalest are forgotten, so memory stays bounded
/// whatever an attacker sends.
const MAX_KEYS: usize = 100_000;
/// Addresses remembered per account as ones it signed in from.
const KNOWN_PER_ACCOUNT: usize = 8;

#[derive(Clone)]
pub struct SignInThrottle {
    inner: Arc<Mutex<Inner>>,
    per_pair: usize,
    per_account: usize,
}

#[derive(Default)]
struct Inner {
    pairs: Failures<(String, IpAddr)>,
    accounts: Failures<String>,
    addresses: Failures<IpAddr>,
    /// Where each account has signed in from lately, newest last.
    known: HashMap<String, VecDeque<IpAddr>>,
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
    /// How long until `key` may try again, if it is at its `limit`.
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
        // Only the last `limit` failures matter; twice that are kept so that attempts in
        // flight that turn out right can give their places back without uncounting a
        // failure.
        while times.len() > 2 * limit {
            times.pop_front();
        }
    }

    /// Gives back one place taken at `at`.
    fn release(&mut self, key: &K, at: Instant) {
        if let Some(times) = self.by_key.get_mut(key) {
            if let Some(i) = times.iter().rposition(|t| *t == at) {
                times.remove(i);
            }
            if times.is_empty() {
                self.by_key.remove(key);
            }
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

/// A sign-in attempt that holds its places; unless [`Attempt::succeeded`] is called, it
/// counts as a failure.
pub struct Attempt {
    throttle: SignInThrottle,
    account: String,
    address: IpAddr,
    at: Instant,
}

impl Attempt {
    /// The password was right: the attempt's places are given back, the account's failures
    /// from this address are forgotten, and the address becomes one the account is known at.
    pub fn succeeded(self) {
        let mut inner = lock(&self.throttle.inner);
        let key = (self.account.clone(), self.address);
        inner.pairs.by_key.remove(&key);
        inner.accounts.release(&self.account, self.at);
        inner.addresses.release(&self.address, self.at);
        if inner.known.len() >= MAX_KEYS && !inner.known.contains_key(&self.account) {
            inner.known.clear();
        }
        let known = inner.known.entry(self.account).or_default();
        known.retain(|a| *a != self.address);
        known.push_back(self.address);
        if known.len() > KNOWN_PER_ACCOUNT {
            known.pop_front();
        }
    }
}

impl SignInThrottle {
    /// `per_pair`: failures per account and address; `per_account`: per account from all
    /// addresses (see the module's docs).
    pub fn new(per_pair: usize, per_account: usize) -> Self {
        SignInThrottle {
            inner: Arc::default(),
            per_pair,
            per_account,
        }
    }

    /// Takes this attempt's places, or says how long to wait when it must be refused
    /// without looking at the password.
    pub fn begin(&self, account: &str, address: IpAddr) -> Result<Attempt, Duration> {
        self.begin_at(account, address, Instant::now())
    }

    fn begin_at(&self, account: &str, address: IpAddr, now: Instant) -> Result<Attempt, Duration> {
        let mut inner = lock(&self.inner);
        let pair = (account.to_owned(), address);
        let known = inner
            .known
            .get(account)
            .is_some_and(|k| k.contains(&address));
        let waits = [
            inner.pairs.wait(&pair, self.per_pair, now),
            inner.addresses.wait(&address, PER_ADDRESS, now),
            if known {
                None
            } else {
                inner
                    .accounts
                    .wait(&account.to_owned(), self.per_account, now)
            },
        ];
        if let Some(wait) = waits.into_iter().flatten().max() {
            return Err(wait);
        }
        inner.pairs.record(pair, self.per_pair, now);
        inner.addresses.record(address, PER_ADDRESS, now);
        inner
            .accounts
            .record(account.to_owned(), self.per_account, now);
        Ok(Attempt {
            throttle: self.clone(),
            account: account.to_owned(),
            address,
            at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn throttle() -> SignInThrottle {
        SignInThrottle::new(5, 20)
    }

    #[test]
    fn an_account_is_refused_from_one_address_after_its_limit_until_the_window_moves_on() {
        let t = throttle();
        let start = Instant::now();
        for _ in 0..5 {
            drop(t.begin_at("ann", ip(1), start).expect("allowed"));
        }
        let wait = t.begin_at("ann", ip(1), start).err().expect("refused");
        assert_eq!(wait, WINDOW);
        assert!(t.begin_at("ann", ip(2), start).is_ok(), "another address");
        assert!(t.begin_at("bob", ip(1), start).is_ok(), "another account");
        assert!(t.begin_at("ann", ip(1), start + WINDOW).is_ok());
    }

    #[test]
    fn places_are_taken_before_the_password_is_checked() {
        let t = throttle();
        let now = Instant::now();
        // Five attempts in flight at once, none finished: the sixth is refused.
        let in_flight: Vec<Attempt> = (0..5)
            .map(|_| t.begin_at("ann", ip(1), now).expect("allowed"))
            .collect();
        assert!(t.begin_at("ann", ip(1), now).is_err());
        drop(in_flight);
    }

    #[test]
    fn guesses_from_everywhere_do_not_lock_the_owner_out_where_they_sign_in() {
        let t = throttle();
        let now = Instant::now();
        t.begin_at("ann", ip(1), now).unwrap().succeeded();
        for i in 0..20 {
            drop(
                t.begin_at("ann", ip(100 + i), now)
                    .expect("within the ceiling"),
            );
        }
        assert!(
            t.begin_at("ann", ip(200), now).is_err(),
            "a new address waits"
        );
        t.begin_at("ann", ip(1), now)
            .expect("the owner's address is let through")
            .succeeded();
        // ... within its own limit.
        for _ in 0..5 {
            drop(t.begin_at("ann", ip(1), now).unwrap());
        }
        assert!(t.begin_at("ann", ip(1), now).is_err());
    }

    #[test]
    fn an_address_guessing_many_accounts_is_refused() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..PER_ADDRESS {
            drop(t.begin_at(&format!("user{i}"), ip(1), now).unwrap());
        }
        assert!(t.begin_at("fresh", ip(1), now).is_err());
        assert!(t.begin_at("fresh", ip(2), now).is_ok());
    }

    #[test]
    fn success_gives_the_places_back_and_clears_the_pair() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..4 {
            drop(t.begin_at("ann", ip(1), now).unwrap());
        }
        t.begin_at("ann", ip(1), now).unwrap().succeeded();
        for _ in 0..5 {
            drop(t.begin_at("ann", ip(1), now).expect("cleared"));
        }
        let inner = lock(&t.inner);
        assert_eq!(
            inner.accounts.by_key["ann"].len(),
            9,
            "four + five failures"
        );
    }

    #[test]
    fn memory_stays_bounded() {
        let t = SignInThrottle::new(5, 1_000_000);
        let now = Instant::now();
        for i in 0..(MAX_KEYS + 10) {
            let address = IpAddr::from((i as u32).to_be_bytes());
            drop(t.begin_at(&format!("u{i}"), address, now).unwrap());
        }
        let inner = lock(&t.inner);
        assert!(inner.accounts.by_key.len() <= MAX_KEYS);
        assert!(inner.pairs.by_key.len() <= MAX_KEYS);
        assert!(inner.addresses.by_key.len() <= MAX_KEYS);
    }
}
