//! Raw `AF_PACKET` sockets for `vipd-announce`.
//!
//! One socket per protocol, bound to one interface index:
//! - ARP (`ETH_P_ARP`): sends our gratuitous ARPs, receives every ARP frame
//!   (ARP traffic is small, no filter needed);
//! - IPv6 (`ETH_P_IPV6`) with a classic BPF filter that keeps only ICMPv6
//!   Neighbour Advertisements, so a busy node does not copy all its IPv6
//!   traffic to user space.
//!
//! Our own announcements must never come back as claims. A packet socket
//! bound to one protocol is fed only received frames (the kernel copies
//! transmitted frames to `ETH_P_ALL` taps only, `dev_queue_xmit_nit`); as
//! defence in depth against a future `ETH_P_ALL` socket we also set
//! `PACKET_IGNORE_OUTGOING` (Linux ≥ 4.20) and drop `PACKET_OUTGOING` here.
//! A copy of our frame reflected back by the network is caught by the MAC
//! check in the task.

use socket2::{Domain, SockFilter, Socket, Type};
use std::io;
use std::os::fd::AsRawFd;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// `PACKET_IGNORE_OUTGOING` from `<linux/if_packet.h>` (not exported by
/// every libc version for every target).
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// What a [`PacketSocket`] receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// All ARP frames.
    Arp,
    /// ICMPv6 Neighbour Advertisements only (BPF-filtered).
    NeighbourAdvert,
}

impl Proto {
    fn ethertype(self) -> u16 {
        match self {
            Proto::Arp => libc::ETH_P_ARP as u16,
            Proto::NeighbourAdvert => libc::ETH_P_IPV6 as u16,
        }
    }
}

/// Classic BPF: accept IPv6 frames whose next header is ICMPv6 (58) and
/// whose ICMPv6 type is 136 (NA); drop everything else. Offsets are from
/// the start of the Ethernet header (SOCK_RAW): 12 EtherType, 20 IPv6 next
/// header, 54 ICMPv6 type.
fn na_filter() -> [SockFilter; 8] {
    const LDH_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const LDB_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    [
        SockFilter::new(LDH_ABS, 0, 0, 12),
        SockFilter::new(JEQ_K, 0, 5, 0x86dd), // else -> drop (insn 7)
        SockFilter::new(LDB_ABS, 0, 0, 20),
        SockFilter::new(JEQ_K, 0, 3, 58),
        SockFilter::new(LDB_ABS, 0, 0, 54),
        SockFilter::new(JEQ_K, 0, 1, 136),
        SockFilter::new(RET_K, 0, 0, 0xffff),
        SockFilter::new(RET_K, 0, 0, 0),
    ]
}

/// A non-blocking `AF_PACKET`/`SOCK_RAW` socket bound to one interface,
/// registered with tokio.
#[derive(Debug)]
pub struct PacketSocket {
    fd: AsyncFd<Socket>,
}

impl PacketSocket {
    /// Opens and binds the socket. Needs `CAP_NET_RAW`.
    pub fn open(ifindex: u32, proto: Proto) -> io::Result<Self> {
        // Protocol 0 at creation: the socket receives nothing until bind()
        // names a protocol, so no frame from another interface slips in
        // before the bind and the filter are in place.
        let sock = Socket::new(Domain::PACKET, Type::RAW, None)?;
        sock.set_nonblocking(true)?;
        sock.set_cloexec(true)?;
        set_ignore_outgoing(&sock);
        if proto == Proto::NeighbourAdvert {
            sock.attach_filter(&na_filter())?;
        }
        bind_ll(&sock, ifindex, proto.ethertype())?;
        // SAFETY: `sock` is a socket2::Socket that owns a valid, open fd; it
        // moves into the AsyncFd, which owns it until drop, and Socket's
        // as_raw_fd() always returns that same fd (never replaced or closed
        // while registered).
        let fd = unsafe {
            AsyncFd::register_with_interest(sock, Interest::READABLE | Interest::WRITABLE)
        }
        .map_err(io::Error::from)?;
        Ok(PacketSocket { fd })
    }

    /// Sends one complete Ethernet frame on the bound interface.
    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        let n = self
            .fd
            .async_io(Interest::WRITABLE, |s| s.send(frame))
            .await?;
        if n == frame.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short send: {n} of {} bytes", frame.len()),
            ))
        }
    }

    /// Receives the next frame that was not sent by this host, returning
    /// its length in `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let (n, pkttype) = self
                .fd
                .async_io(Interest::READABLE, |s| recv_ll(s, buf))
                .await?;
            if pkttype != libc::PACKET_OUTGOING {
                return Ok(n.min(buf.len()));
            }
        }
    }
}

fn set_ignore_outgoing(sock: &Socket) {
    let one: libc::c_int = 1;
    // SAFETY: `sock` is an open socket for the duration of the call; the
    // option value points to a live c_int and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        // Older kernels lack the option; recv() also filters by packet type.
        tracing::debug!(error = %io::Error::last_os_error(), "PACKET_IGNORE_OUTGOING unavailable");
    }
}

fn bind_ll(sock: &Socket, ifindex: u32, ethertype: u16) -> io::Result<()> {
    let ifindex = libc::c_int::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
    // SAFETY: sockaddr_ll is a plain C struct of integers and byte arrays,
    // for which all-zero bytes are a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = ethertype.to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a fully initialised sockaddr_ll living across the
    // call and the length passed is exactly its size; the fd is open.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One `recvfrom` that also returns the frame's packet type.
fn recv_ll(sock: &Socket, buf: &mut [u8]) -> io::Result<(usize, u8)> {
    // SAFETY: all-zero bytes are a valid sockaddr_ll (plain integers/arrays).
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `buf` is a valid writable region of `buf.len()` bytes; `sll`
    // and `len` are live, writable and `len` holds the size of `sll`, so the
    // kernel writes at most that many address bytes.
    let n = unsafe {
        libc::recvfrom(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut sll as *mut libc::sockaddr_ll).cast(),
            &mut len,
        )
    };
    // A negative return is an error; anything else fits in usize.
    match usize::try_from(n) {
        Ok(n) => Ok((n, sll.sll_pkttype)),
        Err(_) => Err(io::Error::last_os_error()),
    }
}
