//! Segment Anything (MobileSAM, SAM ViT-B/L/H) on candle with complete automatic mask generation
