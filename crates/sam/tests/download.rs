//! `weights::download` against a small HTTP server on 127.0.0.1 started by the test itself: a
//! good file, a corrupted one, a 404 and a truncated body. No test touches the internet.

use mica_sam::weights::{download, download_weights, DownloadError, MOBILE_SAM_FILE};
use mica_sam::SamModel;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Serves `routes` (path, body) forever on a free loopback port (the workspace's test server,
/// `mica_testkit`); other paths get a 404. `/short` announces more bytes than it sends, then
/// closes the connection; `/redirect…` answers 302 to the path its body names.
fn serve(routes: Vec<(&'static str, Vec<u8>)>) -> String {
    use mica_testkit::{MockServer, Reply, Script};
    let server = MockServer::start(Script::Func(Box::new(move |r| {
        match routes.iter().find(|(p, _)| *p == r.path) {
            // The body names the target path, as GitHub's raw URL redirects elsewhere.
            Some((p, body)) if p.starts_with("/redirect") => Reply::bytes(302, Vec::new())
                .with_header("Location", &String::from_utf8_lossy(body)),
            Some((p, body)) if *p == "/short" => {
                Reply::bytes(200, body.clone()).announcing(body.len() * 2)
            }
            Some((_, body)) => Reply::bytes(200, body.clone())
                .with_header("Content-Type", "application/octet-stream"),
            None => Reply::bytes(404, b"not found".to_vec()),
        }
    })));
    server.url("")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A body of a few hundred kB so the download is streamed in many chunks.
fn payload() -> Vec<u8> {
    (0..300_000u32).map(|i| (i * 7 + i / 13) as u8).collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn good_file_is_downloaded_verified_and_renamed_into_place() {
    let body = payload();
    let base = serve(vec![("/w.pt", body.clone())]);
    let dir = tempfile::tempdir().unwrap();
    // The cache directory does not exist yet: it is created.
    let dest = dir.path().join("cache/mica/w.pt");
    let n = download(&format!("{base}/w.pt"), &dest, &sha256_hex(&body)).unwrap();
    assert_eq!(n, body.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    // Only the final file is left, no temporary file.
    assert_eq!(files_in(dest.parent().unwrap()), vec!["w.pt".to_string()]);
    // Upper-case expected hashes are accepted.
    let again = download(
        &format!("{base}/w.pt"),
        &dest,
        &sha256_hex(&body).to_uppercase(),
    )
    .unwrap();
    assert_eq!(again, body.len() as u64);
}

#[test]
fn redirects_are_followed() {
    // The official GitHub URL answers with a redirect to the file's real location.
    let body = payload();
    let base = serve(vec![
        ("/redirect", b"/files/w.pt".to_vec()),
        ("/files/w.pt", body.clone()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("w.pt");
    download(&format!("{base}/redirect"), &dest, &sha256_hex(&body)).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
}

#[test]
fn corrupted_file_is_rejected_and_nothing_is_left_behind() {
    let body = payload();
    let mut corrupted = body.clone();
    corrupted[1234] ^= 0xff;
    let base = serve(vec![("/w.pt", corrupted.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("w.pt");
    let url = format!("{base}/w.pt");
    let expected = sha256_hex(&body);
    let err = download(&url, &dest, &expected).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DownloadError::Checksum { .. }), "{msg}");
    assert!(msg.contains(&url), "{msg}");
    assert!(msg.contains(&expected), "{msg}");
    assert!(msg.contains(&sha256_hex(&corrupted)), "{msg}");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );

    // An existing file at the destination is left untouched by a failed download.
    std::fs::write(&dest, b"old").unwrap();
    download(&url, &dest, &expected).unwrap_err();
    assert_eq!(std::fs::read(&dest).unwrap(), b"old");
    assert_eq!(files_in(dir.path()), vec!["w.pt".to_string()]);
}

#[test]
fn not_found_is_a_clear_error() {
    let base = serve(vec![]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("w.pt");
    let url = format!("{base}/missing.pt");
    let err = download(&url, &dest, &sha256_hex(b"x")).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, DownloadError::Status { status: 404, .. }),
        "{msg}"
    );
    assert!(msg.contains(&url) && msg.contains("404"), "{msg}");
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn truncated_body_is_an_error_and_leaves_nothing() {
    let body = payload();
    let base = serve(vec![("/short", body.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("w.pt");
    let url = format!("{base}/short");
    let err = download(&url, &dest, &sha256_hex(&body)).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            DownloadError::Transfer { .. } | DownloadError::Size { .. }
        ),
        "{msg}"
    );
    assert!(msg.contains(&url), "{msg}");
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn unreachable_server_and_bad_expected_hash_are_errors() {
    // A port that was free a moment ago: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("w.pt");
    let url = format!("http://127.0.0.1:{port}/w.pt");
    let err = download(&url, &dest, &sha256_hex(b"x")).unwrap_err();
    assert!(matches!(err, DownloadError::Transfer { .. }), "{err}");
    assert!(err.to_string().contains(&url));
    let err = download(&url, &dest, "abc").unwrap_err();
    assert!(matches!(err, DownloadError::BadExpected(_)), "{err}");
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn download_weights_checks_the_official_checksum() {
    // Anything but the official checkpoint fails the official sha256 and is not kept.
    let base = serve(vec![("/mobile_sam.pt", payload())]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{base}/mobile_sam.pt");
    let err = download_weights(
        SamModel::MobileSam,
        Some(&url),
        Some(dir.path().to_path_buf()),
    )
    .unwrap_err();
    assert!(matches!(err, DownloadError::Checksum { .. }), "{err}");
    assert!(err
        .to_string()
        .contains(mica_sam::weights::MOBILE_SAM_SHA256));
    assert!(!dir.path().join(MOBILE_SAM_FILE).exists());
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn download_weights_accepts_the_real_checkpoint_served_locally() {
    let real = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"))
        .join("models/mobile_sam.pt");
    let Ok(bytes) = std::fs::read(&real) else {
        eprintln!("skipped: {} not present", real.display());
        return;
    };
    let base = serve(vec![("/mobile_sam.pt", bytes.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let w = download_weights(
        SamModel::MobileSam,
        Some(&format!("{base}/mobile_sam.pt")),
        Some(dir.path().join("mica")),
    )
    .unwrap();
    assert_eq!(w.path, dir.path().join("mica").join(MOBILE_SAM_FILE));
    assert_eq!(std::fs::read(&w.path).unwrap().len(), bytes.len());
    // The resolver now finds it in the cache and its checksum passes.
    let r = mica_sam::weights::resolve_weights_from(
        SamModel::MobileSam,
        None,
        None,
        Some(dir.path().join("mica")),
    )
    .unwrap();
    assert_eq!(r.origin, mica_sam::WeightsOrigin::Cache);
}
