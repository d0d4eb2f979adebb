//! Masks: [`LabelImage`] (u32 per pixel, 0 = background, 1..=N = objects) is the one instance mask
//! type of mica; [`BinaryMask`] is a foreground mask. Conversions between them and per-object
//! properties ([`object_properties`]) live here.

use crate::error::{Error, Result};
use crate::image::Image;
use serde::{Deserialize, Serialize};

/// Which neighbours connect two pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Connectivity {
    /// Edge neighbours only (up, down, left, right).
    Four,
    /// Edge and corner neighbours.
    #[default]
    Eight,
}

/// An axis-aligned box in pixel coordinates: `x0..x1` columns and `y0..y1` rows, end-exclusive
/// (so `width = x1 - x0`). The same convention everywhere in mica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BBox {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl BBox {
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }
    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }
}

/// A foreground mask (true = object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryMask {
    width: u32,
    height: u32,
    data: Vec<bool>,
}

impl BinaryMask {
    /// # Errors
    /// [`Error::Invalid`] when `data.len() != width * height`.
    pub fn new(width: u32, height: u32, data: Vec<bool>) -> Result<Self> {
        if data.len() != width as usize * height as usize {
            return Err(Error::Invalid(format!(
                "{width}x{height} mask needs {} pixels, got {}",
                width as usize * height as usize,
                data.len()
            )));
        }
        Ok(BinaryMask {
            width,
            height,
            data,
        })
    }

    /// A mask drawn as text, one string per row, `#` for foreground and any other character
    /// for background; handy for tests and examples.
    ///
    /// ```
    /// use mica_core::BinaryMask;
    /// let m = BinaryMask::from_rows(&["#.", ".#"]).unwrap();
    /// assert_eq!((m.width(), m.height(), m.area()), (2, 2, 2));
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] when there are no rows or the rows differ in length.
    pub fn from_rows(rows: &[&str]) -> Result<Self> {
        let w = rows.first().map_or(0, |r| r.chars().count());
        if w == 0 || rows.iter().any(|r| r.chars().count() != w) {
            return Err(Error::Invalid(
                "mask rows must be non-empty and of equal length".into(),
            ));
        }
        let data = rows
            .iter()
            .flat_map(|r| r.chars().map(|c| c == '#'))
            .collect();
        BinaryMask::new(w as u32, rows.len() as u32, data)
    }

    /// An all-background mask.
    pub fn empty(width: u32, height: u32) -> Self {
        BinaryMask {
            width,
            height,
            data: vec![false; width as usize * height as usize],
        }
    }

    /// Foreground where the image's intensity is above `threshold` (e.g. 0 for a 0/255 mask file).
    pub fn from_image_above(img: &Image, threshold: f32) -> Self {
        let data = img
            .intensity_f32()
            .into_iter()
            .map(|v| v > threshold)
            .collect();
        BinaryMask {
            width: img.width(),
            height: img.height(),
            data,
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    pub fn as_slice(&self) -> &[bool] {
        &self.data
    }
    pub fn as_mut_slice(&mut self) -> &mut [bool] {
        &mut self.data
    }
    pub fn into_vec(self) -> Vec<bool> {
        self.data
    }
    #[inline]
    pub fn get(&self, x: u32, y: u32) -> bool {
        self.data[y as usize * self.width as usize + x as usize]
    }
    #[inline]
    pub fn set(&mut self, x: u32, y: u32, v: bool) {
        let w = self.width as usize;
        self.data[y as usize * w + x as usize] = v;
    }

    /// Number of foreground pixels.
    pub fn area(&self) -> usize {
        self.data.iter().filter(|&&b| b).count()
    }

    /// Labels the connected foreground regions 1..=N in raster order of their first pixel.
    pub fn connected_components(&self, conn: Connectivity) -> LabelImage {
        connected_components(self, conn)
    }

    /// As an 8-bit image, 0 and 255.
    pub fn to_image(&self) -> Image {
        Image::gray8(
            self.width,
            self.height,
            self.data.iter().map(|&b| if b { 255 } else { 0 }).collect(),
        )
        .expect("mask size is valid")
    }

    /// Checks that `other` has the same size; `what` names the pair in the error.
    pub fn check_same_size(&self, other_w: u32, other_h: u32, what: &str) -> Result<()> {
        check_size(self.width, self.height, other_w, other_h, what)
    }
}

fn check_size(w: u32, h: u32, ow: u32, oh: u32, what: &str) -> Result<()> {
    if (w, h) != (ow, oh) {
        return Err(Error::Shape {
            what: what.to_string(),
            expected_w: w,
            expected_h: h,
            got_w: ow,
            got_h: oh,
        });
    }
    Ok(())
}

/// An instance mask: one u32 label per pixel, 0 = background, objects 1..=N.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelImage {
    width: u32,
    height: u32,
    data: Vec<u32>,
}

