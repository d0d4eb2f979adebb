//! The vector units of this CPU, detected once for the whole process: the kernels of mica's
//! crates that have copies compiled for wider registers (classical's smoothing and min/max
//! filters, SAM's decoder kernels) all choose from this one answer.

/// The vector units kernels may run on, widest last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum VectorUnits {
    /// What the target has without detection (SSE2 on x86-64).
    Baseline,
    /// AVX2 with fused multiply-add (8 `f32` lanes).
    Avx2Fma,
    /// AVX-512 F, BW and VL, with AVX2 and FMA (16 `f32` lanes).
    Avx512,
}

/// The widest vector units this CPU has (checked once).
pub fn vector_units() -> VectorUnits {
    static UNITS: std::sync::OnceLock<VectorUnits> = std::sync::OnceLock::new();
    *UNITS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma");
            if avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl") {
                return VectorUnits::Avx512;
            }
            if avx2 {
                return VectorUnits::Avx2Fma;
            }
        }
        VectorUnits::Baseline
    })
}
