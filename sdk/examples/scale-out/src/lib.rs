//! scale-out: adds replicas by `step` up to `max` while the `while` condition holds (see the
//! `scaling` crate); at `max` with the condition still holding, the run fails and escalates.

fn scale_out(rb: &vigil_sdk::Runbook) -> Result<(), vigil_sdk::Error> {
    scaling::scale(rb, scaling::Direction::Out)
}

vigil_sdk::runbook!(scale_out);
