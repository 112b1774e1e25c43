//! ICMP / ICMPv6 echo probe over a raw socket (needs CAP_NET_RAW).
//!
//! Packet formats: RFC 792 (echo, type 8 / reply 0, RFC 1071 checksum) and
//! RFC 4443 §4.1–4.2 (echo request 128 / reply 129). For ICMPv6 raw sockets
//! the kernel fills in the checksum itself (RFC 3542 §3.1), and reads do
//! not include the IPv6 header; IPv4 raw reads start with the IP header.
//!
//! The socket is `connect`ed to the target, so the kernel only hands it
//! packets from that address; the reply is then matched on type, id,
//! sequence and a payload token, which filters our own looped-back request
//! (pinging 127.0.0.1) and other processes' pings. The blocking socket
//! runs on `spawn_blocking` with a read timeout (no unsafe code needed);
//! the socket is created on the calling thread first, so a caller inside
//! a network namespace probes from that namespace.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::ProbeError;

const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
const PAYLOAD_PREFIX: &[u8; 8] = b"vipd-hc\0";

/// Sequence numbers shared by all probes of the process, so two probes to
/// the same address never accept each other's replies.
static NEXT_SEQ: AtomicU16 = AtomicU16::new(1);

/// Builds an echo request. For IPv6 the checksum field stays zero: the
/// kernel computes it over the pseudo-header.
pub fn echo_request(v6: bool, id: u16, seq: u16, token: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + PAYLOAD_PREFIX.len() + 4);
    p.push(if v6 {
        ICMPV6_ECHO_REQUEST
    } else {
        ICMP_ECHO_REQUEST
    });
    p.push(0); // code
    p.extend_from_slice(&[0, 0]); // checksum
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(PAYLOAD_PREFIX);
    p.extend_from_slice(&token.to_be_bytes());
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// RFC 1071 Internet checksum.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether `packet` (as read from the raw socket) is the echo reply to
/// `(id, seq, token)`.
pub fn is_matching_reply(v6: bool, packet: &[u8], id: u16, seq: u16, token: u32) -> bool {
    let icmp = if v6 {
        packet
    } else {
        // IPv4 raw sockets deliver the IP header: skip IHL words, check
        // that it really carries ICMP.
        let Some(&vihl) = packet.first() else {
            return false;
        };
        let ihl = usize::from(vihl & 0x0f) * 4;
        if vihl >> 4 != 4 || ihl < 20 || packet.get(9) != Some(&1) {
            return false;
        }
        match packet.get(ihl..) {
            Some(p) => p,
            None => return false,
        }
    };
    let want_type = if v6 {
        ICMPV6_ECHO_REPLY
    } else {
        ICMP_ECHO_REPLY
    };
    let expected = echo_request(v6, id, seq, token);
    icmp.len() >= expected.len()
        && icmp[0] == want_type
        && icmp[1] == 0
        && icmp[4..8] == expected[4..8]
        && icmp[8..expected.len()] == expected[8..]
}

/// A one-shot echo probe: socket opened now (in the caller's namespace),
/// request sent and reply awaited by [`IcmpProbe::run`].
pub struct IcmpProbe {
    socket: Socket,
    v6: bool,
    id: u16,
    seq: u16,
    token: u32,
}

impl IcmpProbe {
    /// Opens a raw ICMP(v6) socket connected to `addr`.
    pub fn open(addr: IpAddr) -> Result<Self, ProbeError> {
        let (domain, proto, v6) = match addr {
            IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4, false),
            IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6, true),
        };
        let socket = Socket::new(domain, Type::RAW, Some(proto)).map_err(ProbeError::Socket)?;
        socket
            .connect(&SocketAddr::new(addr, 0).into())
            .map_err(ProbeError::Send)?;
        let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
        let id = (std::process::id() & 0xffff) as u16;
        // The token only has to differ between probes and processes.
        let token = (std::process::id() << 16) ^ u32::from(seq);
        Ok(IcmpProbe {
            socket,
            v6,
            id,
            seq,
            token,
        })
    }

    /// Sends the echo request and waits up to `timeout` for its reply on a
    /// blocking thread. Returns the number of unrelated packets skipped.
    pub async fn run(self, timeout: Duration) -> Result<u32, ProbeError> {
        let stop = Arc::new(AtomicBool::new(false));
        let guard = StopOnDrop(stop.clone());
        let res = tokio::task::spawn_blocking(move || self.run_blocking(timeout, &stop))
            .await
            .map_err(|e| ProbeError::Request(format!("icmp worker: {e}")))?;
        drop(guard);
        res
    }

    fn run_blocking(self, timeout: Duration, stop: &AtomicBool) -> Result<u32, ProbeError> {
        let request = echo_request(self.v6, self.id, self.seq, self.token);
        self.socket.send(&request).map_err(ProbeError::Send)?;
        self.socket
            .set_read_timeout(Some(timeout))
            .map_err(ProbeError::Socket)?;
        let mut buf = [0u8; 1500];
        let mut skipped = 0u32;
        // No clock here: each read waits at most `timeout`, and the async
        // side (which owns the deadline) sets `stop` when it gives up, so
        // this thread ends within one more read timeout.
        while !stop.load(Ordering::Relaxed) {
            match (&self.socket).read(&mut buf) {
                Ok(n) if is_matching_reply(self.v6, &buf[..n], self.id, self.seq, self.token) => {
                    return Ok(skipped)
                }
                Ok(_) => skipped += 1,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ProbeError::Timeout)
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ProbeError::Receive(e)),
            }
        }
        Err(ProbeError::Timeout)
    }
}

/// Tells the blocking worker to stop when the probe future is dropped
/// (timeout or cancellation).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn ipv4_echo_request_checksum_verifies_to_zero() {
        let p = echo_request(false, 0x1234, 7, 0xdead_beef);
        assert_eq!(p[0], 8);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        // A packet with its checksum in place sums to 0xffff (complement 0).
        assert_eq!(checksum(&p), 0);
    }

    #[test]
    fn ipv6_echo_request_leaves_checksum_to_the_kernel() {
        let p = echo_request(true, 1, 2, 3);
        assert_eq!(p[0], 128);
        assert_eq!(&p[2..4], &[0, 0]);
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 §3 worked example: 0001 f203 f4f5 f6f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    fn as_reply_v4(mut icmp: Vec<u8>) -> Vec<u8> {
        icmp[0] = 0;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        ip.extend(icmp);
        ip
    }

    #[test]
    fn reply_matching_checks_type_id_seq_and_token() {
        let req = echo_request(false, 9, 10, 11);
        assert!(is_matching_reply(
            false,
            &as_reply_v4(req.clone()),
            9,
            10,
            11
        ));
        // Our own request looped back is not a reply.
        let mut own = as_reply_v4(req.clone());
        own[20] = 8;
        assert!(!is_matching_reply(false, &own, 9, 10, 11));
        assert!(!is_matching_reply(
            false,
            &as_reply_v4(req.clone()),
            9,
            11,
            11
        ));
        assert!(!is_matching_reply(
            false,
            &as_reply_v4(req.clone()),
            8,
            10,
            11
        ));
        assert!(!is_matching_reply(false, &as_reply_v4(req), 9, 10, 12));
        assert!(!is_matching_reply(false, &[0x45], 9, 10, 11));

        let mut v6 = echo_request(true, 9, 10, 11);
        v6[0] = 129;
        assert!(is_matching_reply(true, &v6, 9, 10, 11));
        v6[0] = 135; // neighbour solicitation from the same address
        assert!(!is_matching_reply(true, &v6, 9, 10, 11));
    }
}
