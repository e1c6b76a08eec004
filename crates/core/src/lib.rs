//! iumgate's pure core: no I/O, no timers, no sockets. Per-app facts
//! (`product`), the user name every part agrees on (`user`) and the seat
//! pool's state machine (`pool`). The proxy, the simulator and the log
//! analysis build on these; nothing here knows about them.

pub mod html;
pub mod pool;
pub mod product;
pub mod user;
