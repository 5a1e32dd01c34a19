//! The Alertmanager-compatible router: configuration (`alertmanager.yml`), label matchers, the
//! routing tree, grouping and timing, inhibition, silences, time intervals, the v2 API, and the
//! running service that hands flushes to the [notifiers](crate::notify).

pub mod api;
pub mod config;
mod deliver;
pub mod dispatch;
pub mod inhibit;
pub mod matchers;
pub mod metrics;
pub mod service;
pub mod silence;
pub mod timeinterval;

pub use config::{AlertmanagerConfig, Route};
pub use dispatch::{Alert, Dispatcher, Flush};
pub use matchers::{MatchType, Matcher, Matchers};
pub use metrics::{IntegrationLabel, RouterMetrics};
pub use service::{AlertRouter, RouterOptions};
