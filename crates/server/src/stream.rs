//! Response bodies written by a blocking serializer and sent as they are produced, so a large
//! catalogue is never held in memory whole.

use std::{
    io::{self, Write},
    time::Instant,
};

use axum::{
    body::{Body, Bytes},
    http::header,
    response::{IntoResponse, Response},
};
use tokio::sync::mpsc;

/// Chunk size of a streamed body.
const CHUNK: usize = 64 * 1024;

/// A `Write` that hands full chunks to the response body. Writing fails with `BrokenPipe` once
/// the client has gone, and with `TimedOut` past the deadline, which stops the serializer.
pub struct ChannelWriter {
    buffer: Vec<u8>,
    tx: mpsc::Sender<io::Result<Bytes>>,
    deadline: Instant,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if Instant::now() > self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the response took longer than the request time limit",
            ));
        }
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// A response whose body `write` produces on a blocking thread, and must finish by `deadline`
/// (a slow reader cannot hold the writer's thread for ever). An error after the first bytes
/// aborts the body (the client sees a truncated transfer, never a document that looks whole).
pub fn streamed<F>(content_type: String, deadline: Instant, write: F) -> Response
where
    F: FnOnce(ChannelWriter) -> io::Result<ChannelWriter> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let writer = ChannelWriter { buffer: Vec::with_capacity(CHUNK), tx: tx.clone(), deadline };
    tokio::task::spawn_blocking(move || {
        let result = write(writer).and_then(|mut w| w.flush());
        if let Err(e) = result {
            if e.kind() != io::ErrorKind::BrokenPipe {
                tracing::warn!(error = %e, "streamed response failed midway");
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    let body = futures::stream::unfold(Some(rx), move |rx| async move {
        let mut rx = rx?;
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(item) => item.map(|item| (item, Some(rx))),
            // past the deadline: end the body with an error; dropping the receiver stops the
            // writer at its next chunk
            Err(_) => Some((Err(io::Error::new(io::ErrorKind::TimedOut, "past the request time limit")), None)),
        }
    });
    ([(header::CONTENT_TYPE, content_type), (header::VARY, "Accept".to_owned())], Body::from_stream(body))
        .into_response()
}
