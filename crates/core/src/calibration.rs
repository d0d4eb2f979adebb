//! Pixel size (spatial calibration) of an image: given by the user (`--pixel-size UM`) or read
//! from the file's metadata, and written into label TIFFs as ImageJ metadata so Fiji opens them
//! calibrated.
//!
//! Read from TIFF files, in this order:
//! 1. OME-TIFF: `PhysicalSizeX` / `PhysicalSizeY` of the first `Pixels` element of the OME-XML
//!    in `ImageDescription` (units `PhysicalSizeXUnit`, default µm);
//! 2. ImageJ: `ImageDescription` starting with `ImageJ=` with a length `unit=` (micron, µm, um,
//!    nm, mm, cm, m), the pixel size being 1 / `XResolution` (and `YResolution`) in that unit;
//! 3. plain resolution tags in centimetres, or in inches unless the value is one of the screen
//!    and print defaults (72, 96, 150, 300, 600 dpi) that software writes without measuring
//!    anything (a 72-dpi image is not 352.8 µm per pixel).
//!
//! Metadata that claims a calibration but cannot be read (an unknown unit, a zero resolution,
//! an implausible size) is an error naming the file, never a guess; no metadata is `None`.

use crate::error::{Error, Result};
use std::path::Path;

/// Where a pixel size came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalibrationSource {
    /// Given by the user.
    User,
    OmeTiff,
    ImageJ,
    TiffResolution,
}

impl CalibrationSource {
    pub fn name(self) -> &'static str {
        match self {
            CalibrationSource::User => "user",
            CalibrationSource::OmeTiff => "ome-tiff",
            CalibrationSource::ImageJ => "imagej",
            CalibrationSource::TiffResolution => "tiff-resolution",
        }
    }
}

/// Size of a pixel in micrometres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelSize {
    pub x_um: f64,
    pub y_um: f64,
    pub source: CalibrationSource,
}

impl PixelSize {
    /// A square pixel given by the user.
    ///
    /// # Errors
    /// [`Error::Invalid`] unless `um` is finite and positive.
    pub fn user(um: f64) -> Result<Self> {
        check(um, "--pixel-size")?;
        Ok(PixelSize {
            x_um: um,
            y_um: um,
            source: CalibrationSource::User,
        })
    }

    /// Whether pixels are square (to 1 part in 10⁶): lengths in µm are defined only then.
    pub fn is_square(&self) -> bool {
        (self.x_um - self.y_um).abs() <= 1e-6 * self.x_um.max(self.y_um)
    }
}

fn check(um: f64, what: &str) -> Result<f64> {
    if um.is_finite() && um > 0.0 && um < 1e6 {
        Ok(um)
    } else {
        Err(Error::Invalid(format!(
            "{what}: a pixel size of {um} µm is not plausible (it must be positive and under 1 m)"
        )))
    }
}

/// Micrometres per `unit`, for the length units microscopy files use.
fn um_per(unit: &str) -> Option<f64> {
    let u = unit.trim().trim_matches('"');
    Some(match u {
        "micron" | "microns" | "um" | "µm" | "μm" | "\\u00B5m" | "\\u00b5m" | "micrometer"
        | "micrometre" => 1.0,
        "nm" | "nanometer" | "nanometre" => 1e-3,
        "mm" | "millimeter" | "millimetre" => 1e3,
        "cm" | "centimeter" | "centimetre" => 1e4,
        "m" | "meter" | "metre" => 1e6,
        "Å" | "angstrom" => 1e-4,
        _ => return None,
    })
}