impl LabelImage {
    /// # Errors
    /// [`Error::Invalid`] when `data.len() != width * height`.
    pub fn new(width: u32, height: u32, data: Vec<u32>) -> Result<Self> {
        if data.len() != width as usize * height as usize {
            return Err(Error::Invalid(format!(
                "{width}x{height} label image needs {} pixels, got {}",
                width as usize * height as usize,
                data.len()
            )));
        }
        Ok(LabelImage {
            width,
            height,
            data,
        })
    }

    /// An all-background label image.
    pub fn zeros(width: u32, height: u32) -> Self {
        LabelImage {
            width,
            height,
            data: vec![0; width as usize * height as usize],
        }
    }

    /// Reads labels from an integer image (8- or 16-bit gray), e.g. a label TIFF.
    ///
    /// # Errors
    /// [`Error::Invalid`] for RGB or float images, which are not label images.
    pub fn from_image(img: &Image) -> Result<Self> {
        use crate::image::{Channels, Pixels};
        if img.channels() != Channels::Gray {
            return Err(Error::Invalid(
                "a label image must be single-channel".into(),
            ));
        }
        let data = match img.pixels() {
            Pixels::U8(v) => v.iter().map(|&x| x as u32).collect(),
            Pixels::U16(v) => v.iter().map(|&x| x as u32).collect(),
            Pixels::F32(v) => {
                if v.iter().any(|&x| x < 0.0 || x.fract() != 0.0) {
                    return Err(Error::Invalid(
                        "a float image with non-integer values is not a label image".into(),
                    ));
                }
                v.iter().map(|&x| x as u32).collect()
            }
        };
        LabelImage::new(img.width(), img.height(), data)
    }

    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    pub fn as_slice(&self) -> &[u32] {
        &self.data
    }
    pub fn as_mut_slice(&mut self) -> &mut [u32] {
        &mut self.data
    }
    pub fn into_vec(self) -> Vec<u32> {
        self.data
    }
    #[inline]
    pub fn get(&self, x: u32, y: u32) -> u32 {
        self.data[y as usize * self.width as usize + x as usize]
    }
    #[inline]
    pub fn set(&mut self, x: u32, y: u32, v: u32) {
        let w = self.width as usize;
        self.data[y as usize * w + x as usize] = v;
    }

    /// Largest label value (0 when empty).
    pub fn max_label(&self) -> u32 {
        self.data.iter().copied().max().unwrap_or(0)
    }

    /// Number of distinct non-zero labels.
    pub fn num_objects(&self) -> usize {
        let mut seen = vec![false; self.max_label() as usize + 1];
        let mut n = 0;
        for &l in &self.data {
            if l != 0 && !seen[l as usize] {
                seen[l as usize] = true;
                n += 1;
            }
        }
        n
    }

    /// Foreground (label != 0).
    pub fn foreground(&self) -> BinaryMask {
        BinaryMask {
            width: self.width,
            height: self.height,
            data: self.data.iter().map(|&l| l != 0).collect(),
        }
    }

    /// Renumbers labels to 1..=N keeping their order; returns the new image.
    pub fn relabel_sequential(&self) -> LabelImage {
        let mut map = vec![0u32; self.max_label() as usize + 1];
        for &l in &self.data {
            if l != 0 {
                map[l as usize] = 1;
            }
        }
        let mut next = 0;
        for m in map.iter_mut().skip(1) {
            if *m != 0 {
                next += 1;
                *m = next;
            }
        }
        LabelImage {
            width: self.width,
            height: self.height,
            data: self.data.iter().map(|&l| map[l as usize]).collect(),
        }
    }

