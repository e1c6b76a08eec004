//! The HTTP/1.1 fast lane: the common request (HTTP/1.1, no body, no
//! upgrade) served without hyper, the way nginx does it.
//!
//! hyper is a general HTTP engine: per request it runs a server and a client
//! state machine, a body channel, boxed timers and two header maps, and turns
//! the answer's head back into a map and out again. On a proxy's request path
//! that machinery cost more than everything else iumgate does in user space
//! (docs/PERFORMANCE.md). Here a client connection's task reads the request
//! head into its own buffer, parses it in place with `httparse`, lets the
//! hooks decide from the raw head through the same phases as on the hyper
//! lane (`Hooks::decide`, `Hooks::learn`; the rest shared:
//! [`Proxy::carry_out`], [`Proxy::finish`]), writes the head to a
//! plain upstream connection it owns, and copies the answer back with its
//! framing checked (`Content-Length`, chunked, or until close).
//!
//! Anything else goes to hyper, for the rest of the connection: the fast lane
//! hands over the connection with the bytes it has read ([`Rewind`]) the
//! moment it sees a request it does not take — a body, `Transfer-Encoding`,
//! an upgrade, `Expect`, HTTP/1.0 or 2, a head that does not parse or does
//! not fit, a non-origin-form target, iumgate's own pages. hyper then answers
//! as it always did (including the 400 or 431), so the fast lane never has to
//! decide a doubtful case: a request is either plainly simple or not its own.
//! The same goes for an https upstream (the hyper lane's client speaks TLS).
//!
//! `codec` parses heads and frames bodies, `chunked` finds where a chunked
//! body ends, `encode` writes heads, `lane` drives a connection ([`serve`]),
//! `pool` keeps its idle upstream connections ([`RawPool`]), `rewind` hands
//! its bytes to hyper.
//!
//! [`Proxy::carry_out`]: super::Proxy::carry_out
//! [`Proxy::finish`]: super::Proxy::finish

mod chunked;
mod codec;
mod encode;
#[doc(hidden)]
pub mod fuzzing;
mod lane;
mod pool;
mod rewind;

pub use chunked::{Chunks, Malformed};
pub use lane::{serve, Exit, LaneLimits};
pub use pool::{still_open, RawPool};
pub use rewind::Rewind;
