//! Tests of the pps cap. Time is tokio's paused clock: `drive` sleeps until
//! each [`Scheduler::next_wake`] exactly as the announcer task does, so a
//! spinning or oversleeping scheduler shows up here.

use super::*;
use crate::pacing::{BURST_OFFSETS, MIN_SPACING};
use std::net::{Ipv4Addr, Ipv6Addr};
use tokio::time::sleep_until;

/// One announcement let out by the scheduler.
#[derive(Debug, Clone, Copy)]
struct Sent {
    at: Instant,
    vip: IpAddr,
    due: Due,
}

/// `n` (≤ 768) IPv4 addresses from the three documentation /24s.
fn v4s(n: usize) -> Vec<IpAddr> {
    [[192, 0, 2], [198, 51, 100], [203, 0, 113]]
        .iter()
        .flat_map(|p| (0..=255u8).map(move |h| IpAddr::V4(Ipv4Addr::new(p[0], p[1], p[2], h))))
        .take(n)
        .collect()
}

/// `n` IPv6 addresses in 2001:db8::/32, starting at host `from`.
fn v6s(from: u16, n: u16) -> Vec<IpAddr> {
    (from..from + n)
        .map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)))
        .collect()
}

/// 1,000 addresses within the documentation ranges: every IPv4 one there
/// is (768, two frames each) plus 232 IPv6 (one frame each).
fn thousand() -> Vec<IpAddr> {
    let mut v = v4s(768);
    v.extend(v6s(1, 232));
    v
}

fn frames(vips: &[IpAddr]) -> u64 {
    vips.iter().map(|v| u64::from(frames_per_send(*v))).sum()
}

/// Polls and sleeps until each next wake up to `until`, recording sends.
async fn drive(s: &mut Scheduler, until: Instant, out: &mut Vec<Sent>) {
    loop {
        let now = Instant::now();
        out.extend(
            s.poll(now)
                .into_iter()
                .map(|(vip, due)| Sent { at: now, vip, due }),
        );
        match s.next_wake(now) {
            Some(w) if w <= until => {
                assert!(
                    w > now,
                    "next_wake {w:?} not after poll at {now:?}: busy loop"
                );
                sleep_until(w).await;
            }
            _ => return,
        }
    }
}

fn first_send_of(sent: &[Sent], vip: IpAddr) -> Option<Instant> {
    sent.iter().find(|s| s.vip == vip).map(|s| s.at)
}

/// The largest number of frames inside any half-open window of `len`.
fn max_frames_in_window(sent: &[Sent], len: Duration) -> u64 {
    let mut i = 0;
    let mut in_window = 0u64;
    let mut best = 0;
    for (j, s) in sent.iter().enumerate() {
        in_window += u64::from(frames_per_send(s.vip));
        while sent[i].at + len <= sent[j].at {
            in_window -= u64::from(frames_per_send(sent[i].vip));
            i += 1;
        }
        best = best.max(in_window);
    }
    best
}

#[tokio::test(start_paused = true)]
async fn thousand_addresses_all_get_first_announcement_within_two_seconds() {
    let t0 = Instant::now();
    let vips = thousand();
    let mut s = Scheduler::new(Duration::ZERO, DEFAULT_MAX_PPS, t0);
    for v in &vips {
        s.trigger(*v, t0, Reason::Acquired);
    }
    let mut sent = Vec::new();
    drive(&mut s, t0 + Duration::from_secs(30), &mut sent).await;

    let firsts: Vec<Instant> = vips
        .iter()
        .map(|v| first_send_of(&sent, *v).expect("every address is announced"))
        .collect();
    let last_first = firsts.iter().max().copied().unwrap_or(t0) - t0;
    assert!(
        last_first <= Duration::from_secs(2),
        "last first announcement after {last_first:?}"
    );
    // The cap did apply: the first round cannot finish faster than its
    // frames minus the burst allowance at DEFAULT_MAX_PPS.
    let burst = u64::from(DEFAULT_MAX_PPS / BURST_DIVISOR);
    let floor_ms = (frames(&vips) - burst) * 1000 / u64::from(DEFAULT_MAX_PPS);
    assert!(
        last_first + Duration::from_millis(5) >= Duration::from_millis(floor_ms),
        "first round done in {last_first:?}, faster than the cap allows ({floor_ms} ms)"
    );
    // Deferral loses nothing: each address still gets its whole burst, in
    // wave order, never closer than the spacing floor.
    for v in &vips {
        let mine: Vec<&Sent> = sent.iter().filter(|x| x.vip == *v).collect();
        let waves: Vec<Wave> = mine.iter().map(|x| x.due.wave).collect();
        assert_eq!(
            waves,
            [
                Wave::First,
                Wave::First,
                Wave::First,
                Wave::Second,
                Wave::Second
            ],
            "{v}"
        );
        for w in mine.windows(2) {
            assert!(w[1].at - w[0].at >= MIN_SPACING, "{v}: {w:?}");
        }
    }
    assert_eq!(s.held_back_frames(), 0, "backlog drained");
}

