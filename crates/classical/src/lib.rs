//! Classical baseline: thresholds, watershed, counting
