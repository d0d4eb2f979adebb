//! Exit codes of `mica`, stable for scripts.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | everything asked for was done |
//! | 1 | the command failed (bad arguments after parsing, unreadable input, ...) |
//! | 2 | usage error (unknown flag, missing argument), from the argument parser |
//! | 3 | partial success: some inputs failed (each reported on stderr), the rest were processed |
//! | 4 | not implemented in this build (e.g. SAM without the `sam` feature) |
//! | 5 | `mica run` was stopped by SIGTERM or SIGINT: what was made is stored; run it again to resume |

/// Success.
pub const SUCCESS: i32 = 0;
/// The command failed.
pub const FAILURE: i32 = 1;
/// Some inputs failed and were reported; the others were processed.
pub const PARTIAL: i32 = 3;
/// The requested capability is not implemented in this build.
pub const NOT_IMPLEMENTED: i32 = 4;
/// `mica run` stopped early on a signal; what it made is stored and a rerun resumes.
pub const INTERRUPTED: i32 = 5;
