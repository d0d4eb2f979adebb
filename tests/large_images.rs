//! One large image never ends a batch (issue #18): under an address-space limit (`ulimit -v`),
//! an image too large for the memory budget is refused before it is decoded, named, and the
//! others are counted (exit 3); with tiling (the default above 4096² px) it is counted too.
//! Before the budget, the same batch was aborted by the allocator ("memory allocation failed",
//! SIGABRT) and lost every image.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A `side × side` 8-bit PNG made of one BBBC005 example image repeated.
fn big_png(dir: &Path, side: u32) -> PathBuf {
    let src = mica_core::io::read_image(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/bbbc005/images/SIMCEPImages_A11_C44_F1_s17_w1.TIF"),
    )
    .unwrap()
    .to_gray();
    let mica_core::Pixels::U8(v) = src.pixels() else {
        panic!("the example is 8-bit")
    };
    let (w, h) = (src.width(), src.height());
    let mut data = Vec::with_capacity(side as usize * side as usize);
    for y in 0..side {
        for x in 0..side {
            data.push(v[((y % h) * w + x % w) as usize]);
        }
    }
    let path = dir.join("big.png");
    mica_core::io::write_png(&path, &mica_core::Image::gray8(side, side, data).unwrap()).unwrap();
    path
}

/// `mica count ARGS` under `ulimit -v KB`: exit code and output.
fn count_limited(kb: u64, args: &[&str]) -> (i32, String) {
    let mut cmd = format!("ulimit -v {kb} && exec \"$0\" -q count");
    for (i, _) in args.iter().enumerate() {
        cmd.push_str(&format!(" \"${}\"", i + 1));
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .arg(env!("CARGO_BIN_EXE_mica"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn small_images() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bbbc005/images");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with("w1.TIF"))
        .collect();
    v.sort();
    v
}

#[test]
fn under_ulimit_v_a_huge_png_is_refused_by_name_the_rest_counted_and_with_tiles_all() {
    let dir = tempfile::tempdir().unwrap();
    // 9000² px: 2.5 GB for the whole image at once, more than 3/4 of a 2.4 GB address space.
    let big = big_png(dir.path(), 9000);
    let big_s = big.display().to_string();
    let small = small_images();
    assert_eq!(small.len(), 5);
    let limit_kb = 2_500_000;

    let mut args = vec!["--tile", "off", big_s.as_str()];
    args.extend(small.iter().map(String::as_str));
    let (code, said) = count_limited(limit_kb, &args);
    assert_eq!(code, 3, "{said}");
    assert!(
        said.contains(&format!("{big_s}: a 9000x9000 image: needs about"))
            && said.contains("more than the budget")
            && said.contains("ulimit -v"),
        "{said}"
    );
    for s in &small {
        assert!(said.contains(&format!("{s},")), "{s} not counted:\n{said}");
    }

    // The default tiles it: every image is counted within the same limit.
    let mut args = vec![big_s.as_str()];
    args.extend(small.iter().map(String::as_str));
    let (code, said) = count_limited(limit_kb, &args);
    assert_eq!(code, 0, "{said}");
    let big_count: usize = said
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{big_s},")))
        .unwrap_or_else(|| panic!("no count for the big image:\n{said}"))
        .parse()
        .unwrap();
    // 13 × 17 copies of a 44-cell image (some cut at the seams and edges).
    assert!((7_000..12_000).contains(&big_count), "{big_count}");

    // An explicit budget below the need is refused the same way, naming the flag.
    let (code, said) = count_limited(limit_kb, &["--max-memory", "100M", big_s.as_str()]);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("--max-memory 100M"), "{said}");
}

#[test]
fn a_study_under_a_small_memory_budget_fails_each_image_with_the_reason_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.sqlite");
    let out = Command::new(env!("CARGO_BIN_EXE_mica"))
        .env_remove("MICA_SAM_WEIGHTS")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-q", "run", "studies/demo.toml", "--data-root", "examples"])
        .arg("--store")
        .arg(&store)
        .args(["--max-memory", "1M"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{said}");
    let preds = mica_store::Store::open_read_only(&store)
        .unwrap()
        .predictions()
        .unwrap();
    let classical: Vec<_> = preds
        .iter()
        .filter(|p| p.key.method.starts_with("mica classical"))
        .collect();
    assert!(!classical.is_empty());
    for p in &classical {
        let why = p.failure.as_deref().unwrap_or_default();
        assert!(
            why.contains("more than the budget of 1.0 MiB (--max-memory)")
                && why.contains(&p.key.sample_id),
            "{:?}: {why}",
            p.key
        );
    }
    // Methods that decode no image (imported answers) are made as usual.
    assert!(preds
        .iter()
        .any(|p| p.key.method == "GPT visual" && p.failure.is_none()));
}
