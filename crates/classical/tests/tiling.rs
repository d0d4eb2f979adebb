//! Tiles with a halo give the whole image's objects, pixel for pixel, on real images: the 10
//! BBBC005 examples of the repository, the 16-bit StarDist nuclei image and SEM crops of the
//! study (fibres and particles), for every preset and two tile sizes.

use mica_classical::{Classical, Preset, Tiling};
use mica_core::LabelImage;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn shared() -> PathBuf {
    repo().join("../shared/data")
}

fn files(dir: &Path, take: usize) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| mica_core::io::has_image_extension(p))
        .collect();
    v.sort();
    v.truncate(take);
    v
}

/// Each pixel's object as the index of the object's first pixel (numbering-free).
fn objects(l: &LabelImage) -> Vec<usize> {
    let mut first = std::collections::HashMap::new();
    l.as_slice()
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v == 0 {
                usize::MAX
            } else {
                *first.entry(v).or_insert(i)
            }
        })
        .collect()
}

fn check(images: &[PathBuf], presets: &[Preset], tiles: &[u32]) {
    assert!(!images.is_empty());
    for path in images {
        let image = mica_core::io::read_image(path).unwrap();
        for &preset in presets {
            let c = Classical::preset(preset).unwrap();
            let whole = c.segment_image(&image).unwrap();
            let want = objects(&whole.labels);
            for &tile in tiles {
                let t = Tiling {
                    above_px: 0,
                    tile_px: tile,
                    halo_px: None,
                };
                let tiled = c.segment_tiled(&image, t).unwrap();
                let got = objects(&tiled.labels);
                let differ = want.iter().zip(&got).filter(|(a, b)| a != b).count();
                assert_eq!(
                    (tiled.labels.num_objects(), differ),
                    (whole.count, 0),
                    "{} {preset:?} tile {tile} ({} tiles): objects (tiled, whole) and pixels that differ",
                    path.display(),
                    tiled.tiles
                );
            }
        }
    }
}

#[test]
fn tiled_equals_whole_on_the_bbbc005_examples() {
    check(
        &files(&repo().join("examples/bbbc005/images"), 10),
        &[
            Preset::FluorescenceNuclei,
            Preset::FluorescenceCells,
            Preset::Textbook,
        ],
        &[128, 300],
    );
}

#[test]
fn tiled_equals_whole_on_the_16_bit_stardist_nuclei() {
    check(
        &[shared().join("stardist-nuclei/img2d.tif")],
        &[Preset::FluorescenceNuclei, Preset::Textbook],
        &[96, 200],
    );
}

#[test]
fn tiled_equals_whole_on_sem_crops() {
    let sem = shared().join("vlms-micrographs/data_images_NFFA-MS_cropped");
    let mut images = files(&sem.join("Particles"), 2);
    images.extend(files(&sem.join("Fibres"), 2));
    check(&images, &[Preset::SemParticles], &[256, 400]);
}
