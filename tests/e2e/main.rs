//! End-to-end tests: the real `vigil` binary against real peers (Prometheus 2.42, node_exporter, the
//! exposition fixture server). `scripts/test` installs the peers; see `harness` for how a missing peer is
//! handled.

mod agent;
mod alertmanager;
mod bad_input;
mod blocks;
mod browser;
mod cli;
mod crash;
mod delivery;
mod demo;
mod email;
mod failover;
mod front_door;
mod grafana;
mod harness;
mod heal;
mod lb;
mod loadtest;
mod logs;
mod pagerduty;
mod peers;
mod pg;
mod probes;
mod prometheus_remote_write;
mod promql;
mod push;
mod push_protocols;
mod routing;
mod rules;
mod runbook_authors;
mod runbook_policy;
mod runbooks;
mod scale;
mod scrape;
mod self_metrics;
