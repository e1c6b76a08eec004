//! (phase 2)
use super::state::State;
use super::web::{Reply, Req};

pub(crate) fn route(_st: &mut State, _req: &Req) -> Option<Reply> {
    None
}