    /// Removes objects smaller than `min_area_px` pixels (set to 0); labels are not renumbered.
    pub fn remove_small(&self, min_area_px: usize) -> LabelImage {
        let mut areas = vec![0usize; self.max_label() as usize + 1];
        for &l in &self.data {
            areas[l as usize] += 1;
        }
        LabelImage {
            width: self.width,
            height: self.height,
            data: self
                .data
                .iter()
                .map(|&l| {
                    if l != 0 && areas[l as usize] < min_area_px {
                        0
                    } else {
                        l
                    }
                })
                .collect(),
        }
    }

    /// The connected pieces of every object: pixels of one label that touch (`conn`) form one
    /// piece; pieces are numbered 1..=N in raster order of their first pixel. An image whose
    /// objects are all connected has as many pieces as objects.
    pub fn pieces(&self, conn: Connectivity) -> LabelImage {
        LabelImage {
            width: self.width,
            height: self.height,
            data: label_regions(&self.data, &0, self.width as usize, conn),
        }
    }

    /// Keeps the largest connected piece of every object (8-connected; ties: the first in raster
    /// order) and sets the other pieces to background; labels are not renumbered. Returns the
    /// image and, per label (index = label), the pixels kept and the pixels removed.
    pub fn keep_largest_piece(&self) -> (LabelImage, Vec<(u64, u64)>) {
        let pieces = self.pieces(Connectivity::Eight);
        let n = pieces.max_label() as usize;
        let mut size = vec![0u64; n + 1];
        let mut owner = vec![0u32; n + 1];
        for (&p, &l) in pieces.data.iter().zip(&self.data) {
            size[p as usize] += 1;
            owner[p as usize] = l;
        }
        let max = self.max_label() as usize;
        // Per label: its largest piece (pieces are numbered in raster order, so a strict `>`
        // keeps the first of equal ones).
        let mut best = vec![0u32; max + 1];
        for p in 1..=n {
            let l = owner[p] as usize;
            if best[l] == 0 || size[p] > size[best[l] as usize] {
                best[l] = p as u32;
            }
        }
        let mut tally = vec![(0u64, 0u64); max + 1];
        let data = pieces
            .data
            .iter()
            .zip(&self.data)
            .map(|(&p, &l)| {
                if l == 0 {
                    0
                } else if best[l as usize] == p {
                    tally[l as usize].0 += 1;
                    l
                } else {
                    tally[l as usize].1 += 1;
                    0
                }
            })
            .collect();
        (
            LabelImage {
                width: self.width,
                height: self.height,
                data,
            },
            tally,
        )
    }

    /// Checks that `other` has the same size; `what` names the pair in the error.
    pub fn check_same_size(&self, other_w: u32, other_h: u32, what: &str) -> Result<()> {
        check_size(self.width, self.height, other_w, other_h, what)
    }
}

/// Labels connected foreground regions of `mask` 1..=N in raster order of their first pixel
/// (two-pass union-find).
pub fn connected_components(mask: &BinaryMask, conn: Connectivity) -> LabelImage {
    LabelImage {
        width: mask.width,
        height: mask.height,
        data: label_regions(&mask.data, &false, mask.width as usize, conn),
    }
}

