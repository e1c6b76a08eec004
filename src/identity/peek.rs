//! Reads the first bytes of a body (to find a login's username) and hands
//! back a body that replays them and streams the rest: the upstream gets the
//! request intact, and a 100 MB "login" is never buffered whole.

use crate::proxy::body::{Body, BoxError};
use bytes::{Bytes, BytesMut};
use futures_util::{stream, StreamExt};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

/// Returns up to about `limit` bytes from the start of `body` and the whole
/// body again. A body that fails while being read replays the failure.
pub async fn peek_body(mut body: Body, limit: usize) -> (Bytes, Body) {
    let mut frames: Vec<Result<Frame<Bytes>, BoxError>> = Vec::new();
    let mut prefix = BytesMut::new();
    let mut ended = false;
    while prefix.len() < limit {
        match body.frame().await {
            None => {
                ended = true;
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
                break;
            }
        }
    }
    let replay = stream::iter(frames);
    let rest: Body = if ended {
        StreamBody::new(replay).boxed_unsync()
    } else {
        let tail = http_body_util::BodyStream::new(body);
        StreamBody::new(replay.chain(tail)).boxed_unsync()
    };
    (prefix.freeze(), rest)
}
