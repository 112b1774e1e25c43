//! Behaviour tests of the election core: explicit instants, no sleeps.

use super::*;
use crate::mem::MemStore;
use crate::record::{Version, WallTime};

fn timings() -> Timings {
    // kube-vip's recommended 5/3/1 s.
    Timings::new(
        Duration::from_secs(5),
        Duration::from_secs(3),
        Duration::from_secs(1),
    )
    .expect("valid timings")
}

fn ms(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

const WALL: WallTime = WallTime {
    unix_micros: 1_790_000_000_000_000,
};

/// Executes every request at once against `store` and feeds the answer back
/// (a perfect network), returning all non-request actions seen.
fn run_sync(e: &mut Elector, store: &mut MemStore, now: Instant, input: Input) -> Vec<Action> {
    let mut seen = Vec::new();
    let mut pending = e.handle(now, input);
    while !pending.is_empty() {
        let mut next = Vec::new();
        for a in pending {
            match a {
                Action::Request { id, op, .. } => {
                    let result = store.apply(&op, WALL);
                    next.extend(e.handle(now, Input::Response { id, result }));
                }
                other => seen.push(other),
            }
        }
        pending = next;
    }
    seen
}

fn only_request(actions: &[Action]) -> (RequestId, Op, Instant) {
    match actions {
        [Action::Request { id, op, deadline }] => (*id, op.clone(), *deadline),
        other => panic!("expected one request, got {other:?}"),
    }
}

fn foreign(holder: &str, transitions: u32) -> LeaseRecord {
    LeaseRecord {
        holder_identity: holder.into(),
        lease_duration_seconds: 5,
        acquire_time: Some(WALL),
        renew_time: Some(WALL),
        lease_transitions: transitions,
    }
}

#[test]
fn first_node_creates_missing_record_and_leads() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    let mut a = Elector::new("a", timings(), 1, t0);
    let seen = run_sync(&mut a, &mut store, t0, Input::Tick);
    assert_eq!(seen, vec![Action::Lead]);
    assert_eq!(a.role(), Role::Leader);
    let rec = &store.current().expect("created").record;
    assert_eq!(rec.holder_identity, "a");
    assert_eq!(rec.lease_transitions, 0);
    assert_eq!(rec.lease_duration_seconds, 5);
    assert!(rec.acquire_time.is_some() && rec.renew_time.is_some());
}

#[test]
fn holder_renews_every_retry_period_without_changing_acquire_time() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    let mut a = Elector::new("a", timings(), 1, t0);
    run_sync(&mut a, &mut store, t0, Input::Tick);
    let acquired = store.current().expect("rec").record.acquire_time;
    assert_eq!(a.poll_timeout(), Some(ms(t0, 1000)));
    let seen = run_sync(&mut a, &mut store, ms(t0, 1000), Input::Tick);
    assert!(seen.is_empty(), "renewal emits no role change: {seen:?}");
    assert_eq!(store.writes(), 2);
    let rec = &store.current().expect("rec").record;
    assert_eq!(rec.acquire_time, acquired);
    assert_eq!(rec.lease_transitions, 0);
    assert_eq!(a.status().last_renewal, Some(ms(t0, 1000)));
}