#[tokio::test(start_paused = true)]
async fn frames_in_any_one_second_window_stay_within_cap_plus_burst() {
    let t0 = Instant::now();
    let vips = thousand();
    let mut s = Scheduler::new(Duration::from_secs(3), DEFAULT_MAX_PPS, t0);
    let burst = u64::from(TokenBucket::new(NonZeroU32::MIN.saturating_add(999), t0).capacity());
    for v in &vips {
        s.trigger(*v, t0, Reason::Acquired);
    }
    let mut sent = Vec::new();
    drive(&mut s, t0 + Duration::from_secs(40), &mut sent).await;

    let cap = u64::from(DEFAULT_MAX_PPS);
    let worst = max_frames_in_window(&sent, Duration::from_secs(1));
    assert!(worst <= cap + burst, "{worst} frames in one second");
    // Refresh every 3 s for 1,768 frames needs more than the cap: the
    // scheduler must run at the cap, not below it.
    assert!(worst >= cap, "only {worst} frames/s while backlogged");
    assert!(s.deferred_frames_total() > 0);
}

#[tokio::test(start_paused = true)]
async fn first_wave_of_new_trigger_overtakes_backlogged_second_wave_and_refresh() {
    let t0 = Instant::now();
    // 200 IPv4 at 100 frames/s: 4 s per round, first wave ends at ~12 s.
    let old = v4s(200);
    let mut s = Scheduler::new(Duration::from_secs(3), 100, t0);
    for v in &old {
        s.trigger(*v, t0, Reason::Acquired);
    }
    let mut sent = Vec::new();
    drive(&mut s, t0 + Duration::from_secs(14), &mut sent).await;

    let now = Instant::now();
    let pending: Vec<Wave> = s
        .pacers
        .values()
        .filter_map(|p| p.peek(now))
        .map(|d| d.wave)
        .collect();
    assert!(pending.len() > 50, "a backlog exists: {}", pending.len());
    assert!(
        pending.iter().all(|w| *w != Wave::First),
        "only later waves are pending: {pending:?}"
    );

    let new = v6s(0x100, 1)[0];
    s.trigger(new, now, Reason::Acquired);
    let from = sent.len();
    drive(&mut s, now + Duration::from_secs(4), &mut sent).await;
    let after = &sent[from..];
    assert_eq!(
        after.first().map(|x| (x.vip, x.due.wave)),
        Some((new, Wave::First))
    );
    // The bucket was empty (backlog): the new address waits at most one
    // bucket refill (2 frames at 100 frames/s), never behind the backlog.
    assert!(
        after[0].at - now <= Duration::from_millis(20),
        "{:?}",
        after[0].at - now
    );
    // Its first-wave repeats are not stuck behind the backlog either.
    let mine: Vec<Duration> = after
        .iter()
        .filter(|x| x.vip == new)
        .map(|x| x.at - now)
        .collect();
    assert_eq!(mine.len(), 3, "{mine:?}");
    for (got, planned) in mine.iter().zip(BURST_OFFSETS) {
        assert!(
            *got <= planned + Duration::from_millis(30),
            "{got:?} vs {planned:?}"
        );
    }
    assert!(s.held_back_frames() > 0, "the backlog is still there");
}

#[tokio::test(start_paused = true)]
async fn initial_announcements_go_oldest_trigger_first_and_before_any_repeat() {
    let t0 = Instant::now();
    let all = v4s(200);
    let (a, b) = all.split_at(100);
    // 100 frames/s: batch A's initial round alone takes 2 s.
    let mut s = Scheduler::new(Duration::ZERO, 100, t0);
    for v in a {
        s.trigger(*v, t0, Reason::Acquired);
    }
    let mut sent = Vec::new();
    drive(&mut s, t0 + Duration::from_millis(500), &mut sent).await;
    let t1 = Instant::now();
    for v in b {
        s.trigger(*v, t1, Reason::Acquired);
    }
    drive(&mut s, t0 + Duration::from_secs(10), &mut sent).await;

    let last_a_initial = a.iter().filter_map(|v| first_send_of(&sent, *v)).max();
    let first_b_initial = b.iter().filter_map(|v| first_send_of(&sent, *v)).min();
    let last_b_initial = b.iter().filter_map(|v| first_send_of(&sent, *v)).max();
    assert!(last_a_initial <= first_b_initial, "older trigger first");
    // A's repeats were due from 1.2 s on, while B's initial sends still
    // waited: the initial sends went first.
    let first_a_repeat = sent
        .iter()
        .filter(|x| a.contains(&x.vip))
        .filter(|x| first_send_of(&sent, x.vip) != Some(x.at))
        .map(|x| x.at)
        .min();
    assert!(last_b_initial.is_some() && first_a_repeat.is_some());
    assert!(
        last_b_initial <= first_a_repeat,
        "B initial until {:?}, A repeats from {:?}",
        last_b_initial.map(|t| t - t0),
        first_a_repeat.map(|t| t - t0)
    );
}

