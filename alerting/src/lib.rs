//! Rule groups (Prometheus rule files), the Alertmanager-compatible router and the notifiers (email, PagerDuty, webhook, runbook).
//!
//! Not built yet: issue #4 fills this crate. It must never write to storage except through the appender.