#[test]
fn renew_timeout_demotes_before_any_peer_may_acquire() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    let mut a = Elector::new("a", timings(), 1, t0);
    run_sync(&mut a, &mut store, t0, Input::Tick);
    // b sees a's record right after it was written.
    let mut b = Elector::new("b", timings(), 2, ms(t0, 10));
    let seen = run_sync(&mut b, &mut store, ms(t0, 10), Input::Tick);
    assert!(seen.is_empty());
    assert_eq!(b.role(), Role::Follower);

    // From now on a's renewals never reach the store (cut from it).
    let mut t = 1000;
    let mut fenced_at = None;
    while t <= 6000 {
        let now = ms(t0, t);
        for act in a.handle(now, Input::Tick) {
            match act {
                Action::Request { id, .. } => {
                    let r = a.handle(
                        now,
                        Input::Response {
                            id,
                            result: Err(StoreError::Unavailable("cut".into())),
                        },
                    );
                    assert!(r.iter().all(|x| matches!(x, Action::Request { .. })) || r.is_empty());
                }
                Action::Fence(FenceReason::RenewDeadline) => {
                    fenced_at.get_or_insert(t);
                }
                other => panic!("unexpected {other:?}"),
            };
        }
        t += 50;
    }
    // Fenced exactly at send time of the last good renewal (t0) + 3 s.
    assert_eq!(fenced_at, Some(3000));
    // b may acquire only at observed (10 ms) + 5 s: well after the fence.
    let mut b_led_at = None;
    let mut t = 1000;
    while t <= 7000 {
        if run_sync(&mut b, &mut store, ms(t0, t), Input::Tick).contains(&Action::Lead) {
            b_led_at.get_or_insert(t);
        }
        t += 50;
    }
    let b_led_at = b_led_at.expect("b takes over");
    assert!(
        b_led_at >= 5010,
        "b led at {b_led_at} ms, before a's lease ran out"
    );
    assert!(b_led_at > 3000 + 1000, "fence margin kept");
    assert_eq!(store.current().expect("rec").record.lease_transitions, 1);
}

#[test]
fn stale_write_loses_and_rereads() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    store.force(LeaseRecord::default());
    let mut a = Elector::new("a", timings(), 1, t0);
    let (id, op, _) = only_request(&a.handle(t0, Input::Tick));
    assert_eq!(op, Op::Get);
    let r = store.apply(&op, WALL);
    // Released record: a tries to take it at once...
    let (id2, op2, _) = only_request(&a.handle(t0, Input::Response { id, result: r }));
    assert!(matches!(op2, Op::Update { .. }));
    // ...but b got there first.
    store.force(foreign("b", 1));
    let r2 = store.apply(&op2, WALL);
    assert_eq!(r2, Err(StoreError::Conflict));
    let (_, op3, _) = only_request(&a.handle(
        t0,
        Input::Response {
            id: id2,
            result: r2,
        },
    ));
    assert_eq!(
        op3,
        Op::Get,
        "a conflict is answered by a re-read, not a blind retry"
    );
    assert_eq!(a.role(), Role::Follower);
}

#[test]
fn create_race_lost_rereads_and_follows() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    let mut a = Elector::new("a", timings(), 1, t0);
    let (id, op, _) = only_request(&a.handle(t0, Input::Tick));
    let r = store.apply(&op, WALL);
    let (id2, op2, _) = only_request(&a.handle(t0, Input::Response { id, result: r }));
    assert!(matches!(op2, Op::Create { .. }));
    store.force(foreign("b", 0));
    let r2 = store.apply(&op2, WALL);
    assert_eq!(r2, Err(StoreError::AlreadyExists));
    let (id3, op3, _) = only_request(&a.handle(
        t0,
        Input::Response {
            id: id2,
            result: r2,
        },
    ));
    assert_eq!(op3, Op::Get);
    let r3 = store.apply(&op3, WALL);
    assert!(a
        .handle(
            t0,
            Input::Response {
                id: id3,
                result: r3
            }
        )
        .is_empty());
    assert_eq!(a.status().holder.as_deref(), Some("b"));
}

