//! CPU time (of this thread) per stage of the classical pipeline on one image: the fastest of
//! the repetitions.
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

/// CPU time of this thread, in seconds (not disturbed by other processes on a shared machine).
#[derive(Clone, Copy)]
struct Instant(f64);

impl Instant {
    fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Instant(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
    fn elapsed(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64((Instant::now().0 - self.0).max(0.0))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().ok_or("usage: stage_times IMAGE [REPS]")?;
    let reps: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(50);
    // Every `for _ in 0..reps` body is timed on its own by `tick`; `lap` prints the fastest.
    let mut t = Instant::now();
    let mut best = f64::INFINITY;
    let tick = |t: &mut Instant, best: &mut f64| {
        *best = best.min(t.elapsed().as_secs_f64());
        *t = Instant::now();
    };
    let lap = |name: &str, t: &mut Instant, best: &mut f64| {
        println!("{name:<22} {:8.3} ms (fastest of {reps})", *best * 1000.0);
        *best = f64::INFINITY;
        *t = Instant::now();
    };
    let mut img = None;
    for _ in 0..reps {
        img = Some(mica_core::io::read_image(std::path::Path::new(path))?);
        tick(&mut t, &mut best);
    }
    let img = img.ok_or("no repetitions")?;
    lap("read", &mut t, &mut best);
    let p = Plane::from_image(&img)?;
    let mut s = p.clone();
    for _ in 0..reps {
        s = gaussian(&p, 1.0);
        tick(&mut t, &mut best);
    }
    lap("gaussian s=1", &mut t, &mut best);
    for _ in 0..reps {
        let _ = gaussian(&p, 8.0);
        tick(&mut t, &mut best);
    }
    lap("gaussian s=8", &mut t, &mut best);
    let mut fg = above(&s, 0.0);
    for _ in 0..reps {
        let h = Histogram::of(&s.data, 256).ok_or("constant")?;
        fg = above(&s, otsu(&h));
        tick(&mut t, &mut best);
    }
    lap("otsu+threshold", &mut t, &mut best);
    for _ in 0..reps {
        fg = fill_holes(&fg);
        tick(&mut t, &mut best);
    }
    lap("fill holes", &mut t, &mut best);
    let mut d = distance_transform(&fg);
    for _ in 0..reps {
        d = distance_transform(&fg);
        tick(&mut t, &mut best);
    }
    lap("distance transform", &mut t, &mut best);
    let mut pk = Vec::new();
    for _ in 0..reps {
        pk = peak_local_max(&d, &fg, 5, 0.0);
        tick(&mut t, &mut best);
    }
    lap("peaks md=5", &mut t, &mut best);
    let mut mk = markers_at(&pk, fg.width(), fg.height());
    for _ in 0..reps {
        mk = markers_at(&pk, fg.width(), fg.height());
        tick(&mut t, &mut best);
    }
    lap("markers", &mut t, &mut best);
    let mut neg = d.clone();
    neg.data.iter_mut().for_each(|v| *v = -*v);
    for _ in 0..reps {
        let _ = watershed(&neg, &mk, Some(&fg), Connectivity::Four)?;
        tick(&mut t, &mut best);
    }
    lap("watershed", &mut t, &mut best);
    for preset in [
        Preset::Textbook,
        Preset::FluorescenceNuclei,
        Preset::FluorescenceCells,
        Preset::Auto,
    ] {
        let c = Classical::preset(preset)?;
        for _ in 0..reps {
            c.segment_image(&img)?;
            tick(&mut t, &mut best);
        }
        lap(preset.name(), &mut t, &mut best);
        // The pipeline's own stage times, fastest of the repetitions stage by stage.
        let mut fastest = [f64::INFINITY; 5];
        for _ in 0..reps {
            let s = c.run(&img)?.timings;
            let ms = [
                s.prepare_ms,
                s.threshold_ms,
                s.cleanup_ms,
                s.split_ms,
                s.filter_ms,
            ];
            for (f, m) in fastest.iter_mut().zip(ms) {
                *f = f.min(m);
            }
        }
        println!(
            "  stages: prepare {:.3}, threshold {:.3}, cleanup {:.3}, split {:.3}, filter {:.3} ms",
            fastest[0], fastest[1], fastest[2], fastest[3], fastest[4]
        );
        t = Instant::now();
    }
    Ok(())
}
