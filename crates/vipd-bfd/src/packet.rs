//! The BFD Control packet (RFC 5880 §4.1), typed, with the reception checks
//! of §6.8.6 that depend on the packet alone.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! We never configure authentication, so a packet with the A bit set is
//! discarded (§6.8.6: "If the A bit is set and no authentication is in use
//! ... the packet MUST be discarded") and [`ControlPacket::encode`] always
//! produces the 24-byte form.

/// Length of a Control packet without the authentication section.
pub const CONTROL_LEN: usize = 24;
/// The only protocol version (§4.1).
pub const VERSION: u8 = 1;

const FLAG_P: u8 = 0x20;
const FLAG_F: u8 = 0x10;
const FLAG_C: u8 = 0x08;
const FLAG_A: u8 = 0x04;
const FLAG_D: u8 = 0x02;
const FLAG_M: u8 = 0x01;

/// Session state, as carried in the `Sta` field (§4.1) and kept in
/// `bfd.SessionState` (§6.8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Administratively down: held down on purpose, not a failure.
    AdminDown,
    /// Down (the initial state).
    Down,
    /// Initialising: we hear the peer, the peer does not yet hear us.
    Init,
    /// Up: both directions work.
    Up,
}

impl State {
    /// The 2-bit wire code (RFC 5880 §4.1 `Sta`).
    pub fn code(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    fn from_code(c: u8) -> State {
        match c & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    /// Lower-case name for logs ("admin-down", "down", "init", "up").
    pub fn label(self) -> &'static str {
        match self {
            State::AdminDown => "admin-down",
            State::Down => "down",
            State::Init => "init",
            State::Up => "up",
        }
    }
}

/// Diagnostic code (§4.1): why the sender's session last changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    /// 0: no diagnostic.
    None,
    /// 1: Control Detection Time Expired (the peer went silent).
    ControlDetectionTimeExpired,
    /// 2: Echo Function Failed.
    EchoFailed,
    /// 3: Neighbor Signaled Session Down.
    NeighborSignaledDown,
    /// 4: Forwarding Plane Reset.
    ForwardingPlaneReset,
    /// 5: Path Down.
    PathDown,
    /// 6: Concatenated Path Down.
    ConcatenatedPathDown,
    /// 7: Administratively Down (a graceful stop, not a failure).
    AdminDown,
    /// 8: Reverse Concatenated Path Down.
    ReverseConcatenatedPathDown,
    /// 9–31: reserved; kept so a peer's code can be logged as sent.
    Reserved(u8),
}

impl Diag {
    /// The 5-bit wire code.
    pub fn code(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFailed => 2,
            Diag::NeighborSignaledDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdminDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Reserved(c) => c & 0x1f,
        }
    }

    /// The diagnostic for a 5-bit code (higher bits are ignored).
    pub fn from_code(c: u8) -> Diag {
        match c & 0x1f {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFailed,
            3 => Diag::NeighborSignaledDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdminDown,
            8 => Diag::ReverseConcatenatedPathDown,
            c => Diag::Reserved(c),
        }
    }
}

/// A BFD Control packet without authentication section. Intervals are in
/// microseconds, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPacket {
    /// Diagnostic (the sender's `bfd.LocalDiag`).
    pub diag: Diag,
    /// The sender's session state.
    pub state: State,
    /// Poll (P): the sender asks for a Final (§6.5).
    pub poll: bool,
    /// Final (F): the answer to a Poll.
    pub final_: bool,
    /// Control Plane Independent (C). We run in user space: always 0 when
    /// we send.
    pub cpi: bool,
    /// Demand (D): the sender wants us to stop periodic transmission once
    /// both sides are Up (§6.6). We never set it.
    pub demand: bool,
    /// Detect Mult: the sender's `bfd.DetectMult` (never 0 once decoded).
    pub detect_mult: u8,
    /// My Discriminator: the sender's (never 0 once decoded).
    pub my_disc: u32,
    /// Your Discriminator: ours as the sender knows it, 0 if not yet known.
    pub your_disc: u32,
    /// Desired Min TX Interval, µs.
    pub desired_min_tx: u32,
    /// Required Min RX Interval, µs; 0 means "do not send to me" (§6.8.7).
    pub required_min_rx: u32,
    /// Required Min Echo RX Interval, µs; we do not support echo: always 0.
    pub required_min_echo_rx: u32,
}

