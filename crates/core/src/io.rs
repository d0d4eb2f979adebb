//! Reading and writing images.
//!
//! - TIFF through the `tiff` crate directly (8/16/32-bit integer and float, gray and RGB,
//!   uncompressed, LZW, Deflate, PackBits; multi-page files as a stack), because the `image` crate
//!   converts away 32-bit and float data and reads only the first page.
//! - PNG (8/16-bit) and JPEG through the `image` crate.
//! - Label images are written as 16-bit grayscale TIFF when every label fits, else 32-bit:
//!   napari, Fiji and CellProfiler open both.
//!
//! Every error names the file.

use crate::error::{Error, Result};
use crate::image::{Channels, Image, Pixels};
use crate::mask::LabelImage;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek};
use std::path::Path;

/// Image file formats mica reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tiff,
    Png,
    Jpeg,
}

/// File extensions (lower case) that mica treats as images when scanning folders.
pub const IMAGE_EXTENSIONS: &[&str] = &["tif", "tiff", "png", "jpg", "jpeg"];

/// True when `path` has one of [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Detects the format from the first bytes of the file (the extension is not trusted).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::Decode`] when it is empty,
/// [`Error::Unsupported`] for other formats.
pub fn detect_format(path: &Path) -> Result<Format> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = [0u8; 8];
    let n = read_up_to(&mut f, &mut head).map_err(|e| Error::io(path, e))?;
    if n == 0 {
        return Err(Error::decode(path, "file is empty (0 bytes)"));
    }
    let head = &head[..n];
    if head.starts_with(b"II*\0")
        || head.starts_with(b"MM\0*")
        || head.starts_with(b"II+\0")
        || head.starts_with(b"MM\0+")
    {
        Ok(Format::Tiff)
    } else if head.starts_with(b"\x89PNG") {
        Ok(Format::Png)
    } else if head.starts_with(&[0xFF, 0xD8]) {
        Ok(Format::Jpeg)
    } else {
        Err(Error::unsupported(
            path,
            "not a TIFF, PNG or JPEG file (unrecognised signature)",
        ))
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads an image keeping its bit depth. For a multi-page TIFF this is the first page; use
/// [`read_tiff_pages`] or [`read_tiff_page`] for the others.
///
/// # Errors
/// A missing, unreadable, empty, truncated or corrupt file, or an unsupported pixel type, each
/// naming the file.
pub fn read_image(path: &Path) -> Result<Image> {
    match detect_format(path)? {
        Format::Tiff => read_tiff_page(path, 0),
        format @ (Format::Png | Format::Jpeg) => {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let (checked, fmt) = match format {
                Format::Png => (png_complete(&bytes), image::ImageFormat::Png),
                _ => (jpeg_complete(&bytes), image::ImageFormat::Jpeg),
            };
            checked.map_err(|why| Error::decode(path, why))?;
            // No decoder limit (the image crate's refuses 512 MB): mica checks the memory an
            // image needs before decoding it ([`image_info`], `--max-memory`).
            let mut reader = image::ImageReader::with_format(std::io::Cursor::new(&bytes), fmt);
            reader.no_limits();
            let img = reader.decode().map_err(|e| Error::decode(path, e))?;
            Image::from_dynamic(img).map_err(|e| Error::decode(path, e))
        }
    }
}

/// Checks that a PNG file holds its whole chunk sequence up to `IEND`. The `image` crate decodes a
/// PNG cut inside its last image-data chunk as if the rest were there; mica refuses it.
///
/// # Errors
/// Why the file is incomplete (truncated, or a chunk length running past the end).
pub fn png_complete(bytes: &[u8]) -> std::result::Result<(), String> {
    let mut at = 8usize;
    if bytes.len() < at || &bytes[..at] != b"\x89PNG\r\n\x1a\n" {
        return Err("not a PNG file (bad signature)".into());
    }
    loop {
        let Some(head) = bytes.get(at..at + 8) else {
            return Err(format!(
                "truncated PNG: the file ends after {} bytes, before its IEND chunk",
                bytes.len()
            ));
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = &head[4..8];
        let end = at + 8 + len + 4;
        if end > bytes.len() {
            return Err(format!(
                "truncated PNG: chunk {:?} at byte {at} needs {} bytes, the file ends after {}",
                String::from_utf8_lossy(kind),
                end,
                bytes.len()
            ));
        }
        if kind == b"IEND" {
            return Ok(());
        }
        at = end;
    }
}

/// Checks that a JPEG file reaches its end-of-image marker (`FF D9`) after the scan data, walking
/// the marker segments and skipping entropy-coded data. The `image` crate's JPEG decoder fills a
/// truncated scan with grey and reports success; mica refuses such a file. Bytes after the
/// end-of-image marker (some cameras append data) are allowed.
///
/// # Errors
/// Why the file is incomplete or malformed.
pub fn jpeg_complete(bytes: &[u8]) -> std::result::Result<(), String> {
    let truncated = |what: &str| {
        Err(format!(
            "truncated JPEG: the file ends after {} bytes, {what} (no end-of-image marker)",
            bytes.len()
        ))
    };
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err("not a JPEG file (no start-of-image marker)".into());
    }
    let mut at = 2usize;
    let mut in_scan = false;
    while at < bytes.len() {
        if in_scan {
            // Entropy-coded data: FF 00 is a stuffed byte, FF D0..D7 restart markers, FF FF fill.
            let Some(off) = bytes[at..].iter().position(|&b| b == 0xFF) else {
                return truncated("inside the image data");
            };
            at += off;
            let Some(&m) = bytes.get(at + 1) else {
                return truncated("inside the image data");
            };
            if m == 0x00 || (0xD0..=0xD7).contains(&m) || m == 0xFF {
                at += if m == 0xFF { 1 } else { 2 };
                continue;
            }
            in_scan = false;
            continue;
        }
        if bytes[at] != 0xFF {
            return Err(format!("malformed JPEG: no marker at byte {at}"));
        }
        let Some(&m) = bytes.get(at + 1) else {
            return truncated("inside a marker");
        };
        match m {
            0xFF => at += 1,
            0xD9 => return Ok(()),
            0x01 | 0xD0..=0xD7 => at += 2,
            _ => {
                let Some(l) = bytes.get(at + 2..at + 4) else {
                    return truncated("inside a segment header");
                };
                let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
                if at + 2 + len > bytes.len() {
                    return truncated("inside a segment");
                }
                at += 2 + len;
                if m == 0xDA {
                    in_scan = true;
                }
            }
        }
    }
    truncated("before its end-of-image marker")
}

/// Number of pages (images) in a TIFF file.
///
/// # Errors
/// As [`read_image`].
pub fn tiff_page_count(path: &Path) -> Result<usize> {
    let mut dec = open_tiff(path)?;
    let mut n = 1;
    while dec.more_images() {
        dec.next_image().map_err(|e| Error::decode(path, e))?;
        n += 1;
    }
    Ok(n)
}

/// Reads page `page` (0-based) of a TIFF file.
///
/// # Errors
/// As [`read_image`], and [`Error::Invalid`] when the file has fewer pages.
pub fn read_tiff_page(path: &Path, page: usize) -> Result<Image> {
    let mut dec = open_tiff(path)?;
    if page > 0 {
        dec.seek_to_image(page).map_err(|e| {
            Error::Invalid(format!("{}: cannot read page {page}: {e}", path.display()))
        })?;
    }
    decode_current(&mut dec, path)
}

/// Reads every page of a TIFF file as a stack.
///
/// # Errors
/// As [`read_image`]; a page that fails to decode fails the whole stack.
pub fn read_tiff_pages(path: &Path) -> Result<Vec<Image>> {
    let mut dec = open_tiff(path)?;
    let mut pages = vec![decode_current(&mut dec, path)?];
    while dec.more_images() {
        dec.next_image().map_err(|e| Error::decode(path, e))?;
        pages.push(decode_current(&mut dec, path)?);
    }
    Ok(pages)
}

fn open_tiff(path: &Path) -> Result<tiff::decoder::Decoder<BufReader<File>>> {
    if detect_format(path)? != Format::Tiff {
        return Err(Error::unsupported(path, "not a TIFF file"));
    }
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    // The tiff crate's default limits refuse images over 256 MB (a 16-bit 12000² image);
    // mica checks the memory an image needs itself ([`image_info`], `--max-memory`).
    tiff::decoder::Decoder::new(BufReader::new(f))
        .map(|d| d.with_limits(tiff::decoder::Limits::unlimited()))
        .map_err(|e| Error::decode(path, e))
}

/// What the header of an image file says, read without decoding the pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub width: u32,
    pub height: u32,
    /// Samples per pixel in the file (alpha included).
    pub samples: u32,
    /// Bytes per sample in the file.
    pub bytes_per_sample: u32,
}

