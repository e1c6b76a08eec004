//! (phase 2)
use super::auth::Cx;
use super::state::State;
use super::web::{Reply, Req};

pub(crate) fn route(_st: &mut State, _req: &Req, _cx: &mut Cx) -> Reply {
    Reply::new(404)
}