/// Connected regions of equal, non-`background` keys (`keys` row-major, `w` wide), numbered
/// 1..=N in raster order of their first pixel; background pixels get 0. Two-pass union-find.
fn label_regions<K: PartialEq>(
    keys: &[K],
    background: &K,
    w: usize,
    conn: Connectivity,
) -> Vec<u32> {
    let h = keys.len().checked_div(w).unwrap_or(0);
    let mut labels = vec![0u32; w * h];
    let mut parent: Vec<u32> = vec![0];
    fn find(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            parent[x as usize] = parent[parent[x as usize] as usize];
            x = parent[x as usize];
        }
        x
    }
    fn union(parent: &mut [u32], a: u32, b: u32) -> u32 {
        let (ra, rb) = (find(parent, a), find(parent, b));
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi as usize] = lo;
        lo
    }
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let key = &keys[i];
            if key == background {
                continue;
            }
            let mut current = 0u32;
            let mut neighbours = [0usize; 4];
            let mut k = 0;
            if x > 0 {
                neighbours[k] = i - 1;
                k += 1;
            }
            if y > 0 {
                neighbours[k] = i - w;
                k += 1;
                if conn == Connectivity::Eight {
                    if x > 0 {
                        neighbours[k] = i - w - 1;
                        k += 1;
                    }
                    if x + 1 < w {
                        neighbours[k] = i - w + 1;
                        k += 1;
                    }
                }
            }
            for &j in &neighbours[..k] {
                let n = labels[j];
                if n == 0 || &keys[j] != key {
                    continue;
                }
                current = if current == 0 {
                    n
                } else {
                    union(&mut parent, current, n)
                };
            }
            if current == 0 {
                current = parent.len() as u32;
                parent.push(current);
            }
            labels[i] = current;
        }
    }
    // Resolve roots and number them in raster order of first appearance.
    let mut final_id = vec![0u32; parent.len()];
    let mut next = 0u32;
    for l in labels.iter_mut() {
        if *l == 0 {
            continue;
        }
        let r = find(&mut parent, *l);
        if final_id[r as usize] == 0 {
            next += 1;
            final_id[r as usize] = next;
        }
        *l = final_id[r as usize];
    }
    labels
}

/// Measurements of one object of a [`LabelImage`]: the properties of scikit-image's
/// `regionprops` under the same definitions (checked against `regionprops_table` on a real
/// label image, `tests/regionprops_skimage.rs`), in pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectProps {
    pub label: u32,
    pub area_px: u64,
    /// Centroid column (x) and row (y), in pixels, pixel centres at integer coordinates.
    pub centroid_x: f64,
    pub centroid_y: f64,
    pub bbox: BBox,
    /// Perimeter: scikit-image's `perimeter` with 4-connectivity (border pixels weighted by
    /// their neighbourhood: 1, √2 or (1+√2)/2), not the length of a traced contour.
    pub perimeter: f64,
    /// Eccentricity of the ellipse with the same second moments (0 = circle).
    pub eccentricity: f64,
    /// Area over the area of the convex hull (pixel centres inside or on the hull of the
    /// pixels' edge midpoints, as `convex_hull_image`).
    pub solidity: f64,
    /// Major and minor axis lengths of that ellipse (4·√eigenvalue of the inertia tensor).
    pub major_axis_length: f64,
    pub minor_axis_length: f64,
    /// Angle in radians between the rows axis (y, downwards) and the major axis, in
    /// [-π/2, π/2], scikit-image's convention.
    pub orientation: f64,
    /// Diameter of the circle with the same area.
    pub equivalent_diameter: f64,
    /// Intensity of the object's pixels in the image's own units (None without an image):
    /// mean, sum (integrated), min, max and standard deviation (population, as `np.std`).
    pub mean_intensity: Option<f64>,
    pub integrated_intensity: Option<f64>,
    pub min_intensity: Option<f64>,
    pub max_intensity: Option<f64>,
    pub std_intensity: Option<f64>,
}

