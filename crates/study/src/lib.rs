//! Studies: a TOML file naming datasets, tasks, methods and metrics ([`schema`]), its datasets
//! ([`data`]) and methods ([`methods`]) at run time, and the resumable runner ([`runner`]) that
//! fills a results store (`mica-store`); [`evaluate`] reads a store back as typed observations and
//! evaluates them once (`mica_metrics::evaluation`), and `mica-report` renders that evaluation.

pub mod data;
pub mod evaluate;
pub mod methods;
pub mod runner;
pub mod schema;
pub mod shard;

pub use evaluate::{evaluate_store, evaluate_store_with};
pub use runner::{run, RunOptions, RunSummary};
pub use schema::Study;
