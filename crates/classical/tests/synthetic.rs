//! The pipeline on synthetic images: touching disks, noise, 16-bit data, RGB, and degenerate
//! inputs (constant, tiny, non-finite).

use mica_classical::{Classical, Error, Preset, Settings, Split};
use mica_core::rng::SplitMix64;
use mica_core::Image;

/// Disks of `radius` at `centres` with value `fg` on `bg`, plus Gaussian noise of `noise_sd`.
fn disks(
    w: u32,
    h: u32,
    centres: &[(f32, f32)],
    radius: f32,
    (bg, fg): (f32, f32),
    (noise_sd, seed): (f32, u64),
) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as f32, (i / w) as f32);
            let inside = centres
                .iter()
                .any(|&(cx, cy)| (x - cx).powi(2) + (y - cy).powi(2) <= radius * radius);
            (if inside { fg } else { bg }) + noise_sd * rng.normal() as f32
        })
        .collect()
}

fn gray8(w: u32, h: u32, v: &[f32]) -> Image {
    Image::gray8(
        w,
        h,
        v.iter()
            .map(|x| x.round().clamp(0.0, 255.0) as u8)
            .collect(),
    )
    .unwrap()
}

fn gray16(w: u32, h: u32, v: &[f32]) -> Image {
    Image::gray16(
        w,
        h,
        v.iter()
            .map(|x| x.round().clamp(0.0, 65535.0) as u16)
            .collect(),
    )
    .unwrap()
}

fn count(preset: Preset, img: &Image) -> usize {
    Classical::preset(preset)
        .unwrap()
        .segment_image(img)
        .unwrap()
        .count
}

#[test]
fn two_touching_disks_are_split_in_two() {
    let (w, h) = (80, 50);
    let v = disks(
        w,
        h,
        &[(25.0, 25.0), (47.0, 25.0)],
        12.0,
        (20.0, 200.0),
        (0.0, 1),
    );
    let img = gray8(w, h, &v);
    let seg = Classical::preset(Preset::FluorescenceNuclei)
        .unwrap()
        .segment_image(&img)
        .unwrap();
    assert_eq!(seg.count, 2);
    // Each disk centre is in a different object, and the cut is near x = 36.
    let (a, b) = (seg.labels.get(25, 25), seg.labels.get(47, 25));
    assert!(a != 0 && b != 0 && a != b);
    assert_eq!(seg.labels.get(30, 25), a);
    assert_eq!(seg.labels.get(42, 25), b);
    // Without splitting they are one object: the watershed did the work.
    let s = Settings {
        split: Split::None,
        ..Settings::default()
    };
    let one = Classical::new(s, "no-split")
        .unwrap()
        .segment_image(&img)
        .unwrap();
    assert_eq!(one.count, 1);
}

#[test]
fn grid_of_disks_in_noise_counts_right() {
    let (w, h) = (160, 160);
    let centres: Vec<(f32, f32)> = (0..4)
        .flat_map(|i| (0..4).map(move |j| (20.0 + 38.0 * i as f32, 20.0 + 38.0 * j as f32)))
        .collect();
    let v = disks(w, h, &centres, 11.0, (40.0, 160.0), (25.0, 7));
    let img = gray8(w, h, &v);
    for p in [Preset::Textbook, Preset::FluorescenceNuclei] {
        assert_eq!(count(p, &img), 16, "{}", p.name());
    }
}

#[test]
fn sixteen_bit_low_contrast_uses_the_real_range() {
    // Objects 80 units above a 30000 background: invisible after a plain 16 -> 8 bit division.
    let (w, h) = (120, 60);
    let v = disks(
        w,
        h,
        &[(30.0, 30.0), (90.0, 30.0)],
        10.0,
        (30000.0, 30080.0),
        (5.0, 3),
    );
    let img16 = gray16(w, h, &v);
    assert_eq!(count(Preset::FluorescenceNuclei, &img16), 2);
    // The same scene in 8 bits (scaled) gives the same count and the same foreground.
    let v8: Vec<f32> = v.iter().map(|x| (x - 29900.0) * 1.0).collect();
    let img8 = gray8(w, h, &v8);
    let c = Classical::preset(Preset::FluorescenceNuclei).unwrap();
    let (a, b) = (c.run(&img16).unwrap(), c.run(&img8).unwrap());
    assert_eq!(a.labels.num_objects(), b.labels.num_objects());
    let diff = a
        .foreground
        .as_slice()
        .iter()
        .zip(b.foreground.as_slice())
        .filter(|(x, y)| x != y)
        .count();
    assert!(diff < 20, "{diff} pixels differ");
    let t = a.threshold.unwrap();
    assert!(t > 30010.0 && t < 30070.0, "threshold {t} in 16-bit units");
}

