//! Pictures of results, as 8-bit RGB [`Image`]s ready for [`crate::io::write_png`]:
//! object outlines on an image, difference overlays of two masks, and label images in colour.

use crate::error::Result;
use crate::image::{Image, Pixels};
use crate::mask::{BinaryMask, LabelImage};

/// Colours of [`difference_overlay`]: prediction only, truth only, both.
pub const PREDICTED_ONLY: [u8; 3] = [220, 40, 40];
pub const TRUTH_ONLY: [u8; 3] = [40, 90, 230];
pub const BOTH: [u8; 3] = [40, 190, 70];

/// [`outline_overlay`] of an image no longer than `max_side` on either side: larger images (and
/// their labels) are first subsampled by the smallest integer factor that fits, so that the
/// overlay of a 16000² image is not a 768 MB picture. Returns the overlay and the factor (1: full
/// size).
///
/// # Errors
/// As [`outline_overlay`].
pub fn outline_overlay_at_most(
    image: &Image,
    labels: &LabelImage,
    color: [u8; 3],
    max_side: u32,
) -> Result<(Image, u32)> {
    let side = image.width().max(image.height());
    if side <= max_side.max(1) {
        return Ok((outline_overlay(image, labels, color)?, 1));
    }
    labels.check_same_size(image.width(), image.height(), "label image vs image")?;
    let step = side.div_ceil(max_side.max(1));
    let small = image.subsample(step);
    let (w, h) = (labels.width(), labels.height());
    let l = labels.as_slice();
    let mut data = Vec::with_capacity(small.num_pixels());
    for y in (0..h).step_by(step as usize) {
        for x in (0..w).step_by(step as usize) {
            data.push(l[y as usize * w as usize + x as usize]);
        }
    }
    let small_labels = LabelImage::new(small.width(), small.height(), data)?;
    Ok((outline_overlay(&small, &small_labels, color)?, step))
}

/// The image, contrast-stretched (0.5–99.5 %) to 8-bit RGB, with the outline of every object
/// (pixels of an object with a 4-neighbour of another label) drawn in `color`.
///
/// # Errors
/// [`Error::Shape`] when the sizes differ.
pub fn outline_overlay(image: &Image, labels: &LabelImage, color: [u8; 3]) -> Result<Image> {
    labels.check_same_size(image.width(), image.height(), "label image vs image")?;
    let base = image.stretch_to_u8(0.5, 99.5)?.to_rgb();
    let Pixels::U8(mut px) = base.into_pixels() else {
        unreachable!("stretch_to_u8 gives 8-bit data")
    };
    let w = labels.width() as usize;
    for y in 0..labels.height() {
        for x in 0..labels.width() {
            if on_outline(labels, x, y, 1) {
                let i = 3 * (y as usize * w + x as usize);
                px[i..i + 3].copy_from_slice(&color);
            }
        }
    }
    Image::rgb8(labels.width(), labels.height(), px)
}

/// Whether pixel `(x, y)` is on an object's outline: it belongs to an object and one of its
/// 4-neighbours `step` pixels away has another label or lies outside the image. The one rule of
/// every outline mica draws.
fn on_outline(labels: &LabelImage, x: u32, y: u32, step: u32) -> bool {
    let (w, h) = (labels.width() as i64, labels.height() as i64);
    let l = labels.as_slice();
    let v = l[(y as i64 * w + x as i64) as usize];
    let s = step as i64;
    v != 0
        && [(-s, 0), (s, 0), (0, -s), (0, s)].iter().any(|&(dx, dy)| {
            let (nx, ny) = (x as i64 + dx, y as i64 + dy);
            nx < 0 || ny < 0 || nx >= w || ny >= h || l[(ny * w + nx) as usize] != v
        })
}