impl ImageInfo {
    pub fn pixels(&self) -> u64 {
        self.width as u64 * self.height as u64
    }
    /// Bytes of the decoded pixels as the decoder makes them.
    pub fn decoded_bytes(&self) -> u64 {
        self.pixels() * self.samples as u64 * self.bytes_per_sample as u64
    }
}

/// The size and sample layout of the image at `path` (PNG, JPEG, TIFF: its first page), from
/// its header only: how much memory decoding it takes can be known before it is decoded.
///
/// # Errors
/// As [`read_image`] for unreadable or unrecognised files and bad headers.
pub fn image_info(path: &Path) -> Result<ImageInfo> {
    use image::ImageDecoder;
    match detect_format(path)? {
        Format::Tiff => {
            let mut dec = open_tiff(path)?;
            let (width, height) = dec.dimensions().map_err(|e| Error::decode(path, e))?;
            let color = dec.colortype().map_err(|e| Error::decode(path, e))?;
            let (samples, bits) = match color {
                tiff::ColorType::Gray(b) => (1, b),
                tiff::ColorType::GrayA(b) => (2, b),
                tiff::ColorType::RGB(b) => (3, b),
                tiff::ColorType::RGBA(b) => (4, b),
                tiff::ColorType::CMYK(b) => (4, b),
                _ => (4, 32),
            };
            Ok(ImageInfo {
                width,
                height,
                samples,
                bytes_per_sample: (bits as u32).div_ceil(8).max(1),
            })
        }
        Format::Png | Format::Jpeg => {
            let reader = image::ImageReader::open(path)
                .map_err(|e| Error::io(path, e))?
                .with_guessed_format()
                .map_err(|e| Error::io(path, e))?;
            let dec = reader.into_decoder().map_err(|e| Error::decode(path, e))?;
            let (width, height) = dec.dimensions();
            let ct = dec.color_type();
            let samples = ct.channel_count() as u32;
            Ok(ImageInfo {
                width,
                height,
                samples,
                bytes_per_sample: (ct.bytes_per_pixel() as u32 / samples.max(1)).max(1),
            })
        }
    }
}

