//! TCP MD5 signatures (RFC 2385) for BGP sessions (kube-vip's
//! `bgp_peerpass`). Linux keeps one key per peer address on a socket
//! (`TCP_MD5SIG`, linux/tcp.h); it must be set before `connect` so the SYN
//! is signed, or a router configured with a password ignores us.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// The kernel's key length limit (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` (linux/tcp.h). With plain `TCP_MD5SIG` the kernel
/// reads the address, the key length and the key; flags, prefix length
/// and ifindex are for `TCP_MD5SIG_EXT` and stay zero.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MAX_KEY_LEN],
}

/// Signs every segment to and from `peer` on `sock` with `key`.
///
/// Errors: `InvalidInput` for a key longer than [`MAX_KEY_LEN`] or empty;
/// otherwise what `setsockopt` reports (e.g. `ENOPROTOOPT` on a kernel
/// without `CONFIG_TCP_MD5SIG`).
pub fn set_md5_key(sock: &impl AsRawFd, peer: SocketAddr, key: &[u8]) -> io::Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TCP MD5 key must be 1..={MAX_KEY_LEN} bytes"),
        ));
    }
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid
    // (AF_UNSPEC) value that is overwritten below.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    let sa = socket2::SockAddr::from(peer);
    // SAFETY: `sa.as_ptr()` points to `sa.len()` initialised bytes of a
    // sockaddr_in/sockaddr_in6, which is never larger than
    // sockaddr_storage (socket2 stores it in one), and the destination is
    // our own zeroed sockaddr_storage: the regions do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            std::ptr::addr_of_mut!(sig.addr).cast::<u8>(),
            (sa.len() as usize).min(std::mem::size_of::<libc::sockaddr_storage>()),
        );
    }
    sig.keylen = u16::try_from(key.len()).unwrap_or(0);
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: setsockopt reads exactly `size_of::<TcpMd5Sig>()` bytes from
    // a live, initialised `repr(C)` value laid out as linux/tcp.h's
    // `struct tcp_md5sig`; the fd is borrowed from a socket that outlives
    // the call.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            std::ptr::addr_of!(sig).cast::<libc::c_void>(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_matches_the_kernel_layout() {
        // linux/tcp.h: 128-byte address, 1+1+2+4 bytes of fields, 80-byte key.
        assert_eq!(std::mem::size_of::<TcpMd5Sig>(), 216);
    }

    #[test]
    fn a_key_is_accepted_on_a_tcp_socket_and_bad_lengths_are_refused() {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let peer: SocketAddr = "192.0.2.1:179".parse().expect("addr");
        set_md5_key(&sock, peer, b"s3cret").expect("kernel accepts an MD5 key");
        let v6 = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)
            .expect("socket");
        set_md5_key(&v6, "[2001:db8::1]:179".parse().expect("addr"), b"k").expect("v6 key");
        for bad in [&b""[..], &[b'x'; 81][..]] {
            let e = set_md5_key(&sock, peer, bad).expect_err("refused");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
    }
}
