//! The binary's only `unsafe`: process-wide C library settings made once,
//! first thing in `main`, before any thread exists.

/// Limits glibc's malloc to one arena, as `MALLOC_ARENA_MAX=1` would,
/// unless the operator set `MALLOC_ARENA_MAX` (then glibc has applied it).
///
/// Why: glibc gives each thread that allocates its own arena and keeps
/// their freed pages; with one arena vipd's resident memory at 1,000
/// Services drops by ~2.5 MB (docs/BENCHMARKS.md), and two tokio workers
/// do not contend on it. Setting it in the program rather than in the
/// manifests means every way of running vipd (DaemonSet, static pod,
/// systemd, by hand) gets the measured figure.
///
/// Returns whether the limit is in force because of this call.
pub fn limit_malloc_arenas() -> bool {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt(3) takes two integers and only changes allocator
        // tuning (M_ARENA_MAX caps arenas created from now on); it touches
        // no memory of ours. It runs before the tokio runtime or any other
        // thread is started, so no thread has an arena of its own yet.
        let rc = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
        rc == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
