//! Studies: a TOML file naming datasets, tasks, methods and metrics ([`schema`]), its datasets
//! ([`data`]) and methods ([`methods`]) at run time, and the resumable runner ([`runner`]) that
//! fills a results store (`mica-store`), from which `mica-report` writes the report.

pub mod data;
pub mod methods;
pub mod runner;
pub mod schema;

pub use runner::{run, RunOptions, RunSummary};
pub use schema::Study;