/// Why a datagram was discarded before reaching a session (§6.8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than a minimal Control packet.
    #[error("datagram of {len} bytes is shorter than a BFD Control packet ({CONTROL_LEN})")]
    Short {
        /// Datagram length.
        len: usize,
    },
    /// Version is not 1.
    #[error("BFD version {0} (only 1 exists)")]
    Version(u8),
    /// The Length field is below the minimum (24, or 26 with the A bit).
    #[error("Length field {field} is below the minimum {min}")]
    LengthTooSmall {
        /// The Length field.
        field: u8,
        /// The minimum for this packet.
        min: usize,
    },
    /// The Length field is larger than the datagram carrying it.
    #[error("Length field {field} exceeds the {datagram}-byte datagram")]
    LengthExceedsDatagram {
        /// The Length field.
        field: u8,
        /// Datagram length.
        datagram: usize,
    },
    /// Detect Mult is zero.
    #[error("Detect Mult is zero")]
    ZeroDetectMult,
    /// The Multipoint bit is set (reserved for future point-to-multipoint use).
    #[error("Multipoint bit set")]
    Multipoint,
    /// My Discriminator is zero.
    #[error("My Discriminator is zero")]
    ZeroMyDiscriminator,
    /// Your Discriminator is zero while the state is Init or Up.
    #[error("Your Discriminator is zero in state {}", .0.label())]
    ZeroYourDiscriminator(State),
    /// Authentication present: we run without authentication, so §6.8.6
    /// says discard.
    #[error("authentication present (A bit) but none is configured")]
    AuthPresent,
}

impl DecodeError {
    /// Every variant's label, in [`DecodeError::index`] order (for counters).
    pub const LABELS: [&'static str; 9] = [
        "short",
        "version",
        "length_small",
        "length_exceeds",
        "zero_mult",
        "multipoint",
        "zero_my_disc",
        "zero_your_disc",
        "auth",
    ];

