//! The waiting page (built with the gate).
