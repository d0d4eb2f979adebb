//! Writes a large test image for memory and speed benchmarks: the gray image IN repeated
//! (alternately mirrored, so that no seam is a straight edge of the tiles) to SIDE × SIDE pixels.
//!
//!   cargo run --release -p mica-core --example mosaic -- IN OUT.png|OUT.tif SIDE
//!
//! 8-bit input gives an 8-bit output, 16-bit a 16-bit one; RGB input is converted to gray.

use mica_core::{Image, Pixels};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, out, side] = args.as_slice() else {
        return Err("usage: mosaic IN OUT.png|OUT.tif SIDE".into());
    };
    let side: u32 = side.parse()?;
    let src = mica_core::io::read_image(&PathBuf::from(input))?.to_gray();
    let (w, h) = (src.width(), src.height());
    let at = |x: u32, y: u32| -> usize {
        let (tx, ty) = (x / w, y / h);
        let (mut sx, mut sy) = (x % w, y % h);
        if tx % 2 == 1 {
            sx = w - 1 - sx;
        }
        if ty % 2 == 1 {
            sy = h - 1 - sy;
        }
        (sy * w + sx) as usize
    };
    let n = side as usize * side as usize;
    let image = match src.pixels() {
        Pixels::U8(v) => {
            let mut d = Vec::with_capacity(n);
            for y in 0..side {
                for x in 0..side {
                    d.push(v[at(x, y)]);
                }
            }
            Image::gray8(side, side, d)?
        }
        Pixels::U16(v) => {
            let mut d = Vec::with_capacity(n);
            for y in 0..side {
                for x in 0..side {
                    d.push(v[at(x, y)]);
                }
            }
            Image::gray16(side, side, d)?
        }
        Pixels::F32(_) => return Err("float images are not supported here".into()),
    };
    let out = PathBuf::from(out);
    if out.extension().is_some_and(|e| e == "png") {
        mica_core::io::write_png(&out, &image)?;
    } else {
        mica_core::io::write_tiff(&out, &image)?;
    }
    println!("{}: {side}x{side}", out.display());
    Ok(())
}
