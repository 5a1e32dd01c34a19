//! scale-in: removes replicas by `step` down to `min` while the `while` condition holds (see the
//! `scaling` crate).

fn scale_in(rb: &vigil_sdk::Runbook) -> Result<(), vigil_sdk::Error> {
    scaling::scale(rb, scaling::Direction::In)
}

vigil_sdk::runbook!(scale_in);
