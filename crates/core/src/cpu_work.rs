//! CPU-heavy work (password hashing, crypt, key generation) off the async
//! worker threads, on a bounded pool: at most one job per CPU runs at a
//! time, the rest wait their turn. `spawn_blocking` alone would move the
//! work off the workers but let hundreds of Argon2 hashes (19 MiB each) run
//! at once; the bound keeps memory and latency of everything else steady.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

use crate::error::CoreError;

fn permits() -> &'static Semaphore {
    static POOL: OnceLock<Semaphore> = OnceLock::new();
    POOL.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Semaphore::new(cpus)
    })
}

/// Run `job` on a blocking thread once a CPU slot is free. `what` names the
/// work in the error when the job panics.
pub async fn run<T, F>(what: &'static str, job: F) -> Result<T, CoreError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let _slot = permits()
        .acquire()
        .await
        .map_err(|_| CoreError::Secret(format!("{what}: the CPU pool is closed")))?;
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| CoreError::Secret(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn jobs_leave_the_async_thread_free() {
        // On a single-threaded runtime a job on the async thread would
        // block the ticker; off it, the ticker keeps running.
        let job = tokio::spawn(run("test", || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            7
        }));
        let started = std::time::Instant::now();
        let ticker = tokio::spawn(async {
            for _ in 0..5 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        ticker.await.unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_millis(250),
            "the ticker waited for the job"
        );
        assert_eq!(job.await.unwrap().unwrap(), 7);
    }
}
