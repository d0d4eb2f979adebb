//! Time per stage of the classical pipeline on one image, averaged over repetitions.
//!
//! ```text
//! cargo run --release -p mica-classical --example stage_times -- IMAGE [REPS]
//! ```

use mica_classical::distance::distance_transform;
use mica_classical::filter::gaussian;
use mica_classical::morphology::fill_holes;
use mica_classical::peaks::{markers_at, peak_local_max};
use mica_classical::threshold::{above, otsu, Histogram};
use mica_classical::watershed::watershed;
use mica_classical::{Classical, Plane, Preset};
use mica_core::Connectivity;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().ok_or("usage: stage_times IMAGE [REPS]")?;
    let reps: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(50);
    let mut t = Instant::now();
    let lap = |name: &str, t: &mut Instant| {
        println!(
            "{name:<22} {:8.3} ms",
            t.elapsed().as_secs_f64() * 1000.0 / reps as f64
        );
        *t = Instant::now();
    };
    let mut img = None;
    for _ in 0..reps {
        img = Some(mica_core::io::read_image(std::path::Path::new(path))?);
    }
    let img = img.ok_or("no repetitions")?;
    lap("read", &mut t);
    let p = Plane::from_image(&img)?;
    let mut s = p.clone();
    for _ in 0..reps {
        s = gaussian(&p, 1.0);
    }
    lap("gaussian s=1", &mut t);
    for _ in 0..reps {
        let _ = gaussian(&p, 8.0);
    }
    lap("gaussian s=8", &mut t);
    let mut fg = above(&s, 0.0);
    for _ in 0..reps {
        let h = Histogram::of(&s.data, 256).ok_or("constant")?;
        fg = above(&s, otsu(&h));
    }
    lap("otsu+threshold", &mut t);
    for _ in 0..reps {
        fg = fill_holes(&fg);
    }
    lap("fill holes", &mut t);
    let mut d = distance_transform(&fg);
    for _ in 0..reps {
        d = distance_transform(&fg);
    }
    lap("distance transform", &mut t);
    let mut pk = Vec::new();
    for _ in 0..reps {
        pk = peak_local_max(&d, &fg, 5, 0.0);
    }
    lap("peaks md=5", &mut t);
    let mut mk = markers_at(&pk, fg.width(), fg.height());
    for _ in 0..reps {
        mk = markers_at(&pk, fg.width(), fg.height());
    }
    lap("markers", &mut t);
    let mut neg = d.clone();
    neg.data.iter_mut().for_each(|v| *v = -*v);
    for _ in 0..reps {
        let _ = watershed(&neg, &mk, Some(&fg), Connectivity::Four)?;
    }
    lap("watershed", &mut t);
    for preset in [
        Preset::Textbook,
        Preset::FluorescenceNuclei,
        Preset::FluorescenceCells,
    ] {
        let c = Classical::preset(preset)?;
        for _ in 0..reps {
            c.segment_image(&img)?;
        }
        lap(preset.name(), &mut t);
    }
    Ok(())
}
