//! Locking the std mutexes that guard in-memory state.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a std mutex, recovering the data if a panicking thread poisoned it: every critical
/// section in this server leaves its maps consistent at each step, and none awaits.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