fn decode_current<R: Read + Seek>(
    dec: &mut tiff::decoder::Decoder<R>,
    path: &Path,
) -> Result<Image> {
    use tiff::decoder::DecodingResult as D;
    use tiff::ColorType as C;
    let (w, h) = dec.dimensions().map_err(|e| Error::decode(path, e))?;
    let color = dec.colortype().map_err(|e| Error::decode(path, e))?;
    let (in_channels, keep) = match color {
        C::Gray(_) => (1usize, Channels::Gray),
        C::GrayA(_) => (2, Channels::Gray),
        C::RGB(_) => (3, Channels::Rgb),
        C::RGBA(_) => (4, Channels::Rgb),
        other => {
            return Err(Error::unsupported(
                path,
                format!("TIFF colour type {other:?} (mica reads gray and RGB)"),
            ))
        }
    };
    let data = dec.read_image().map_err(|e| Error::decode(path, e))?;
    let expected = w as usize * h as usize * in_channels;
    let out_channels = keep.count();
    // In place where the channels are kept (no second copy of a large image).
    fn take<T: Copy>(mut v: Vec<T>, expected: usize, inc: usize, outc: usize) -> Vec<T> {
        v.truncate(expected);
        if inc == outc {
            return v;
        }
        let n = v.len() / inc;
        for px in 0..n {
            for c in 0..outc {
                v[px * outc + c] = v[px * inc + c];
            }
        }
        v.truncate(n * outc);
        v.shrink_to_fit();
        v
    }
    let pixels = match data {
        D::U8(v) if v.len() >= expected => Pixels::U8(take(v, expected, in_channels, out_channels)),
        D::U16(v) if v.len() >= expected => {
            Pixels::U16(take(v, expected, in_channels, out_channels))
        }
        D::U32(v) if v.len() >= expected => Pixels::F32(take(
            v[..expected].iter().map(|&x| x as f32).collect(),
            expected,
            in_channels,
            out_channels,
        )),
        D::I16(v) if v.len() >= expected => Pixels::F32(take(
            v[..expected].iter().map(|&x| x as f32).collect(),
            expected,
            in_channels,
            out_channels,
        )),
        D::I32(v) if v.len() >= expected => Pixels::F32(take(
            v[..expected].iter().map(|&x| x as f32).collect(),
            expected,
            in_channels,
            out_channels,
        )),
        D::F32(v) if v.len() >= expected => {
            Pixels::F32(take(v, expected, in_channels, out_channels))
        }
        D::F64(v) if v.len() >= expected => Pixels::F32(take(
            v[..expected].iter().map(|&x| x as f32).collect(),
            expected,
            in_channels,
            out_channels,
        )),
        D::U8(_) | D::U16(_) | D::U32(_) | D::I16(_) | D::I32(_) | D::F32(_) | D::F64(_) => {
            return Err(Error::decode(
                path,
                "pixel data shorter than the image size (truncated?)",
            ))
        }
        _ => {
            return Err(Error::unsupported(
                path,
                format!("TIFF sample type of colour type {color:?}"),
            ))
        }
    };
    Image::new(w, h, keep, pixels).map_err(|e| Error::decode(path, e))
}

