//! `runbook_configs`: receivers that start a runbook for each firing alert instead of telling a
//! person. The router only routes: what a runbook entry means (its runbook, parameters, grants,
//! policy) belongs to the remediation part, which the binary hands in as a [`RunbookFactory`]. Each
//! entry is validated by it when the configuration loads, so `vigil check config` and reload refuse
//! what a run would fail on.

use super::Notifier;

/// Builds the notifier of one `runbook_configs` entry (implemented by the remediation part).
pub trait RunbookFactory: Send + Sync {
    /// `receiver` and `index` name the entry in errors and in the execution's binding.
    fn build(
        &self,
        receiver: &str,
        index: usize,
        config: &serde_yaml_ng::Value,
    ) -> Result<Box<dyn Notifier>, String>;
}
