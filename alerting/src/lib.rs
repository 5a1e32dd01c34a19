//! Alerting: Prometheus rule groups (recording and alerting rules, `vigil check rules`), and later the
//! Alertmanager-compatible router and the notifiers (email, PagerDuty, webhook, runbook).
//!
//! Rules read through the query engine and write only through [`vigil_storage::MetricsAppender`].

pub mod router;
pub mod rules;
