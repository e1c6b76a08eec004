//! Reads the first bytes of a body (to find a login's username) and hands
//! back a body that replays them and streams the rest: the upstream gets the
//! request intact, and a 100 MB "login" is never buffered whole.

use crate::wire::body::{Body, BoxError};
use bytes::{Bytes, BytesMut};
use futures_util::{stream, StreamExt};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

/// How far a peek got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peeked {
    /// The body ended cleanly: the prefix is all of it.
    Whole,
    /// `limit` bytes were read and more may follow.
    Prefix,
    /// The body failed (a reset, a short body, a bad chunk) before its end.
    Failed,
}

/// Returns up to about `limit` bytes from the start of `body` and the whole
/// body again. A body that fails while being read replays the failure.
pub async fn peek_body(body: Body, limit: usize) -> (Bytes, Body) {
    let (prefix, body, _) = peek_body_status(body, limit).await;
    (prefix, body)
}

/// As [`peek_body`], and says whether the prefix is the whole body.
pub async fn peek_body_status(mut body: Body, limit: usize) -> (Bytes, Body, Peeked) {
    let mut frames: Vec<Result<Frame<Bytes>, BoxError>> = Vec::new();
    let mut prefix = BytesMut::new();
    let mut ended = false;
    let mut state = Peeked::Prefix;
    while prefix.len() < limit {
        match body.frame().await {
            None => {
                ended = true;
                state = Peeked::Whole;
                break;
            }
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = limit - prefix.len();
                    prefix.extend_from_slice(&data[..data.len().min(room)]);
                }
                frames.push(Ok(frame));
            }
            Some(Err(e)) => {
                frames.push(Err(e));
                ended = true;
                state = Peeked::Failed;
                break;
            }
        }
    }
    if state == Peeked::Prefix && http_body::Body::is_end_stream(&body) {
        state = Peeked::Whole;
        ended = true;
    }
    let replay = stream::iter(frames);
    let rest: Body = if ended {
        StreamBody::new(replay).boxed_unsync()
    } else {
        let tail = http_body_util::BodyStream::new(body);
        StreamBody::new(replay.chain(tail)).boxed_unsync()
    };
    (prefix.freeze(), rest, state)
}
