//! Perturbations and a SIMCEP-like synthetic cell generator with instance truth
