//! What requests and answers look like to everyone who reads them: the one
//! body type, and one view of a head's fields whether it is a header map
//! (the hyper lane) or the raw bytes as they came (the fast lane). Every
//! identity reader is written once, against [`HeaderView`].
//!
//! A leaf: it imports nothing of iumgate's.

pub mod body;
mod view;

pub use view::{text, wants_html, Fields, HeaderView};
