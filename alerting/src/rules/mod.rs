//! Prometheus rule groups: rule files, templating, evaluation and the manager that schedules them.

pub mod api;
pub mod config;
pub mod group;
pub mod manager;
pub mod template;
pub mod unittest;

pub use config::{RuleFile, RuleFileError};
pub use group::{Alert, AlertState, Group, GroupOptions};
pub use manager::{RuleManager, expand_globs, load_groups};