#[test]
fn release_on_shutdown_fences_before_writing_an_empty_holder() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    let mut a = Elector::new("a", timings(), 1, t0);
    run_sync(&mut a, &mut store, t0, Input::Tick);
    let acts = a.handle(ms(t0, 500), Input::Shutdown);
    assert_eq!(acts.len(), 2, "{acts:?}");
    assert_eq!(acts[0], Action::Fence(FenceReason::Shutdown));
    let Action::Request { id, op, .. } = &acts[1] else {
        panic!("second action must be the release: {acts:?}");
    };
    let Op::Update { record, .. } = op else {
        panic!("release is an update: {op:?}");
    };
    assert_eq!(record.holder_identity, "");
    assert_eq!(record.lease_duration_seconds, 1);
    let r = store.apply(op, WALL);
    let after = a.handle(ms(t0, 510), Input::Response { id: *id, result: r });
    assert_eq!(after, vec![Action::Stopped]);
    assert_eq!(a.role(), Role::Stopped);
    assert_eq!(store.current().expect("rec").record.holder_identity, "");
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn follower_shutdown_stops_without_writing() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    store.force(foreign("b", 0));
    let mut a = Elector::new("a", timings(), 1, t0);
    run_sync(&mut a, &mut store, t0, Input::Tick);
    let writes = store.writes();
    let seen = run_sync(&mut a, &mut store, ms(t0, 100), Input::Shutdown);
    assert_eq!(seen, vec![Action::Stopped]);
    assert_eq!(store.writes(), writes);
}

#[test]
fn released_record_is_taken_at_once_via_watch() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    store.force(foreign("b", 3));
    let mut a = Elector::new("a", timings(), 1, t0);
    run_sync(&mut a, &mut store, t0, Input::Tick);
    let mut rel = foreign("", 3);
    rel.lease_duration_seconds = 1;
    let v = store.force(rel);
    let seen = run_sync(
        &mut a,
        &mut store,
        ms(t0, 200),
        Input::Watched(WatchEvent::Changed(v)),
    );
    assert_eq!(
        seen,
        vec![Action::Lead],
        "no waiting for a poll or the lease"
    );
    assert_eq!(store.current().expect("rec").record.lease_transitions, 4);
}

#[test]
fn foreign_holder_respected_until_its_lease_expires_on_our_clock() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    // The holder's renewTime says it renewed long ago: irrelevant, only our
    // own observation time counts (client-go's observedTime).
    let mut rec = foreign("b", 0);
    rec.renew_time = Some(WallTime { unix_micros: 0 });
    store.force(rec);
    let mut a = Elector::new("a", timings(), 1, t0);
    let mut led = None;
    for t in (0..=7000).step_by(100) {
        if run_sync(&mut a, &mut store, ms(t0, t), Input::Tick).contains(&Action::Lead) {
            led.get_or_insert(t);
        }
    }
    assert_eq!(
        led,
        Some(5000),
        "takeover exactly at first observation + lease"
    );
}

#[test]
fn a_change_of_the_record_restarts_the_wait() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    store.force(foreign("b", 0));
    let mut a = Elector::new("a", timings(), 1, t0);
    let mut led = None;
    for t in (0..=12_000).step_by(100) {
        if t == 4000 {
            store.force(foreign("b", 0)); // b renewed: new version
        }
        if run_sync(&mut a, &mut store, ms(t0, t), Input::Tick).contains(&Action::Lead) {
            led.get_or_insert(t);
        }
    }
    let led = led.expect("eventually");
    assert!(
        led >= 9000,
        "the renewal seen after 4 s restarts the 5 s wait: led at {led}"
    );
    assert!(
        led <= 9000 + 1200,
        "takes over within a poll of expiry: {led}"
    );
}

#[test]
fn longer_lease_written_by_another_client_is_honoured() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    let mut rec = foreign("kube-vip-node", 0);
    rec.lease_duration_seconds = 15;
    store.force(rec);
    let mut a = Elector::new("a", timings(), 1, t0);
    let mut led = None;
    for t in (0..=16_000).step_by(100) {
        if run_sync(&mut a, &mut store, ms(t0, t), Input::Tick).contains(&Action::Lead) {
            led.get_or_insert(t);
        }
    }
    assert_eq!(led, Some(15_000));
}

