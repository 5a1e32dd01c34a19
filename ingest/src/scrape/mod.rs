//! Scraping: Prometheus-syntax configuration, service discovery (static and file), relabeling, and one
//! scrape loop per target with staleness handling and report series.

pub mod config;
pub mod discovery;
pub mod manager;
pub mod relabel;
pub mod scraper;
pub mod target;

pub use config::{GlobalConfig, ScrapeConfig};
pub use manager::{ScrapeManager, TargetInfo};
pub use scraper::ScrapeContext;
