//! Load generator with fault injection and the detect/remediate/recover report.
//!
//! Not built yet: a later issue fills this crate.
