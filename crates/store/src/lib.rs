//! SQLite results store and response cache