/// Every measure of [`ObjectProps`] for every object, in label order.
///
/// # Errors
/// [`Error::Shape`] when `intensity` differs in size from `labels`.
pub fn object_properties(
    labels: &LabelImage,
    intensity: Option<&Image>,
) -> Result<Vec<ObjectProps>> {
    let values = match intensity {
        Some(img) => {
            labels.check_same_size(img.width(), img.height(), "intensity image vs label image")?;
            Some(img.intensity_f32())
        }
        None => None,
    };
    let n = labels.max_label() as usize;
    #[derive(Clone)]
    struct Acc {
        area: u64,
        sx: f64,
        sy: f64,
        x0: u32,
        y0: u32,
        x1: u32,
        y1: u32,
    }
    let mut acc = vec![
        Acc {
            area: 0,
            sx: 0.0,
            sy: 0.0,
            x0: u32::MAX,
            y0: u32::MAX,
            x1: 0,
            y1: 0
        };
        n + 1
    ];
    let w = labels.width as usize;
    for (i, &l) in labels.data.iter().enumerate() {
        if l == 0 {
            continue;
        }
        let (x, y) = ((i % w) as u32, (i / w) as u32);
        let a = &mut acc[l as usize];
        a.area += 1;
        a.sx += x as f64;
        a.sy += y as f64;
        a.x0 = a.x0.min(x);
        a.y0 = a.y0.min(y);
        a.x1 = a.x1.max(x + 1);
        a.y1 = a.y1.max(y + 1);
    }
    Ok(acc
        .into_iter()
        .enumerate()
        .skip(1)
        .filter(|(_, a)| a.area > 0)
        .map(|(l, a)| {
            let bbox = BBox {
                x0: a.x0,
                y0: a.y0,
                x1: a.x1,
                y1: a.y1,
            };
            let (cx, cy) = (a.sx / a.area as f64, a.sy / a.area as f64);
            let shape = region_shape(labels, l as u32, bbox, cx, cy, a.area);
            let stats = values
                .as_ref()
                .map(|v| region_intensity(labels, v, l as u32, bbox, a.area));
            ObjectProps {
                label: l as u32,
                area_px: a.area,
                centroid_x: cx,
                centroid_y: cy,
                bbox,
                perimeter: shape.perimeter,
                eccentricity: shape.eccentricity,
                solidity: shape.solidity,
                major_axis_length: shape.major,
                minor_axis_length: shape.minor,
                orientation: shape.orientation,
                equivalent_diameter: (4.0 * a.area as f64 / std::f64::consts::PI).sqrt(),
                mean_intensity: stats.map(|s| s.mean),
                integrated_intensity: stats.map(|s| s.sum),
                min_intensity: stats.map(|s| s.min),
                max_intensity: stats.map(|s| s.max),
                std_intensity: stats.map(|s| s.std),
            }
        })
        .collect())
}

#[derive(Debug, Clone, Copy)]
struct Shape {
    perimeter: f64,
    eccentricity: f64,
    solidity: f64,
    major: f64,
    minor: f64,
    orientation: f64,
}

#[derive(Debug, Clone, Copy)]
struct Intensity {
    mean: f64,
    sum: f64,
    min: f64,
    max: f64,
    std: f64,
}

fn region_intensity(labels: &LabelImage, v: &[f32], l: u32, b: BBox, area: u64) -> Intensity {
    let w = labels.width as usize;
    let (mut sum, mut min, mut max) = (0f64, f64::INFINITY, f64::NEG_INFINITY);
    for y in b.y0 as usize..b.y1 as usize {
        for x in b.x0 as usize..b.x1 as usize {
            if labels.data[y * w + x] == l {
                let q = v[y * w + x] as f64;
                sum += q;
                min = min.min(q);
                max = max.max(q);
            }
        }
    }
    let mean = sum / area as f64;
    let mut ss = 0f64;
    for y in b.y0 as usize..b.y1 as usize {
        for x in b.x0 as usize..b.x1 as usize {
            if labels.data[y * w + x] == l {
                let d = v[y * w + x] as f64 - mean;
                ss += d * d;
            }
        }
    }
    Intensity {
        mean,
        sum,
        min,
        max,
        std: (ss / area as f64).sqrt(),
    }
}

/// Perimeter weights of scikit-image's `perimeter` by neighbourhood code (1 for the pixel, 2
/// per border 4-neighbour, 10 per border diagonal neighbour).
fn perimeter_weight(code: usize) -> f64 {
    match code {
        5 | 7 | 15 | 17 | 25 | 27 => 1.0,
        21 | 33 => std::f64::consts::SQRT_2,
        13 | 23 => (1.0 + std::f64::consts::SQRT_2) / 2.0,
        _ => 0.0,
    }
}