/// Creates the parent folders of `path`.
fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    ensure_parent(path)?;
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| Error::io(path, e))
}

fn tiff_err(path: &Path, e: tiff::TiffError) -> Error {
    match e {
        tiff::TiffError::IoError(io) => Error::io(path, io),
        other => Error::decode(path, other),
    }
}

/// Writes a label image as a Deflate-compressed grayscale TIFF: 16-bit when the largest label
/// is at most 65,535, else 32-bit unsigned; with ImageJ metadata (display range 0..max label),
/// so Fiji opens it as a label image with a sensible contrast.
///
/// # Errors
/// [`Error::Io`] when the file cannot be written.
pub fn write_label_tiff(path: &Path, labels: &LabelImage) -> Result<()> {
    write_label_tiff_calibrated(path, labels, None)
}

/// As [`write_label_tiff`], calibrated when `pixel` is known: the resolution tags hold pixels
/// per micrometre and the ImageJ description `unit=micron`, as Fiji writes calibrated images
/// (Fiji then shows µm, and `tifffile` reads the same pixel size).
///
/// # Errors
/// [`Error::Io`] when the file cannot be written.
pub fn write_label_tiff_calibrated(
    path: &Path,
    labels: &LabelImage,
    pixel: Option<&crate::calibration::PixelSize>,
) -> Result<()> {
    use tiff::encoder::{colortype, Compression, Rational, TiffEncoder};
    use tiff::tags::{ResolutionUnit, Tag};
    let mut enc = TiffEncoder::new(create(path)?)
        .map_err(|e| tiff_err(path, e))?
        .with_compression(Compression::Deflate(Default::default()));
    let (w, h) = (labels.width(), labels.height());
    let desc = crate::calibration::imagej_description(labels.max_label(), pixel);
    macro_rules! write {
        ($ct:ty, $data:expr) => {{
            let mut img = enc.new_image::<$ct>(w, h)?;
            img.encoder()
                .write_tag(Tag::ImageDescription, desc.as_str())?;
            match pixel {
                Some(p) => {
                    let (xn, xd) = crate::calibration::per_um_rational(p.x_um);
                    let (yn, yd) = crate::calibration::per_um_rational(p.y_um);
                    img.resolution_unit(ResolutionUnit::None);
                    img.x_resolution(Rational { n: xn, d: xd });
                    img.y_resolution(Rational { n: yn, d: yd });
                }
                None => img.resolution(ResolutionUnit::None, Rational { n: 1, d: 1 }),
            }
            img.write_data($data)
        }};
    }
    let r: std::result::Result<(), tiff::TiffError> = (|| {
        if labels.max_label() <= u16::MAX as u32 {
            let v: Vec<u16> = labels.as_slice().iter().map(|&l| l as u16).collect();
            write!(colortype::Gray16, &v)
        } else {
            write!(colortype::Gray32, labels.as_slice())
        }
    })();
    r.map_err(|e| tiff_err(path, e))
}