/// The pixel size recorded in an image file, if it has one (TIFF only; other formats: `None`).
///
/// # Errors
/// [`Error::Invalid`] naming the file when metadata claims a calibration that cannot be read.
pub fn read_pixel_size(path: &Path) -> Result<Option<PixelSize>> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if ext != "tif" && ext != "tiff" {
        return Ok(None);
    }
    let Ok(file) = std::fs::File::open(path) else {
        return Ok(None);
    };
    let Ok(mut dec) = tiff::decoder::Decoder::new(std::io::BufReader::new(file)) else {
        // Not a readable TIFF: reading the image reports it.
        return Ok(None);
    };
    use tiff::tags::Tag;
    let desc = dec
        .get_tag_ascii_string(Tag::ImageDescription)
        .ok()
        .unwrap_or_default();
    let rational = |dec: &mut tiff::decoder::Decoder<_>, tag| -> Option<f64> {
        match dec.find_tag(tag).ok()?? {
            tiff::decoder::ifd::Value::Rational(n, d) if d != 0 => Some(n as f64 / d as f64),
            tiff::decoder::ifd::Value::Rational(_, _) => Some(0.0),
            v => v.into_f64().ok(),
        }
    };
    let xres = rational(&mut dec, Tag::XResolution);
    let yres = rational(&mut dec, Tag::YResolution).or(xres);
    let unit = dec
        .find_tag(Tag::ResolutionUnit)
        .ok()
        .flatten()
        .and_then(|v| v.into_u16().ok())
        .unwrap_or(2);
    let bad = |m: String| Error::Invalid(format!("{}: {m}", path.display()));

    if desc.contains("<OME") {
        let Some(pixels) = desc.find("<Pixels ").map(|i| &desc[i..]) else {
            return Ok(None);
        };
        let tag_end = pixels.find('>').unwrap_or(pixels.len());
        let attrs = &pixels[..tag_end];
        let attr = |name: &str| -> Option<&str> {
            let key = format!(" {name}=\"");
            let i = attrs.find(&key)? + key.len();
            attrs[i..].split('"').next()
        };
        let Some(sx) = attr("PhysicalSizeX") else {
            return Ok(None);
        };
        let sy = attr("PhysicalSizeY").unwrap_or(sx);
        let size = |v: &str, unit_attr: &str| -> Result<f64> {
            let n: f64 = v
                .parse()
                .map_err(|_| bad(format!("OME {unit_attr}: {v:?} is not a number")))?;
            let unit = attr(unit_attr).unwrap_or("µm");
            let f = um_per(unit)
                .ok_or_else(|| bad(format!("OME {unit_attr} {unit:?} is not a length unit")))?;
            check(n * f, &path.display().to_string())
        };
        return Ok(Some(PixelSize {
            x_um: size(sx, "PhysicalSizeXUnit")?,
            y_um: size(sy, "PhysicalSizeYUnit")?,
            source: CalibrationSource::OmeTiff,
        }));
    }
    if desc.starts_with("ImageJ=") {
        let unit = desc
            .lines()
            .find_map(|l| l.strip_prefix("unit="))
            .map(str::trim);
        let Some(unit) = unit else { return Ok(None) };
        if matches!(unit, "pixel" | "pixels" | "") {
            return Ok(None);
        }
        let f = um_per(unit)
            .ok_or_else(|| bad(format!("ImageJ unit {unit:?} is not a length unit")))?;
        let (Some(xr), Some(yr)) = (xres, yres) else {
            return Err(bad(format!(
                "ImageJ unit {unit:?} without XResolution/YResolution"
            )));
        };
        if xr <= 0.0 || yr <= 0.0 {
            return Err(bad("ImageJ resolution is 0".into()));
        }
        let name = path.display().to_string();
        return Ok(Some(PixelSize {
            x_um: check(f / xr, &name)?,
            y_um: check(f / yr, &name)?,
            source: CalibrationSource::ImageJ,
        }));
    }
    let (Some(xr), Some(yr)) = (xres, yres) else {
        return Ok(None);
    };
    let per_unit = match unit {
        3 => 1e4,
        2 if [72.0, 96.0, 150.0, 300.0, 600.0].contains(&xr) && xr == yr => return Ok(None),
        2 => 25_400.0,
        _ => return Ok(None),
    };
    if xr <= 0.0 || yr <= 0.0 {
        return Ok(None);
    }
    let name = path.display().to_string();
    Ok(Some(PixelSize {
        x_um: check(per_unit / xr, &name)?,
        y_um: check(per_unit / yr, &name)?,
        source: CalibrationSource::TiffResolution,
    }))
}

/// The ImageJ `ImageDescription` of a label image with labels up to `max_label`, calibrated in
/// micrometres when `pixel` is known (then the resolution tags are 1 / pixel size, unit none).
pub fn imagej_description(max_label: u32, pixel: Option<&PixelSize>) -> String {
    let mut d = String::from("ImageJ=1.11a\n");
    if pixel.is_some() {
        d.push_str("unit=micron\n");
    }
    d.push_str(&format!("min=0.0\nmax={}.0\n", max_label.max(1)));
    d
}

/// `1 / um` pixels per micrometre as a TIFF rational (7 significant digits).
pub fn per_um_rational(um: f64) -> (u32, u32) {
    let per = 1.0 / um;
    let mut d: u32 = 1_000_000;
    while per * d as f64 > u32::MAX as f64 / 2.0 && d > 1 {
        d /= 10;
    }
    ((per * d as f64).round() as u32, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_rationals() {
        assert_eq!(um_per("micron"), Some(1.0));
        assert_eq!(um_per("\\u00B5m"), Some(1.0));
        assert_eq!(um_per("nm"), Some(1e-3));
        assert_eq!(um_per("inch"), None);
        let (n, d) = per_um_rational(0.65);
        assert!((d as f64 / n as f64 - 0.65).abs() < 1e-6);
        assert!(PixelSize::user(0.0).is_err());
        assert!(PixelSize::user(f64::NAN).is_err());
        assert!(PixelSize::user(0.5).unwrap().is_square());
    }
}
