//! Background work that must never slow sending down runs on threads at the lowest CPU
//! priority: the search indexer, and the writing and hashing of uploads.

use tracing::warn;

/// Lowers this thread's CPU priority as far as it goes (Linux: nice 19 for the thread
/// alone), so that the scheduler runs it only when the server's other threads leave a core
/// idle. `what` names the work in the warning when it cannot.
pub fn lowest(what: &str) {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on this thread's own id; no memory is shared.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) != 0 {
            warn!(
                what,
                "could not lower a background thread's priority; it competes with sending"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = what;
}