/// Reads a label image (8/16/32-bit integer TIFF or PNG).
///
/// # Errors
/// As [`read_image`], and [`Error::Invalid`] for RGB or non-integer images.
pub fn read_label_image(path: &Path) -> Result<LabelImage> {
    let img = read_image(path)?;
    LabelImage::from_image(&img).map_err(|e| Error::decode(path, e))
}

/// Writes an image as an uncompressed TIFF at its own bit depth (8/16-bit or float, gray or RGB).
///
/// # Errors
/// [`Error::Io`] when the file cannot be written.
pub fn write_tiff(path: &Path, img: &Image) -> Result<()> {
    use tiff::encoder::{colortype as ct, TiffEncoder};
    let mut enc = TiffEncoder::new(create(path)?).map_err(|e| tiff_err(path, e))?;
    let (w, h) = (img.width(), img.height());
    match (img.pixels(), img.channels()) {
        (Pixels::U8(v), Channels::Gray) => enc.write_image::<ct::Gray8>(w, h, v),
        (Pixels::U8(v), Channels::Rgb) => enc.write_image::<ct::RGB8>(w, h, v),
        (Pixels::U16(v), Channels::Gray) => enc.write_image::<ct::Gray16>(w, h, v),
        (Pixels::U16(v), Channels::Rgb) => enc.write_image::<ct::RGB16>(w, h, v),
        (Pixels::F32(v), Channels::Gray) => enc.write_image::<ct::Gray32Float>(w, h, v),
        (Pixels::F32(v), Channels::Rgb) => enc.write_image::<ct::RGB32Float>(w, h, v),
    }
    .map_err(|e| tiff_err(path, e))
}

