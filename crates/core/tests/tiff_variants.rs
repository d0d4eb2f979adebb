//! TIFF variants microscopists have: LZW and Deflate compression, 16-bit RGB, multi-page stacks.

use mica_core::{io, BitDepth, Channels, Pixels};
use std::fs::File;
use tiff::encoder::{colortype, Compression, TiffEncoder};

fn ramp16(n: usize) -> Vec<u16> {
    (0..n).map(|i| (i * 997 % 65536) as u16).collect()
}

#[test]
fn lzw_and_deflate_16_bit_read_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = ramp16(37 * 23);
    for (name, comp) in [
        ("lzw.tif", Compression::Lzw),
        ("deflate.tif", Compression::Deflate(Default::default())),
        ("packbits.tif", Compression::Packbits),
    ] {
        let p = dir.path().join(name);
        let mut enc = TiffEncoder::new(File::create(&p).unwrap())
            .unwrap()
            .with_compression(comp);
        enc.write_image::<colortype::Gray16>(37, 23, &data).unwrap();
        drop(enc);
        let img = io::read_image(&p).unwrap();
        assert_eq!(
            (img.width(), img.height(), img.bit_depth()),
            (37, 23, BitDepth::U16),
            "{name}"
        );
        assert_eq!(img.pixels(), &Pixels::U16(data.clone()), "{name}");
    }
}

#[test]
fn rgb_16_bit_keeps_channels_and_depth() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rgb16.tif");
    let data = ramp16(5 * 4 * 3);
    let mut enc = TiffEncoder::new(File::create(&p).unwrap()).unwrap();
    enc.write_image::<colortype::RGB16>(5, 4, &data).unwrap();
    drop(enc);
    let img = io::read_image(&p).unwrap();
    assert_eq!(
        (img.channels(), img.bit_depth()),
        (Channels::Rgb, BitDepth::U16)
    );
    assert_eq!(img.pixels(), &Pixels::U16(data));
}

#[test]
fn multi_page_stack_reads_every_page_and_a_chosen_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("stack.tif");
    let mut enc = TiffEncoder::new(File::create(&p).unwrap()).unwrap();
    for page in 0..3u16 {
        let data: Vec<u16> = vec![page * 1000; 8 * 6];
        enc.write_image::<colortype::Gray16>(8, 6, &data).unwrap();
    }
    drop(enc);
    assert_eq!(io::tiff_page_count(&p).unwrap(), 3);
    let pages = io::read_tiff_pages(&p).unwrap();
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[2].pixels(), &Pixels::U16(vec![2000; 48]));
    assert_eq!(io::read_tiff_page(&p, 1).unwrap(), pages[1]);
    assert_eq!(io::read_image(&p).unwrap(), pages[0]);
    let e = io::read_tiff_page(&p, 5).unwrap_err().to_string();
    assert!(e.contains("stack.tif") && e.contains("page 5"), "{e}");
}

#[test]
fn jpeg_reads_as_8_bit() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.jpg");
    let img = image::RgbImage::from_fn(16, 8, |x, y| image::Rgb([x as u8 * 10, y as u8 * 20, 50]));
    img.save(&p).unwrap();
    let got = io::read_image(&p).unwrap();
    assert_eq!(
        (got.width(), got.height(), got.channels(), got.bit_depth()),
        (16, 8, Channels::Rgb, BitDepth::U8)
    );
}