    /// A dense index for counters, matching [`DecodeError::LABELS`].
    pub fn index(&self) -> usize {
        match self {
            DecodeError::Short { .. } => 0,
            DecodeError::Version(_) => 1,
            DecodeError::LengthTooSmall { .. } => 2,
            DecodeError::LengthExceedsDatagram { .. } => 3,
            DecodeError::ZeroDetectMult => 4,
            DecodeError::Multipoint => 5,
            DecodeError::ZeroMyDiscriminator => 6,
            DecodeError::ZeroYourDiscriminator(_) => 7,
            DecodeError::AuthPresent => 8,
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    // Callers have checked `b.len() >= CONTROL_LEN`; a short slice reads as
    // zeros rather than panicking.
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map_or(0, u32::from_be_bytes)
}

impl ControlPacket {
    /// The 24-byte wire form (version 1, no authentication, M bit clear).
    pub fn encode(&self) -> [u8; CONTROL_LEN] {
        let mut b = [0u8; CONTROL_LEN];
        b[0] = (VERSION << 5) | self.diag.code();
        let mut flags = self.state.code() << 6;
        for (on, bit) in [
            (self.poll, FLAG_P),
            (self.final_, FLAG_F),
            (self.cpi, FLAG_C),
            (self.demand, FLAG_D),
        ] {
            if on {
                flags |= bit;
            }
        }
        b[1] = flags;
        b[2] = self.detect_mult;
        b[3] = CONTROL_LEN as u8;
        b[4..8].copy_from_slice(&self.my_disc.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_disc.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx.to_be_bytes());
        b
    }

    /// Parses one UDP payload, applying the packet-level checks of §6.8.6 in
    /// the RFC's order. Bytes after the Length field are ignored.
    pub fn decode(b: &[u8]) -> Result<ControlPacket, DecodeError> {
        if b.len() < CONTROL_LEN {
            return Err(DecodeError::Short { len: b.len() });
        }
        let version = b[0] >> 5;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let flags = b[1];
        let auth = flags & FLAG_A != 0;
        let length = b[3];
        // §6.8.6: Length < 24, or < 26 with the A bit, is invalid.
        let min = if auth { CONTROL_LEN + 2 } else { CONTROL_LEN };
        if usize::from(length) < min {
            return Err(DecodeError::LengthTooSmall { field: length, min });
        }
        if usize::from(length) > b.len() {
            return Err(DecodeError::LengthExceedsDatagram {
                field: length,
                datagram: b.len(),
            });
        }
        let detect_mult = b[2];
        if detect_mult == 0 {
            return Err(DecodeError::ZeroDetectMult);
        }
        if flags & FLAG_M != 0 {
            return Err(DecodeError::Multipoint);
        }
        let my_disc = be32(b, 4);
        if my_disc == 0 {
            return Err(DecodeError::ZeroMyDiscriminator);
        }
        let your_disc = be32(b, 8);
        let state = State::from_code(flags >> 6);
        if your_disc == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(DecodeError::ZeroYourDiscriminator(state));
        }
        // Session selection comes next in §6.8.6, then the A-bit check; with
        // no authentication configured on any session the outcome is the
        // same for every session, so it is checked here.
        if auth {
            return Err(DecodeError::AuthPresent);
        }
        Ok(ControlPacket {
            diag: Diag::from_code(b[0]),
            state,
            poll: flags & FLAG_P != 0,
            final_: flags & FLAG_F != 0,
            cpi: flags & FLAG_C != 0,
            demand: flags & FLAG_D != 0,
            detect_mult,
            my_disc,
            your_disc,
            desired_min_tx: be32(b, 12),
            required_min_rx: be32(b, 16),
            required_min_echo_rx: be32(b, 20),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> ControlPacket {
        ControlPacket {
            diag: Diag::NeighborSignaledDown,
            state: State::Up,
            poll: true,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: 3,
            my_disc: 0x0102_0304,
            your_disc: 0xa0b0_c0d0,
            desired_min_tx: 300_000,
            required_min_rx: 250_000,
            required_min_echo_rx: 0,
        }
    }

    #[test]
    fn encodes_the_rfc_layout_and_decodes_back() {
        let p = sample();
        let b = p.encode();
        assert_eq!(b[0], 0x23, "version 1, diag 3");
        assert_eq!(b[1], 0xe0, "state Up (3 << 6) | P");
        assert_eq!(&b[2..4], &[3, 24]);
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        assert_eq!(&b[12..16], &300_000u32.to_be_bytes());
        assert_eq!(ControlPacket::decode(&b).unwrap(), p);
    }

    #[test]
    fn every_state_diag_and_flag_round_trips() {
        for state in [State::AdminDown, State::Down, State::Init, State::Up] {
            for code in 0..32 {
                for flags in 0..16u8 {
                    let p = ControlPacket {
                        diag: Diag::from_code(code),
                        state,
                        poll: flags & 1 != 0,
                        final_: flags & 2 != 0,
                        cpi: flags & 4 != 0,
                        demand: flags & 8 != 0,
                        ..sample()
                    };
                    assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
                    assert_eq!(p.diag.code(), code);
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_after_length_are_ignored() {
        let mut v = sample().encode().to_vec();
        v.extend_from_slice(&[0xff; 8]);
        assert_eq!(ControlPacket::decode(&v), Ok(sample()));
    }

    #[test]
    fn reception_checks_reject_what_section_6_8_6_discards() {
        let good = sample().encode();
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut v = good.to_vec();
            f(&mut v);
            ControlPacket::decode(&v)
        };
        assert_eq!(
            with(&|v| v.truncate(23)),
            Err(DecodeError::Short { len: 23 })
        );
        assert_eq!(with(&|v| v[0] = (2 << 5) | 3), Err(DecodeError::Version(2)));
        assert_eq!(
            with(&|v| v[3] = 23),
            Err(DecodeError::LengthTooSmall { field: 23, min: 24 })
        );
        assert_eq!(
            with(&|v| v[3] = 25),
            Err(DecodeError::LengthExceedsDatagram {
                field: 25,
                datagram: 24
            })
        );
        assert_eq!(with(&|v| v[2] = 0), Err(DecodeError::ZeroDetectMult));
        assert_eq!(with(&|v| v[1] |= FLAG_M), Err(DecodeError::Multipoint));
        assert_eq!(
            with(&|v| v[4..8].fill(0)),
            Err(DecodeError::ZeroMyDiscriminator)
        );
        assert_eq!(
            with(&|v| v[8..12].fill(0)),
            Err(DecodeError::ZeroYourDiscriminator(State::Up))
        );
        // Auth: 24 bytes with A set is too short for the auth section...
        assert_eq!(
            with(&|v| v[1] |= FLAG_A),
            Err(DecodeError::LengthTooSmall { field: 24, min: 26 })
        );
        // ...and a well-formed authenticated packet is still discarded.
        assert_eq!(
            with(&|v| {
                v[1] |= FLAG_A;
                v[3] = 33;
                v.extend_from_slice(&[1, 9, 0, 0, 0, 0, 0, 0, 0]);
            }),
            Err(DecodeError::AuthPresent)
        );
    }

    #[test]
    fn zero_your_discriminator_is_fine_while_down_or_admin_down() {
        for state in [State::Down, State::AdminDown] {
            let p = ControlPacket {
                state,
                your_disc: 0,
                ..sample()
            };
            assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
        }
        let init = ControlPacket {
            state: State::Init,
            your_disc: 0,
            ..sample()
        };
        assert_eq!(
            ControlPacket::decode(&init.encode()),
            Err(DecodeError::ZeroYourDiscriminator(State::Init))
        );
    }
}
