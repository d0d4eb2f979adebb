//! Object outlines drawn on the image, for a quick visual check of a segmentation.

use mica_core::{Image, LabelImage, Pixels};

/// An 8-bit RGB image: `image` contrast-stretched (0.5–99.5 percentiles) to gray, with the
/// outline of every object (its pixels that touch another label or the background, 4-neighbours)
/// drawn in a colour that depends on the label.
///
/// # Errors
/// [`mica_core::Error::Shape`] when the sizes differ.
pub fn outlines(image: &Image, labels: &LabelImage) -> mica_core::Result<Image> {
    labels.check_same_size(image.width(), image.height(), "label image vs image")?;
    let gray = image.to_gray();
    let stretched = gray.stretch_to_u8(0.5, 99.5)?;
    let Pixels::U8(v) = stretched.pixels() else {
        return Err(mica_core::Error::Invalid(
            "contrast stretch did not give 8-bit data".into(),
        ));
    };
    let (w, h) = (labels.width() as usize, labels.height() as usize);
    let l = labels.as_slice();
    let mut rgb: Vec<u8> = v.iter().flat_map(|&g| [g, g, g]).collect();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let li = l[i];
            if li == 0 {
                continue;
            }
            let edge = x == 0
                || y == 0
                || x + 1 == w
                || y + 1 == h
                || l[i - 1] != li
                || l[i + 1] != li
                || l[i - w] != li
                || l[i + w] != li;
            if edge {
                rgb[3 * i..3 * i + 3].copy_from_slice(&colour(li));
            }
        }
    }
    Image::rgb8(labels.width(), labels.height(), rgb)
}

/// A bright, saturated colour per label (golden-angle hue steps).
fn colour(label: u32) -> [u8; 3] {
    let hue = (label as f32 * 137.507_77) % 360.0;
    let c = 1.0f32;
    let x = c * (1.0 - ((hue / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (hue / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    [(r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outline_pixels_are_coloured_interior_is_gray() {
        let img = Image::gray8(7, 7, vec![50; 49]).unwrap();
        let mut l = vec![0u32; 49];
        for y in 1..6 {
            for x in 1..6 {
                l[y * 7 + x] = 1;
            }
        }
        let labels = LabelImage::new(7, 7, l).unwrap();
        let o = outlines(&img, &labels).unwrap();
        let Pixels::U8(v) = o.pixels() else { panic!() };
        let px = |x: usize, y: usize| &v[3 * (y * 7 + x)..3 * (y * 7 + x) + 3];
        assert_eq!(px(1, 1), &colour(1));
        assert_eq!(px(3, 3)[0], px(3, 3)[1]);
        assert_eq!(px(0, 0)[0], px(0, 0)[2]);
    }
}
