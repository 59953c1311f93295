//! Waiting for the database to accept connections (`kubemigrate wait-for-db`).

use std::time::{Duration, Instant};

use crate::connect::{ConnectError, ConnectOptions};

/// The first retry comes after this long; each later one waits 1.5 times longer.
pub const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest pause between two attempts.
pub const MAX_RETRY: Duration = Duration::from_millis(200);

/// Why waiting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// An error waiting cannot fix (authentication failed, no such database, TLS).
    #[error("{0}")]
    Permanent(ConnectError),
    /// The timeout passed; the last error is kept.
    #[error("the database did not accept connections within {}s ({attempts} attempt{}); last error: {last}", .timeout.as_secs_f64(), if *.attempts == 1 { "" } else { "s" })]
    Timeout {
        /// The timeout.
        timeout: Duration,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        last: ConnectError,
    },
}

/// Polls until a connection opens and `SELECT 1` succeeds. Returns the number of attempts.
/// `on_retry` is called with each failed attempt's error.
///
/// # Errors
/// [`WaitError::Permanent`] at once when retrying cannot help; [`WaitError::Timeout`]
/// naming the last error when `timeout` passes.
///
/// # Caveats
/// Each attempt is bounded by the connect timeout of `options` and by what is left of
/// `timeout`, so a host that drops packets cannot stretch the wait.
pub async fn wait_for_db(
    options: &ConnectOptions,
    timeout: Duration,
    on_retry: &mut dyn FnMut(&ConnectError),
) -> Result<u32, WaitError> {
    let start = Instant::now();
    let mut delay = FIRST_RETRY;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let left = timeout.saturating_sub(start.elapsed());
        let mut attempt_options = options.clone();
        attempt_options.connect_timeout = options
            .connect_timeout
            .min(left.max(Duration::from_millis(100)));
        let error = match attempt_options.connect().await {
            Ok(conn) => match conn.client.simple_query("SELECT 1").await {
                Ok(_) => return Ok(attempts),
                Err(e) => ConnectError::Other {
                    target: options.masked_url(),
                    message: e.to_string(),
                },
            },
            Err(e) => e,
        };
        if error.is_permanent() {
            return Err(WaitError::Permanent(error));
        }
        if start.elapsed() + delay > timeout {
            return Err(WaitError::Timeout {
                timeout,
                attempts,
                last: error,
            });
        }
        on_retry(&error);
        tokio::time::sleep(delay).await;
        delay = delay.mul_f64(1.5).min(MAX_RETRY);
    }
}
