//! The path of a transactional file: its statements pipelined inside kubemigrate's
//! transaction, and [`Sent`], a request whose reply is read later.

use super::*;

impl Runner<'_> {
    /// Runs a transactional file's statements inside the transaction that `begin`
    /// (already sent) opens, pipelined: each statement is sent without waiting for
    /// the reply of the one before, at most [`PIPELINE_STATEMENTS`] statements (or
    /// [`PIPELINE_BYTES`] of text) ahead; the replies are then read in order, the
    /// server's notices drained after each as before, and the first error is the
    /// file's, with its statement number and place. Inside the transaction this
    /// changes nothing the file sees: the server runs the statements one after the
    /// other, and after an error it refuses the ones already sent (the transaction
    /// is aborted) until the `ROLLBACK`. A COPY, and an `\echo` (so its event keeps
    /// its place among the notices), first wait for every reply.
    pub(super) async fn run_pipelined(
        &self,
        source: &Source,
        m: &Migration,
        begin: Option<Sent<'_, Result<(), tokio_postgres::Error>>>,
        events: &mut dyn FnMut(Event),
    ) -> Result<Result<(), MigrateError>, Begin> {
        // `BEGIN` outside a transaction block fails only when the session does (a
        // lost connection, a terminated backend): then nothing sent after it runs.
        if let Some(begin) = begin {
            begin
                .reply()
                .await
                .map_err(|e| Begin(MigrateError::database("starting a transaction", &e)))?;
        }
        Ok(self.run_pipelined_statements(source, m, events).await)
    }

    async fn run_pipelined_statements(
        &self,
        source: &Source,
        m: &Migration,
        events: &mut dyn FnMut(Event),
    ) -> Result<(), MigrateError> {
        let mut script = self.open_script(source, m)?;
        let mut number = 0usize;
        let mut pending: std::collections::VecDeque<PendingStatement<'_>> = Default::default();
        let mut bytes = 0usize;
        loop {
            let item = match script.next_item() {
                Ok(item) => item,
                Err(e) => {
                    // A statement already sent that failed comes first, as it would
                    // have stopped the file before this point was read.
                    self.await_pending(m, &mut pending, events).await?;
                    return Err(e.into());
                }
            };
            let Some(item) = item else { break };
            match item {
                Item::Echo(text) => {
                    self.await_pending(m, &mut pending, events).await?;
                    bytes = 0;
                    events(Event::Echo {
                        version: m.version.to_string(),
                        text,
                    });
                }
                Item::Copy { ref text, ref at }
                | Item::Sql {
                    ref text,
                    gset: Some(_),
                    ref at,
                    ..
                } => {
                    // A COPY, or a `\gset` whose row sets variables that the statements
                    // after it may use: it runs alone, once the statements before it
                    // are done.
                    self.await_pending(m, &mut pending, events).await?;
                    bytes = 0;
                    number += 1;
                    let result = match &item {
                        Item::Sql {
                            gset: Some(prefix), ..
                        } => self.gset(text, prefix, at, &mut script).await,
                        _ => self.copy_in(text, &mut script).await,
                    };
                    self.drain_notices(m, events);
                    result.map_err(|e| e.into_error(m, number, &item, at))?;
                }
                Item::Sql { ref text, .. } => {
                    number += 1;
                    bytes += text.len();
                    let client = self.client();
                    let sent = Sent::send(async move {
                        let result = match &item {
                            Item::Sql { text, .. } => client.batch_execute(text).await,
                            _ => Ok(()),
                        };
                        (result, item)
                    })
                    .await;
                    pending.push_back((number, sent));
                    if pending.len() >= PIPELINE_STATEMENTS || bytes >= PIPELINE_BYTES {
                        self.await_pending(m, &mut pending, events).await?;
                        bytes = 0;
                    }
                }
            }
        }
        self.await_pending(m, &mut pending, events).await?;
        let summary = script.finish();
        if summary.checksum != m.checksum {
            return Err(changed_while_running(m));
        }
        Ok(())
    }

    /// Reads the replies of the statements sent, in order, draining notices after
    /// each; stops at the first error. The requests left are dropped: the server
    /// refuses them (the transaction is aborted) and their replies are discarded.
    async fn await_pending(
        &self,
        m: &Migration,
        pending: &mut std::collections::VecDeque<PendingStatement<'_>>,
        events: &mut dyn FnMut(Event),
    ) -> Result<(), MigrateError> {
        while let Some((number, sent)) = pending.pop_front() {
            let (result, item) = sent.reply().await;
            self.drain_notices(m, events);
            if let Err(e) = result {
                pending.clear();
                let Item::Sql { at, .. } = &item else {
                    return Err(MigrateError::database(
                        format!("running {} (statement {number})", m.version),
                        &e,
                    ));
                };
                return Err(statement_error(m, number, &item, at, e));
            }
        }
        Ok(())
    }
}

/// `BEGIN` failed: the file did not start.
pub(super) struct Begin(pub(super) MigrateError);

/// At most this many statements of a file are sent ahead of the replies read.
pub(super) const PIPELINE_STATEMENTS: usize = 256;
/// At most about this much statement text is sent ahead of the replies read.
pub(super) const PIPELINE_BYTES: usize = 1 << 20;

/// A statement sent and not yet answered: its number, and its request (which gives
/// back the statement, for the error's place).
type PendingStatement<'c> = (usize, Sent<'c, (Result<(), tokio_postgres::Error>, Item)>);

/// A request sent to the server whose reply is read later (pipelining).
///
/// tokio-postgres sends a request when its future is first polled and pairs
/// replies with requests in the order sent: polling each future once, in order,
/// sends the requests in that order without waiting for a reply.
pub(super) struct Sent<'c, T> {
    future: futures_util::future::BoxFuture<'c, T>,
    done: Option<T>,
}

impl<'c, T> Sent<'c, T> {
    /// Polls `future` once: its request goes out now.
    pub(super) async fn send(future: impl std::future::Future<Output = T> + Send + 'c) -> Self {
        let mut future: futures_util::future::BoxFuture<'c, T> = Box::pin(future);
        let done = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match future.as_mut().poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await;
        Sent { future, done }
    }

    /// The reply.
    pub(super) async fn reply(self) -> T {
        match self.done {
            Some(v) => v,
            None => self.future.await,
        }
    }
}
