//! Alerting: Prometheus rule groups (recording and alerting rules, `vigil check rules`,
//! `vigil test rules`), the Alertmanager-compatible router (routes, grouping, silences,
//! inhibition, the v2 API) and the notifiers (webhook, email, PagerDuty, Slack, OpsGenie), with
//! Alertmanager's templates and delivery semantics.
//!
//! Rules read through the query engine and write only through [`vigil_storage::MetricsAppender`].

pub mod notify;
mod persist;
pub mod router;
pub mod rules;
