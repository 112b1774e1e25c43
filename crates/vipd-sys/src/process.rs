//! Process-wide settings made once, first thing in `main`, before any
//! thread exists (malloc arenas; capabilities).

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

/// CAP_NET_ADMIN and CAP_NET_RAW (linux/capability.h): bit numbers.
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets, as two 32-bit words.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The two capabilities vipd uses, as effective after
/// [`raise_permitted_capabilities`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetCapabilities {
    /// CAP_NET_ADMIN: add and remove addresses over netlink.
    pub net_admin: bool,
    /// CAP_NET_RAW: ARP / NA frames on AF_PACKET sockets.
    pub net_raw: bool,
}

/// Makes every permitted capability effective, and reports CAP_NET_ADMIN
/// and CAP_NET_RAW.
///
/// Why: the container image runs vipd as a non-root user, and its binary
/// carries the file capabilities `cap_net_admin,cap_net_raw=p` — permitted
/// but deliberately *not* effective. A file with the effective bit makes
/// execve(2) fail with EPERM whenever the bounding set lacks one of them
/// (capabilities(7), "safety checking for capability-dumb binaries"), so
/// `vipd manifest` or `vipd version` could not even start in a container
/// run with the runtime's default capabilities. Without the bit, exec
/// always succeeds and vipd raises what it was given here. For root (the
/// systemd unit, a static pod) the capabilities are already effective and
/// this changes nothing.
///
/// Capabilities are per thread: this must run before any thread starts,
/// so that the tokio workers inherit the raised set.
pub fn raise_permitted_capabilities() -> std::io::Result<NetCapabilities> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget(2) with a version-3 header writes exactly two CapData
    // structs (64-bit sets as two words), which `data` provides; both
    // structs are #[repr(C)] with the kernel's layout (three u32 / u32+i32).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if data.iter().any(|d| d.effective != d.permitted) {
        for d in &mut data {
            d.effective = d.permitted;
        }
        header.pid = 0;
        // SAFETY: capset(2) reads one version-3 header and two CapData
        // structs, both owned here and laid out as the kernel expects.
        // Raising effective to permitted is always allowed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_capset,
                &mut header as *mut CapHeader,
                data.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(NetCapabilities {
        net_admin: data[0].effective & (1 << CAP_NET_ADMIN) != 0,
        net_raw: data[0].effective & (1 << CAP_NET_RAW) != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_is_idempotent_and_reports_what_is_effective() {
        let first = raise_permitted_capabilities().expect("capget works on Linux");
        let second = raise_permitted_capabilities().expect("capget works on Linux");
        assert_eq!(first, second);
        // SAFETY: geteuid(2) has no arguments and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            assert!(first.net_admin && first.net_raw, "root has both: {first:?}");
        }
    }
}
