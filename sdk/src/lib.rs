//! What a runbook author links against: the guest side of the runbook ABI, plus example runbooks.
//!
//! Not built yet: a later issue fills this crate.
