//! Prints a row profile through the first object of an image with its mask (for calibration).
//! `cargo run -p mica-synth --example profile_dump -- IMAGE MASK`
use mica_core::{io, BinaryMask, Connectivity};
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let img = io::read_image(std::path::Path::new(&a[1]))?;
    let m = BinaryMask::from_image_above(&io::read_image(std::path::Path::new(&a[2]))?, 0.0);
    let l = m.connected_components(Connectivity::Eight);
    let p = mica_core::object_properties(&l, Some(&img))?;
    let v = img.intensity_f32();
    for o in p.iter().take(2) {
        let y = o.centroid_y.round() as u32;
        let (x0, x1) = (
            o.bbox.x0.saturating_sub(8),
            (o.bbox.x1 + 8).min(img.width()),
        );
        println!("object {} area {} bbox {:?}", o.label, o.area_px, o.bbox);
        let row: Vec<String> = (x0..x1)
            .map(|x| {
                let i = (y * img.width() + x) as usize;
                format!("{}{}", v[i] as u32, if m.get(x, y) { "*" } else { "" })
            })
            .collect();
        println!("{}", row.join(" "));
    }
    Ok(())
}