/// The difference of a predicted segmentation from the true foreground drawn on the image (its
/// gray values stretched from the 0.5th to the 99.5th percentile): tinted red where only the
/// prediction has foreground, blue where only the truth has, green where both have, and the
/// outline of every predicted object in yellow, so that merged or split objects show even where
/// the foreground agrees. Images longer than `max_side` are subsampled by the smallest integer
/// factor that fits (the outline looks at neighbours at that spacing).
///
/// # Errors
/// [`crate::Error::Shape`] when the image, the truth and the prediction differ in size.
pub fn difference_on_image(
    image: &Image,
    truth: &BinaryMask,
    pred: &LabelImage,
    max_side: u32,
) -> Result<Image> {
    let (w, h) = (image.width(), image.height());
    pred.check_same_size(w, h, "predicted labels vs image")?;
    truth.check_same_size(w, h, "truth mask vs image")?;
    let gray = image.to_gray().stretch_to_u8(0.5, 99.5)?;
    let Pixels::U8(g) = gray.pixels() else {
        unreachable!("stretch_to_u8 gives 8-bit data")
    };
    let step = w.max(h).div_ceil(max_side.max(1)).max(1);
    let (ow, oh) = (w.div_ceil(step), h.div_ceil(step));
    let (labels, t) = (pred.as_slice(), truth.as_slice());
    let blend = |v: u8, c: [u8; 3], a: f32| -> [u8; 3] {
        c.map(|c| (v as f32 * (1.0 - a) + c as f32 * a).round() as u8)
    };
    let mut rgb = Vec::with_capacity((ow * oh * 3) as usize);
    for oy in 0..oh {
        for ox in 0..ow {
            let (x, y) = (ox * step, oy * step);
            let i = (y * w + x) as usize;
            let v = g[i];
            rgb.extend_from_slice(&match (t[i], labels[i] != 0) {
                _ if on_outline(pred, x, y, step) => [255, 220, 0],
                (true, true) => blend(v, [0, 200, 0], 0.25),
                (false, true) => blend(v, [230, 0, 0], 0.55),
                (true, false) => blend(v, [0, 60, 255], 0.55),
                (false, false) => [v, v, v],
            });
        }
    }
    Image::rgb8(ow, oh, rgb)
}

/// Digits 0–9 as 3 × 5 bitmaps (rows top to bottom, bit 2 = left column).
const DIGITS: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b010, 0b010, 0b010],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

/// Writes each `(number, x, y)` onto an 8-bit RGB image, centred on `(x, y)`: digits of 3 × 5
/// cells of `scale` px, white with a black rim so that they read on bright and dark objects
/// alike; clipped at the image's edges. For overlays whose label numbers match `objects.csv`.
///
/// # Errors
/// [`crate::Error::Invalid`] unless the image is 8-bit RGB.
pub fn draw_numbers(image: Image, numbers: &[(u32, f64, f64)], scale: u32) -> Result<Image> {
    let (iw, ih) = (image.width(), image.height());
    let (w, h) = (iw as i64, ih as i64);
    let rgb = image.channels() == crate::image::Channels::Rgb;
    let Pixels::U8(mut px) = image.into_pixels() else {
        return Err(crate::Error::Invalid(
            "numbers are drawn on 8-bit RGB images".into(),
        ));
    };
    if !rgb {
        return Err(crate::Error::Invalid(
            "numbers are drawn on 8-bit RGB images".into(),
        ));
    }
    let s = scale.max(1) as i64;
    for &(n, cx, cy) in numbers {
        let text = n.to_string();
        let (tw, th) = ((4 * text.len() as i64 - 1) * s, 5 * s);
        let (x0, y0) = (cx.round() as i64 - tw / 2, cy.round() as i64 - th / 2);
        // Glyph cells in image pixels.
        let mut on = Vec::new();
        for (k, ch) in text.bytes().enumerate() {
            let glyph = DIGITS[(ch - b'0') as usize];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..3 {
                    if bits >> (2 - col) & 1 == 1 {
                        let gx = x0 + (4 * k as i64 + col) * s;
                        let gy = y0 + row as i64 * s;
                        for dy in 0..s {
                            for dx in 0..s {
                                on.push((gx + dx, gy + dy));
                            }
                        }
                    }
                }
            }
        }
        let mut put = |x: i64, y: i64, c: [u8; 3]| {
            if (0..w).contains(&x) && (0..h).contains(&y) {
                let i = 3 * (y * w + x) as usize;
                px[i..i + 3].copy_from_slice(&c);
            }
        };
        for &(x, y) in &on {
            for (dx, dy) in [(-1, 0), (1, 0), (0, -1), (0, 1)] {
                put(x + dx, y + dy, [0, 0, 0]);
            }
        }
        for &(x, y) in &on {
            put(x, y, [255, 255, 255]);
        }
    }
    Image::rgb8(iw, ih, px)
}

/// The study's difference image: [`PREDICTED_ONLY`] where only the prediction is foreground,
/// [`TRUTH_ONLY`] where only the truth is, [`BOTH`] where both are, black elsewhere.
/// Arguments are `(truth, prediction)` as for every metric.
///
/// # Errors
/// [`Error::Shape`] when the sizes differ.
pub fn difference_overlay(truth: &BinaryMask, prediction: &BinaryMask) -> Result<Image> {
    truth.check_same_size(
        prediction.width(),
        prediction.height(),
        "prediction vs truth mask",
    )?;
    let px = truth
        .as_slice()
        .iter()
        .zip(prediction.as_slice())
        .flat_map(|(&t, &p)| match (t, p) {
            (true, true) => BOTH,
            (false, true) => PREDICTED_ONLY,
            (true, false) => TRUTH_ONLY,
            (false, false) => [0, 0, 0],
        })
        .collect();
    Image::rgb8(truth.width(), truth.height(), px)
}

