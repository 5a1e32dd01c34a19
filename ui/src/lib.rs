//! The web UI: static assets embedded in the binary and the routes that serve them.
//!
//! Not built yet: a later issue fills this crate.
