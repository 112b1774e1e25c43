//! Restart a task that panics (R2: no loop may die for good).

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::error;

use vipd_backoff::Backoff;

/// Runs the future made by `make` until `cancel` fires; when it panics or
/// returns early, logs it and starts a new one after a capped, jittered
/// back-off. Returns when cancelled or when the task returns after the
/// cancellation.
pub async fn supervise<F, Fut>(name: &'static str, cancel: CancellationToken, mut make: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        let handle = tokio::spawn(make());
        let abort = handle.abort_handle();
        let res = tokio::select! {
            r = handle => r,
            () = cancel.cancelled() => {
                abort.abort();
                return;
            }
        };
        if cancel.is_cancelled() {
            return;
        }
        match res {
            Ok(()) => error!(task = name, "task returned unexpectedly; restarting"),
            Err(e) if e.is_panic() => error!(task = name, "task panicked; restarting"),
            Err(e) => error!(task = name, error = %e, "task ended; restarting"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = cancel.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_restarted_until_cancelled() {
        let runs = Arc::new(AtomicU32::new(0));
        let cancel = CancellationToken::new();
        let r = runs.clone();
        let c = cancel.clone();
        let sup = tokio::spawn(supervise("test", cancel.clone(), move || {
            let r = r.clone();
            let c = c.clone();
            async move {
                if r.fetch_add(1, Ordering::SeqCst) < 3 {
                    panic!("boom");
                }
                c.cancelled().await;
            }
        }));
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            4,
            "three panics, then a healthy run"
        );
        cancel.cancel();
        sup.await.expect("supervisor ends");
    }
}
