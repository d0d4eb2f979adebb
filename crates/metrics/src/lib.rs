//! Metrics for classification, counting, foreground and instance segmentation, with bootstrap intervals; answer parsing