fn region_shape(labels: &LabelImage, l: u32, b: BBox, cx: f64, cy: f64, area: u64) -> Shape {
    let w = labels.width as usize;
    // The object's pixels in its box, padded by one background pixel on every side.
    let (bw, bh) = (b.width() as usize, b.height() as usize);
    let (cw, ch) = (bw + 2, bh + 2);
    let mut m = vec![false; cw * ch];
    let (mut mu20, mut mu02, mut mu11) = (0f64, 0f64, 0f64);
    for y in 0..bh {
        for x in 0..bw {
            let (gx, gy) = (b.x0 as usize + x, b.y0 as usize + y);
            if labels.data[gy * w + gx] == l {
                m[(y + 1) * cw + x + 1] = true;
                let (dr, dc) = (gy as f64 - cy, gx as f64 - cx);
                mu20 += dr * dr;
                mu02 += dc * dc;
                mu11 += dr * dc;
            }
        }
    }
    // Perimeter: border pixels (erosion by the 4-cross), weighted by their border neighbours.
    let border: Vec<bool> = (0..cw * ch)
        .map(|i| {
            m[i] && (i < cw
                || i + cw >= cw * ch
                || !(m[i - 1] && m[i + 1] && m[i - cw] && m[i + cw]))
        })
        .collect();
    let mut perimeter = 0f64;
    for y in 1..ch - 1 {
        for x in 1..cw - 1 {
            let i = y * cw + x;
            if !border[i] {
                continue;
            }
            let b4 = [i - 1, i + 1, i - cw, i + cw]
                .iter()
                .filter(|&&j| border[j])
                .count();
            let d4 = [i - cw - 1, i - cw + 1, i + cw - 1, i + cw + 1]
                .iter()
                .filter(|&&j| border[j])
                .count();
            perimeter += perimeter_weight(1 + 2 * b4 + 10 * d4);
        }
    }
    // Inertia tensor [[a, b], [b, c]] of the central moments (rows, columns), its eigenvalues.
    let n = area as f64;
    let (a, bb, c) = (mu02 / n, -mu11 / n, mu20 / n);
    let half = ((a - c) / 2.0).hypot(bb);
    let l1 = ((a + c) / 2.0 + half).max(0.0);
    let l2 = ((a + c) / 2.0 - half).max(0.0);
    let eccentricity = if l1 == 0.0 {
        0.0
    } else {
        (1.0 - l2 / l1).sqrt()
    };
    let orientation = if a - c == 0.0 {
        if bb < 0.0 {
            std::f64::consts::FRAC_PI_4
        } else {
            -std::f64::consts::FRAC_PI_4
        }
    } else {
        0.5 * (-2.0 * bb).atan2(c - a)
    };
    Shape {
        perimeter,
        eccentricity,
        solidity: n / convex_area(&m, cw, ch) as f64,
        major: 4.0 * l1.sqrt(),
        minor: 4.0 * l2.sqrt(),
        orientation,
    }
}

/// Pixels whose centre lies inside or on the convex hull of the edge midpoints of the object's
/// pixels (scikit-image's `convex_hull_image` with `offset_coordinates`), in doubled integer
/// coordinates so every test is exact.
fn convex_area(m: &[bool], cw: usize, ch: usize) -> u64 {
    let mut pts: Vec<(i64, i64)> = Vec::new();
    let mut add = |x: usize, y: usize| {
        let (x, y) = (2 * x as i64, 2 * y as i64);
        pts.extend([(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)]);
    };
    // Only the first and last pixel of each row and column can be on the hull.
    for y in 0..ch {
        let row = &m[y * cw..(y + 1) * cw];
        if let (Some(f), Some(l)) = (row.iter().position(|&v| v), row.iter().rposition(|&v| v)) {
            add(f, y);
            add(l, y);
        }
    }
    for x in 0..cw {
        let col = (0..ch).map(|y| m[y * cw + x]);
        let f = col.clone().position(|v| v);
        let l = (0..ch).rev().find(|&y| m[y * cw + x]);
        if let (Some(f), Some(l)) = (f, l) {
            add(x, f);
            add(x, l);
        }
    }
    pts.sort_unstable();
    pts.dedup();
    let hull = convex_hull(&pts);
    let cross = |o: (i64, i64), a: (i64, i64), b: (i64, i64)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut count = 0u64;
    for y in 0..ch {
        for x in 0..cw {
            let p = (2 * x as i64, 2 * y as i64);
            let inside =
                (0..hull.len()).all(|k| cross(hull[k], hull[(k + 1) % hull.len()], p) >= 0);
            count += inside as u64;
        }
    }
    count
}

