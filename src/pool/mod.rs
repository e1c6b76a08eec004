//! (to be built by the pool helper)