#[test]
fn reacquires_after_an_outage_without_restart() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    let mut a = Elector::new("a", timings(), 1, t0);
    run_sync(&mut a, &mut store, t0, Input::Tick);
    // Store down for 20 s: every request fails.
    let mut fenced = false;
    for t in (100..20_000).step_by(100) {
        let now = ms(t0, t);
        let mut acts = a.handle(now, Input::Tick);
        while let Some(act) = acts.pop() {
            match act {
                Action::Request { id, .. } => acts.extend(a.handle(
                    now,
                    Input::Response {
                        id,
                        result: Err(StoreError::Unavailable("down".into())),
                    },
                )),
                Action::Fence(_) => fenced = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(a.poll_timeout().is_some(), "never parked (R2)");
    }
    assert!(fenced);
    assert_eq!(a.role(), Role::Follower);
    // Store back: a is still the recorded holder and reclaims at once.
    let mut led = None;
    for t in (20_000..24_000).step_by(100) {
        if run_sync(&mut a, &mut store, ms(t0, t), Input::Tick).contains(&Action::Lead) {
            led.get_or_insert(t);
        }
    }
    let led = led.expect("leads again without restart");
    assert!(
        led <= 21_300,
        "within about one retry period of the heal: {led}"
    );
}

#[test]
fn late_acquire_answer_past_the_renew_deadline_does_not_lead() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    let mut a = Elector::new("a", timings(), 1, t0);
    let (id, op, _) = only_request(&a.handle(t0, Input::Tick));
    let r = store.apply(&op, WALL);
    let (id2, op2, deadline) = only_request(&a.handle(t0, Input::Response { id, result: r }));
    assert_eq!(
        deadline,
        ms(t0, 1500),
        "half the renew deadline per request"
    );
    let r2 = store.apply(&op2, WALL);
    // The answer arrives 3.5 s after sending, past the renew deadline: the
    // core timed the request out long ago and ignores the late answer.
    let acts = a.handle(
        ms(t0, 3500),
        Input::Response {
            id: id2,
            result: r2,
        },
    );
    assert!(!acts.contains(&Action::Lead), "{acts:?}");
    assert_eq!(a.role(), Role::Follower);
}

#[test]
fn in_flight_request_times_out_at_its_deadline_and_retries() {
    let t0 = Instant::now();
    let mut a = Elector::new("a", timings(), 1, t0);
    let (_, _, deadline) = only_request(&a.handle(t0, Input::Tick));
    assert_eq!(deadline, ms(t0, 1500));
    assert_eq!(a.poll_timeout(), Some(deadline));
    assert!(a.handle(deadline, Input::Tick).is_empty());
    let next = a.poll_timeout().expect("scheduled");
    assert!(next > deadline && next <= deadline + Duration::from_millis(1200));
    let (_, op, _) = only_request(&a.handle(next, Input::Tick));
    assert_eq!(op, Op::Get);
}

#[test]
fn restarted_holder_reclaims_its_own_record_keeping_acquire_time() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    let mut rec = foreign("a", 2);
    rec.acquire_time = Some(WallTime { unix_micros: 42 });
    store.force(rec);
    let mut a = Elector::new("a", timings(), 1, t0);
    let seen = run_sync(&mut a, &mut store, t0, Input::Tick);
    assert_eq!(seen, vec![Action::Lead]);
    let rec = &store.current().expect("rec").record;
    assert_eq!(rec.acquire_time, Some(WallTime { unix_micros: 42 }));
    assert_eq!(rec.lease_transitions, 2, "same holder: no transition");
}

#[test]
fn unhealthy_holder_fences_releases_and_does_not_campaign() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    let mut a = Elector::new("a", timings(), 1, t0);
    run_sync(&mut a, &mut store, t0, Input::Tick);
    let seen = run_sync(&mut a, &mut store, ms(t0, 100), Input::SetEligible(false));
    assert_eq!(seen, vec![Action::Fence(FenceReason::Unhealthy)]);
    assert_eq!(store.current().expect("rec").record.holder_identity, "");
    for t in (200..10_000).step_by(100) {
        let seen = run_sync(&mut a, &mut store, ms(t0, t), Input::Tick);
        assert!(seen.is_empty(), "no campaign while unhealthy: {seen:?}");
    }
    let seen = run_sync(&mut a, &mut store, ms(t0, 10_000), Input::SetEligible(true));
    assert_eq!(seen, vec![Action::Lead]);
}