/// Writes an 8- or 16-bit image as PNG (float images are written as 8-bit, clipped to [0, 1]).
///
/// # Errors
/// [`Error::Io`] when the file cannot be written.
pub fn write_png(path: &Path, img: &Image) -> Result<()> {
    let bytes = encode_png(img).map_err(|e| Error::decode(path, e))?;
    ensure_parent(path)?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Encodes an image as PNG bytes (8/16-bit kept; float as 8-bit clipped to [0, 1]).
///
/// # Errors
/// [`Error::Invalid`] if the encoder fails.
pub fn encode_png(img: &Image) -> Result<Vec<u8>> {
    use image::{ExtendedColorType, ImageEncoder};
    let mut out = Vec::new();
    let enc = image::codecs::png::PngEncoder::new(&mut out);
    let (w, h) = (img.width(), img.height());
    let res = match (img.pixels(), img.channels()) {
        (Pixels::U8(v), Channels::Gray) => enc.write_image(v, w, h, ExtendedColorType::L8),
        (Pixels::U8(v), Channels::Rgb) => enc.write_image(v, w, h, ExtendedColorType::Rgb8),
        (Pixels::U16(v), c) => {
            // The encoder takes 16-bit samples in native byte order.
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_ne_bytes()).collect();
            let t = if c == Channels::Gray {
                ExtendedColorType::L16
            } else {
                ExtendedColorType::Rgb16
            };
            enc.write_image(&bytes, w, h, t)
        }
        (Pixels::F32(_), _) => return encode_png(&img.to_u8_full_range()),
    };
    res.map_err(|e| Error::Invalid(format!("PNG encoding failed: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_tiff_round_trip_16_and_32_bit() {
        let dir = tempfile::tempdir().unwrap();
        for max in [3u32, 70_000] {
            let l = LabelImage::new(3, 2, vec![0, 1, 2, max, 0, 1]).unwrap();
            let p = dir.path().join(format!("l{max}.tif"));
            write_label_tiff(&p, &l).unwrap();
            assert_eq!(read_label_image(&p).unwrap(), l);
        }
    }

    #[test]
    fn png_round_trip_8_and_16_bit() {
        let dir = tempfile::tempdir().unwrap();
        let a = Image::gray16(2, 2, vec![0, 1, 1000, 65535]).unwrap();
        let b = Image::rgb8(1, 2, vec![1, 2, 3, 4, 5, 6]).unwrap();
        for (i, img) in [a, b].into_iter().enumerate() {
            let p = dir.path().join(format!("{i}.png"));
            write_png(&p, &img).unwrap();
            assert_eq!(read_image(&p).unwrap(), img);
        }
    }

    #[test]
    fn tiff_round_trip_every_depth() {
        let dir = tempfile::tempdir().unwrap();
        let imgs = [
            Image::gray8(2, 1, vec![0, 255]).unwrap(),
            Image::gray16(2, 1, vec![7, 65535]).unwrap(),
            Image::gray_f32(2, 1, vec![-1.5, 3.25]).unwrap(),
            Image::rgb8(1, 1, vec![1, 2, 3]).unwrap(),
        ];
        for (i, img) in imgs.into_iter().enumerate() {
            let p = dir.path().join(format!("{i}.tif"));
            write_tiff(&p, &img).unwrap();
            assert_eq!(read_image(&p).unwrap(), img);
        }
    }

    #[test]
    fn empty_and_garbage_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.tif");
        std::fs::write(&empty, b"").unwrap();
        let e = read_image(&empty).unwrap_err().to_string();
        assert!(e.contains("empty.tif") && e.contains("empty"), "{e}");
        let junk = dir.path().join("junk.png");
        std::fs::write(&junk, b"hello world").unwrap();
        let e = read_image(&junk).unwrap_err().to_string();
        assert!(e.contains("junk.png") && e.contains("unsupported"), "{e}");
        let missing = dir.path().join("nope.tif");
        let e = read_image(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.tif"), "{e}");
    }

    #[test]
    fn truncated_jpeg_and_png_are_decode_errors() {
        let dir = tempfile::tempdir().unwrap();
        let img =
            image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 7]));
        for (name, fmt) in [
            ("t.jpg", image::ImageFormat::Jpeg),
            ("t.png", image::ImageFormat::Png),
        ] {
            let p = dir.path().join(name);
            img.save_with_format(&p, fmt).unwrap();
            assert!(read_image(&p).is_ok(), "{name} whole");
            let bytes = std::fs::read(&p).unwrap();
            // Trailing bytes after the end are allowed.
            let mut longer = bytes.clone();
            longer.extend_from_slice(b"trailer");
            std::fs::write(&p, &longer).unwrap();
            assert!(read_image(&p).is_ok(), "{name} with trailing bytes");
            for cut in [
                bytes.len() - 1,
                bytes.len() - 2,
                bytes.len() * 3 / 4,
                bytes.len() / 20,
            ] {
                std::fs::write(&p, &bytes[..cut]).unwrap();
                let e = read_image(&p).unwrap_err().to_string();
                assert!(
                    e.contains(name) && e.contains("truncated"),
                    "{name} cut at {cut}: {e}"
                );
            }
        }
    }

    #[test]
    fn truncated_tiff_is_a_decode_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.tif");
        write_tiff(&p, &Image::gray16(64, 64, vec![9; 4096]).unwrap()).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_image(&p).unwrap_err();
        assert!(e.to_string().contains("t.tif"), "{e}");
    }
}
