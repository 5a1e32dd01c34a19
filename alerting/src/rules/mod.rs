//! Prometheus rule groups: rule files, templating, evaluation and the manager that schedules them.

pub mod api;
pub mod config;
pub mod expr;
pub mod group;
pub mod manager;
pub mod metrics;
pub mod template;
pub mod unittest;

pub use config::{RuleFile, RuleFileError};
pub use group::{Alert, AlertState, Group, GroupOptions};
pub use manager::{BUILTIN_RULES, RuleManager, builtin_groups, expand_globs, load_groups};
pub use metrics::RuleMetrics;

#[cfg(test)]
mod builtin_tests {
    #[test]
    fn builtin_rules_are_valid() {
        let f = super::RuleFile::parse(super::BUILTIN_RULES).unwrap();
        assert!(f.groups[0].rules.len() >= 5);
    }
}