#[test]
fn leader_seeing_a_foreign_holder_on_watch_confirms_by_reading_first() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    let mut a = Elector::new("a", timings(), 1, t0);
    run_sync(&mut a, &mut store, t0, Input::Tick);
    // A stale event from before a's acquisition must not demote it.
    let stale = Versioned {
        record: foreign("b", 0),
        version: Version("0".into()),
    };
    let seen = run_sync(
        &mut a,
        &mut store,
        ms(t0, 100),
        Input::Watched(WatchEvent::Changed(stale)),
    );
    assert!(seen.is_empty(), "{seen:?}");
    assert_eq!(a.role(), Role::Leader);
    // A real takeover (only possible if a was cut off) demotes it.
    store.force(foreign("b", 1));
    let v = store.current().cloned().expect("rec");
    let seen = run_sync(
        &mut a,
        &mut store,
        ms(t0, 200),
        Input::Watched(WatchEvent::Changed(v)),
    );
    assert_eq!(seen, vec![Action::Fence(FenceReason::Lost)]);
}

#[test]
fn wall_clock_jumps_do_not_affect_the_holder() {
    // The core never reads wall time; the records it writes carry whatever
    // the driver stamps. Feed stamps that jump back and forth by hours: the
    // holder's renewals and its fence deadline are unaffected.
    let t0 = Instant::now();
    let mut store = MemStore::new();
    let mut a = Elector::new("a", timings(), 1, t0);
    let walls = [WALL.unix_micros, 0, WALL.unix_micros * 2, 5];
    let mut fenced = false;
    for (i, t) in (0..=10_000).step_by(250).enumerate() {
        let now = ms(t0, t);
        let wall = WallTime {
            unix_micros: walls[i % walls.len()],
        };
        let mut acts = a.handle(now, Input::Tick);
        while let Some(act) = acts.pop() {
            match act {
                Action::Request { id, op, .. } => {
                    let result = store.apply(&op, wall);
                    acts.extend(a.handle(now, Input::Response { id, result }));
                }
                Action::Fence(_) => fenced = true,
                Action::Lead | Action::Stopped => {}
            }
        }
    }
    assert!(!fenced);
    assert_eq!(a.role(), Role::Leader);
}

#[test]
fn duplicate_claim_triggers_an_immediate_reread() {
    let t0 = Instant::now();
    let mut store = MemStore::new();
    let mut a = Elector::new("a", timings(), 1, t0);
    run_sync(&mut a, &mut store, t0, Input::Tick);
    let acts = a.handle(ms(t0, 300), Input::Reread);
    let (_, op, deadline) = only_request(&acts);
    assert_eq!(op, Op::Get);
    assert_eq!(
        deadline,
        ms(t0, 1800),
        "half the renew deadline, and never past the fence"
    );
}

#[test]
fn leader_request_stuck_on_a_dead_connection_leaves_time_to_renew_before_the_fence() {
    // 5/3/1 s: a renewal sent at 1 s hangs (black-holed connection). It is
    // given up at 2.5 s and retried at once (the driver re-dials), so the
    // retry lands before the fence at 3 s: the holder keeps the VIP.
    let t0 = Instant::now();
    let mut store = MemStore::new();
    let mut a = Elector::new("a", timings(), 1, t0);
    run_sync(&mut a, &mut store, t0, Input::Tick);
    let (_, op, deadline) = only_request(&a.handle(ms(t0, 1000), Input::Tick));
    assert!(matches!(op, Op::Update { .. }));
    assert_eq!(deadline, ms(t0, 2500));
    // Nothing comes back; at the deadline the core gives up and retries at
    // once, over a working store this time.
    let seen = run_sync(&mut a, &mut store, deadline, Input::Tick);
    assert!(seen.is_empty(), "renewed, no fence: {seen:?}");
    assert_eq!(a.role(), Role::Leader);
    assert_eq!(a.status().last_renewal, Some(deadline));
    // No fence at 3 s.
    assert!(a
        .handle(ms(t0, 3000), Input::Tick)
        .iter()
        .all(|x| !matches!(x, Action::Fence(_))));
}