/// Each label in a distinct, reproducible colour (a hash of the label), background black.
pub fn label_colors(labels: &LabelImage) -> Image {
    let px = labels
        .as_slice()
        .iter()
        .flat_map(|&l| {
            if l == 0 {
                [0, 0, 0]
            } else {
                let h = (l as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
                [
                    64 + (h & 0xBF) as u8,
                    64 + ((h >> 8) & 0xBF) as u8,
                    64 + ((h >> 16) & 0xBF) as u8,
                ]
            }
        })
        .collect();
    Image::rgb8(labels.width(), labels.height(), px).unwrap_or_else(|_| unreachable!("sizes agree"))
}

#[cfg(test)]
mod overlay_size_tests {
    use super::*;

    #[test]
    fn overlays_of_large_images_are_subsampled_to_the_longest_side() {
        let (w, h) = (1000u32, 300u32);
        let image = Image::gray8(w, h, vec![10; (w * h) as usize]).unwrap();
        let labels = LabelImage::new(
            w,
            h,
            (0..w * h)
                .map(|i| u32::from((i % w) / 100 % 2 == 1))
                .collect(),
        )
        .unwrap();
        let (o, step) = outline_overlay_at_most(&image, &labels, [255, 0, 0], 400).unwrap();
        assert_eq!((step, o.width(), o.height()), (3, 334, 100));
        let (o, step) = outline_overlay_at_most(&image, &labels, [255, 0, 0], 1000).unwrap();
        assert_eq!((step, o.width(), o.height()), (1, 1000, 300));
        let s = image.subsample(3);
        assert_eq!((s.width(), s.height()), (334, 100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_drawn_white_on_a_black_rim_centred_and_clipped() {
        let img = Image::rgb8(20, 12, vec![128; 20 * 12 * 3]).unwrap();
        // "1" at (5, 5) and "10" half outside the right edge.
        let out = draw_numbers(img, &[(1, 5.0, 5.0), (10, 19.0, 2.0)], 1).unwrap();
        let Pixels::U8(px) = out.pixels() else {
            panic!()
        };
        let at = |x: usize, y: usize| [px[3 * (y * 20 + x)], px[3 * (y * 20 + x) + 1]];
        // The "1" glyph (3 wide, 5 high) starts at (4, 3): its stem is column 5.
        for y in 3..8 {
            assert_eq!(at(5, y), [255, 255], "stem at y {y}");
        }
        assert_eq!(at(4, 3), [0, 0], "rim left of the top of the 1");
        assert_eq!(at(4, 7), [255, 255], "foot of the 1");
        assert_eq!(at(9, 5), [128, 128], "untouched");
        // The clipped "10" drew something without going out of bounds.
        assert!((16..20).any(|x| at(x, 2) == [255, 255]));
        assert!(draw_numbers(Image::gray8(2, 2, vec![0; 4]).unwrap(), &[], 1).is_err());
    }

    #[test]
    fn difference_colours() {
        let t = BinaryMask::new(4, 1, vec![true, true, false, false]).unwrap();
        let p = BinaryMask::new(4, 1, vec![true, false, true, false]).unwrap();
        let img = difference_overlay(&t, &p).unwrap();
        let Pixels::U8(v) = img.pixels() else {
            panic!()
        };
        assert_eq!(&v[0..3], &BOTH);
        assert_eq!(&v[3..6], &TRUTH_ONLY);
        assert_eq!(&v[6..9], &PREDICTED_ONLY);
        assert_eq!(&v[9..12], &[0, 0, 0]);
        assert!(difference_overlay(&t, &BinaryMask::empty(3, 1)).is_err());
    }

    #[test]
    fn outline_marks_border_not_interior() {
        let mut l = LabelImage::zeros(5, 5);
        for y in 1..4 {
            for x in 1..4 {
                l.set(x, y, 1);
            }
        }
        let img = Image::gray8(5, 5, (0..25).collect()).unwrap();
        let o = outline_overlay(&img, &l, [255, 0, 255]).unwrap();
        let Pixels::U8(v) = o.pixels() else { panic!() };
        let at = |x: usize, y: usize| &v[3 * (y * 5 + x)..3 * (y * 5 + x) + 3];
        assert_eq!(at(1, 1), &[255, 0, 255]);
        assert_ne!(at(2, 2), &[255, 0, 255]);
    }
}