/// Andrew's monotone chain: the hull counter-clockwise (in x-right, y-up terms), without
/// collinear points. `pts` sorted and without duplicates, at least 3 not collinear.
fn convex_hull(pts: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let cross = |o: (i64, i64), a: (i64, i64), b: (i64, i64)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut lower: Vec<(i64, i64)> = Vec::new();
    for &p in pts {
        while lower.len() >= 2 && cross(lower[lower.len() - 2], lower[lower.len() - 1], p) <= 0 {
            lower.pop();
        }
        lower.push(p);
    }
    let mut upper: Vec<(i64, i64)> = Vec::new();
    for &p in pts.iter().rev() {
        while upper.len() >= 2 && cross(upper[upper.len() - 2], upper[upper.len() - 1], p) <= 0 {
            upper.pop();
        }
        upper.push(p);
    }
    lower.pop();
    upper.pop();
    lower.extend(upper);
    lower
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> BinaryMask {
        BinaryMask::from_rows(rows).unwrap()
    }

    #[test]
    fn connectivity_four_vs_eight() {
        let m = mask(&["#..", ".#.", "..#"]);
        assert_eq!(m.connected_components(Connectivity::Four).num_objects(), 3);
        assert_eq!(m.connected_components(Connectivity::Eight).num_objects(), 1);
    }

    #[test]
    fn u_shape_merges_into_one() {
        let m = mask(&["#.#", "#.#", "###"]);
        let l = m.connected_components(Connectivity::Four);
        assert_eq!(l.num_objects(), 1);
        assert_eq!(l.max_label(), 1);
    }

    #[test]
    fn pieces_split_one_label_in_two_places_and_keep_touching_labels_apart() {
        // Label 1 in two places, label 2 touching label 1 (touching labels stay two pieces).
        let l = LabelImage::new(5, 2, vec![1, 1, 0, 1, 2, 0, 0, 0, 0, 2]).unwrap();
        let p = l.pieces(Connectivity::Eight);
        assert_eq!(p.as_slice(), &[1, 1, 0, 2, 3, 0, 0, 0, 0, 3]);
        let (kept, tally) = l.keep_largest_piece();
        assert_eq!(kept.as_slice(), &[1, 1, 0, 0, 2, 0, 0, 0, 0, 2]);
        assert_eq!(tally, vec![(0, 0), (2, 1), (2, 0)]);
        // A diagonal step is one 8-connected piece.
        let d = LabelImage::new(2, 2, vec![4, 0, 0, 4]).unwrap();
        assert_eq!(d.pieces(Connectivity::Eight).num_objects(), 1);
        assert_eq!(d.pieces(Connectivity::Four).num_objects(), 2);
    }

    #[test]
    fn relabel_sequential_closes_gaps() {
        let l = LabelImage::new(4, 1, vec![0, 7, 3, 7]).unwrap();
        assert_eq!(l.relabel_sequential().as_slice(), &[0, 2, 1, 2]);
    }

    #[test]
    fn properties_of_a_square() {
        let m = mask(&["....", ".##.", ".##.", "...."]);
        let l = m.connected_components(Connectivity::Eight);
        let img = Image::gray8(4, 4, vec![10; 16]).unwrap();
        let p = object_properties(&l, Some(&img)).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].area_px, 4);
        assert_eq!((p[0].centroid_x, p[0].centroid_y), (1.5, 1.5));
        assert_eq!(
            p[0].bbox,
            BBox {
                x0: 1,
                y0: 1,
                x1: 3,
                y1: 3
            }
        );
        assert_eq!(p[0].mean_intensity, Some(10.0));
    }

    #[test]
    fn remove_small_drops_specks() {
        let m = mask(&["#..##", "...##"]);
        let l = m.connected_components(Connectivity::Eight).remove_small(2);
        assert_eq!(l.relabel_sequential().num_objects(), 1);
    }
}