#[tokio::test(start_paused = true)]
async fn stopping_an_address_drops_its_deferred_sends() {
    let t0 = Instant::now();
    let vips = v4s(100);
    let mut s = Scheduler::new(Duration::from_secs(3), 100, t0);
    for v in &vips {
        s.trigger(*v, t0, Reason::Acquired);
    }
    let first = s.poll(t0);
    assert_eq!(first.len(), 1, "a 2-frame burst allowance at 100 frames/s");
    assert_eq!(s.held_back_frames(), 99 * 2);
    assert_eq!(s.deferred_frames_total(), 99 * 2);

    let stopped: Vec<IpAddr> = vips
        .iter()
        .filter(|v| **v != first[0].0)
        .take(50)
        .copied()
        .collect();
    for v in &stopped {
        s.stop(*v);
        assert!(!s.holds(*v));
    }
    assert_eq!(s.held_back_frames(), 49 * 2);

    let mut sent = Vec::new();
    drive(&mut s, t0 + Duration::from_secs(30), &mut sent).await;
    assert!(
        sent.iter().all(|x| !stopped.contains(&x.vip)),
        "a stopped address was announced"
    );
    let kept: Vec<&IpAddr> = vips.iter().filter(|v| !stopped.contains(v)).collect();
    for v in kept {
        assert!(sent.iter().any(|x| x.vip == *v), "{v} never announced");
    }
}

#[tokio::test(start_paused = true)]
async fn deferred_address_still_counts_as_held_for_duplicate_detection() {
    let t0 = Instant::now();
    let vips = v4s(10);
    let mut s = Scheduler::new(Duration::ZERO, 10, t0);
    for v in &vips {
        s.trigger(*v, t0, Reason::Acquired);
    }
    let out = s.poll(t0);
    let waiting: Vec<&IpAddr> = vips
        .iter()
        .filter(|v| !out.iter().any(|o| o.0 == **v))
        .collect();
    assert!(!waiting.is_empty());
    assert!(waiting.iter().all(|v| s.holds(**v)));
    // A second pass at the same instant does not count them again.
    assert!(s.poll(t0).is_empty());
    assert_eq!(s.deferred_frames_total(), 2 * waiting.len() as u64);
}

#[tokio::test(start_paused = true)]
async fn zero_cap_sends_everything_on_the_bare_pacer_schedule() {
    let t0 = Instant::now();
    let vips = thousand();
    let mut s = Scheduler::new(Duration::ZERO, 0, t0);
    assert_eq!(s.max_pps(), 0);
    for v in &vips {
        s.trigger(*v, t0, Reason::Acquired);
    }
    let mut sent = Vec::new();
    drive(&mut s, t0 + Duration::from_secs(30), &mut sent).await;
    assert_eq!(
        sent.iter().filter(|x| x.at == t0).count(),
        vips.len(),
        "all at once"
    );
    for v in &vips {
        let offsets: Vec<Duration> = sent
            .iter()
            .filter(|x| x.vip == *v)
            .map(|x| x.at - t0)
            .collect();
        assert_eq!(offsets.len(), BURST_OFFSETS.len(), "{v}");
        for (got, planned) in offsets.iter().zip(BURST_OFFSETS) {
            // Tokio's timer wheel fires on whole milliseconds.
            assert!(
                *got >= planned && *got <= planned + Duration::from_millis(1),
                "{v}: {got:?}"
            );
        }
    }
    assert_eq!(s.deferred_frames_total(), 0);
}

#[tokio::test(start_paused = true)]
async fn raising_the_cap_to_unlimited_releases_the_backlog_at_once() {
    let t0 = Instant::now();
    let vips = v4s(50);
    let mut s = Scheduler::new(Duration::ZERO, 10, t0);
    for v in &vips {
        s.trigger(*v, t0, Reason::Acquired);
    }
    assert_eq!(s.poll(t0).len(), 1);
    let t1 = t0 + Duration::from_millis(100);
    s.set_max_pps(0, t1);
    assert_eq!(s.poll(t1).len(), 49);
    assert_eq!(s.held_back_frames(), 0);
}

#[tokio::test(start_paused = true)]
async fn token_bucket_refills_exactly_and_never_beyond_capacity() {
    let t0 = Instant::now();
    let rate = NonZeroU32::new(1000).expect("non-zero literal");
    let mut b = TokenBucket::new(rate, t0);
    assert_eq!(b.capacity(), 20, "20 ms worth at 1000 frames/s");
    assert!(b.try_take(t0, 20));
    assert!(!b.try_take(t0, 1));
    let ready = b.ready_at(t0, 2);
    assert_eq!(ready, t0 + Duration::from_millis(2));
    assert!(!b.try_take(ready - Duration::from_nanos(1), 2));
    assert!(b.try_take(ready, 2));
    // Idle for a long time: still only one burst allowance.
    let later = t0 + Duration::from_secs(3600);
    assert!(b.try_take(later, 20));
    assert!(!b.try_take(later, 1));

    let slow = TokenBucket::new(NonZeroU32::MIN, t0);
    assert_eq!(
        slow.capacity(),
        MAX_FRAMES_PER_SEND,
        "always room for an IPv4 pair"
    );
}
