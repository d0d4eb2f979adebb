//! Speed of the perturbations and the generator on a BBBC005-sized image (696×520, 8-bit).
//! `cargo bench -p mica-synth`

use criterion::{criterion_group, criterion_main, Criterion};
use mica_synth::{generate, CellGenConfig, PerturbationKind, Truth};
use std::hint::black_box;

fn benches(c: &mut Criterion) {
    let scene = generate(&CellGenConfig::default(), 1).expect("preset generates");
    let truth = Truth::from_labels(scene.labels.clone());
    let mut g = c.benchmark_group("perturb_696x520_u8");
    g.sample_size(10);
    for (kind, sev) in [
        (PerturbationKind::Blur, 23.0),
        (PerturbationKind::GaussianNoise, 10.0),
        (PerturbationKind::PoissonNoise, 10.0),
        (PerturbationKind::UnevenIllumination, 40.0),
        (PerturbationKind::Jpeg, 50.0),
        (PerturbationKind::Debris, 10.0),
        (PerturbationKind::Scratches, 4.0),
        (PerturbationKind::InfoBar, 20.0),
    ] {
        let p = kind.at(sev).expect("valid severity");
        g.bench_function(format!("{}_{sev}", kind.name()), |b| {
            b.iter(|| {
                p.apply(black_box(&scene.image), &truth, 7)
                    .expect("applies")
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("generate_696x520");
    g.sample_size(10);
    for count in [20usize, 100] {
        let cfg = CellGenConfig {
            count,
            clustering_probability: 0.25,
            ..CellGenConfig::default()
        };
        g.bench_function(format!("bbbc005-w1_{count}_cells"), |b| {
            b.iter(|| generate(black_box(&cfg), 3).expect("generates"))
        });
    }
    g.finish();
}

criterion_group!(synth, benches);
criterion_main!(synth);
