//! The Alertmanager-compatible router: configuration (`alertmanager.yml`), label matchers and the
//! routing tree. Grouping, timing, inhibition, silences and notifiers build on this.

pub mod api;
pub mod config;
pub mod dispatch;
pub mod email;
pub mod inhibit;
pub mod matchers;
pub mod pagerduty;
pub mod service;
pub mod silence;
pub mod timeinterval;

pub use config::{AlertmanagerConfig, Route};
pub use dispatch::{Alert, Dispatcher, Notification};
pub use matchers::{MatchType, Matcher, Matchers};
pub use service::{AlertRouter, RouterOptions};