#[test]
fn float_and_rgb_images_work() {
    let (w, h) = (60, 40);
    let v = disks(
        w,
        h,
        &[(20.0, 20.0), (42.0, 20.0)],
        8.0,
        (0.1, 0.9),
        (0.02, 5),
    );
    let f = Image::gray_f32(w, h, v.clone()).unwrap();
    assert_eq!(count(Preset::FluorescenceNuclei, &f), 2);
    let rgb = gray8(w, h, &v.iter().map(|x| x * 255.0).collect::<Vec<_>>()).to_rgb();
    assert_eq!(count(Preset::FluorescenceNuclei, &rgb), 2);
}

#[test]
fn dark_objects_with_dark_polarity() {
    let (w, h) = (60, 40);
    let v = disks(
        w,
        h,
        &[(20.0, 20.0), (42.0, 20.0)],
        8.0,
        (200.0, 40.0),
        (3.0, 9),
    );
    let img = gray8(w, h, &v);
    let s = Settings {
        polarity: mica_classical::Polarity::Dark,
        ..Settings::default()
    };
    let c = Classical::new(s, "dark").unwrap();
    assert_eq!(c.segment_image(&img).unwrap().count, 2);
    // With the default bright polarity the background is the object.
    assert_ne!(count(Preset::Textbook, &img), 2);
}

#[test]
fn constant_and_tiny_images_give_no_objects() {
    for img in [
        Image::gray8(50, 40, vec![0; 2000]).unwrap(),
        Image::gray8(50, 40, vec![255; 2000]).unwrap(),
        Image::gray16(7, 3, vec![1234; 21]).unwrap(),
        Image::gray8(1, 1, vec![9]).unwrap(),
    ] {
        for p in Preset::ALL {
            let seg = Classical::preset(p).unwrap().segment_image(&img).unwrap();
            assert_eq!(
                seg.count,
                0,
                "{} on {}x{}",
                p.name(),
                img.width(),
                img.height()
            );
            assert_eq!(seg.foreground.area(), 0);
        }
    }
}

#[test]
fn tiny_images_with_contrast_do_not_panic() {
    for p in Preset::ALL {
        let c = Classical::preset(p).unwrap();
        for (w, h) in [(1u32, 2u32), (2, 1), (3, 3), (1, 17)] {
            let data: Vec<u8> = (0..w * h).map(|i| (i * 97 % 256) as u8).collect();
            let img = Image::gray8(w, h, data).unwrap();
            c.segment_image(&img).unwrap();
        }
    }
}

#[test]
fn non_finite_values_are_an_error() {
    let mut v = vec![0.5f32; 100];
    v[17] = f32::NAN;
    v[18] = f32::INFINITY;
    let img = Image::gray_f32(10, 10, v).unwrap();
    let e = Classical::preset(Preset::Textbook)
        .unwrap()
        .segment_image(&img)
        .unwrap_err();
    assert!(matches!(e, Error::NonFinite { count: 2 }), "{e}");
    assert!(e.to_string().contains("non-finite"));
}

#[test]
fn size_filters_remove_small_and_large_objects() {
    let (w, h) = (100, 40);
    // One small disk (r 3, ~29 px) and one large (r 12, ~450 px), far apart.
    let mut v = disks(w, h, &[(15.0, 20.0)], 3.0, (10.0, 200.0), (0.0, 1));
    let big = disks(w, h, &[(65.0, 20.0)], 12.0, (0.0, 190.0), (0.0, 1));
    v.iter_mut().zip(&big).for_each(|(a, b)| *a += b);
    let img = gray8(w, h, &v);
    let mut s = Settings {
        split: Split::None,
        ..Settings::default()
    };
    assert_eq!(
        Classical::new(s.clone(), "a")
            .unwrap()
            .segment_image(&img)
            .unwrap()
            .count,
        2
    );
    s.min_instance_area_px = 100;
    assert_eq!(
        Classical::new(s.clone(), "b")
            .unwrap()
            .segment_image(&img)
            .unwrap()
            .count,
        1
    );
    s.min_instance_area_px = 0;
    s.max_instance_area_px = Some(100);
    let seg = Classical::new(s, "c").unwrap().segment_image(&img).unwrap();
    assert_eq!(seg.count, 1);
    assert!(seg.labels.get(15, 20) != 0 && seg.labels.get(65, 20) == 0);
}
