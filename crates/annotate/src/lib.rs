//! `mica annotate`: the SAM demo's workflow (the study's "SAM manual" arm) as a local page
//! served by mica on 127.0.0.1, offline, with no external assets.
//!
//! Click = foreground point, right-click (or Alt-click) = background point, drag = box; the mask
//! of the current object is shown after each change (the image is embedded once, when it is
//! opened, so a mask costs one decoder pass). Accept, undo, delete, a running count. Saving an
//! image segments its accepted objects again on the server, exactly as
//! `mica segment --method sam --points points.csv --boxes boxes.csv` does, and writes to the
//! output folder:
//!
//! - `<stem>_labels.tif` (one label per accepted object, numbered as a replay of the saved
//!   prompts numbers them: objects with points in the order accepted, then box-only objects)
//!   and `<stem>_overlay.png`;
//! - `objects.csv`, `counts.csv`, `prompt_labels.csv` (as `mica segment` writes them);
//! - `points.csv` and `boxes.csv`: the prompts, replayable with `--points` / `--boxes`.
//!
//! Each table holds the rows of every image saved into the folder, this session or an earlier
//! one: a save replaces the rows of its own image only (written to a temporary file, then
//! renamed). Prompts saved earlier are shown again when an image is reopened.
//!
//! The server answers only requests whose `Host` is this loopback address (no other site can
//! drive it through the browser), takes bodies up to 1 MiB, and treats what the page sends as
//! untrusted input (validated, object names neutralised in CSV).

use mica_core::{Image, LabelImage};
use mica_sam::{ImageEmbedding, ImagePrep, PointLabel, PointPrompt, Prompt, Sam};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// The page (HTML, CSS and JavaScript in one file).
const PAGE: &str = include_str!("page.html");

/// The page's icon (browsers ask for one).
const ICON: &str = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>\
<circle cx='8' cy='8' r='6' fill='#0af'/></svg>";

/// Largest request body accepted.
const MAX_BODY: u64 = 1 << 20;

/// Embeddings kept in memory (about 4 MB each for MobileSAM, more with the factored decoder's
/// precomputed keys); older ones are computed again (or read from `--embeddings`) when needed.
const KEEP_EMBEDDINGS: usize = 8;

/// Colour of outlines in saved overlays.
const OUTLINE_RGB: [u8; 3] = [255, 220, 0];

/// An error for one request: HTTP status and message.
#[derive(Debug)]
pub struct ApiError(pub u16, pub String);

impl ApiError {
    fn bad(msg: impl Into<String>) -> Self {
        ApiError(400, msg.into())
    }
    fn internal(msg: impl Into<String>) -> Self {
        ApiError(500, msg.into())
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// One image to annotate.
#[derive(Debug, Clone)]
struct Entry {
    /// Absolute path: what the CSVs name.
    path: PathBuf,
    name: String,
    stem: String,
}

type Slot<T> = Arc<OnceLock<Result<Arc<T>, String>>>;

/// Embeddings by image, and the order they were made in (oldest first, for eviction).
type Embeddings = (HashMap<usize, Slot<ImageEmbedding>>, VecDeque<usize>);

/// The SAM annotator: images, the model and what has been computed.
pub struct Annotator {
    sam: Sam,
    prep: ImagePrep,
    images: Vec<Entry>,
    out: PathBuf,
    /// Prepared (8-bit RGB) images by index.
    prepared: Mutex<HashMap<usize, Slot<Image>>>,
    embeddings: Mutex<Embeddings>,
    /// Saves are done one at a time (they rewrite the shared tables).
    save_lock: Mutex<()>,
    /// Prompts saved earlier into the output folder, by image index.
    earlier: Mutex<HashMap<usize, Vec<ObjectIn>>>,
}

/// A point as the page sends it: `[x, y, label]`, label 1 = foreground, 0 = background.
type PointIn = [f32; 3];

/// One object's prompt as the page sends it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObjectIn {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub points: Vec<PointIn>,
    #[serde(default, rename = "box")]
    pub bbox: Option<[f32; 4]>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictIn {
    image: usize,
    #[serde(flatten)]
    object: ObjectIn,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveIn {
    image: usize,
    objects: Vec<ObjectIn>,
}

impl ObjectIn {
    fn prompt(&self, width: u32, height: u32) -> ApiResult<Prompt> {
        let mut points = Vec::new();
        for &[x, y, l] in &self.points {
            let label = match l {
                1.0 => PointLabel::Positive,
                0.0 => PointLabel::Negative,
                _ => return Err(ApiError::bad(format!("point label {l}: 1 or 0"))),
            };
            points.push(PointPrompt { x, y, label });
        }
        if self.bbox.is_none() && !points.iter().any(|p| p.label == PointLabel::Positive) {
            return Err(ApiError::bad(
                "an object needs a foreground point or a box".to_string(),
            ));
        }
        let prompt = Prompt {
            points,
            bbox: self.bbox,
            mask_logits: None,
        };
        // Points and box inside the image: the check every SAM entry point makes.
        mica_sam::prompted::check_prompts(std::slice::from_ref(&prompt), width, height)
            .map_err(|e| ApiError::bad(e.to_string()))?;
        Ok(prompt)
    }
}

/// What a save wrote.
#[derive(Debug, Serialize)]
pub struct Saved {
    pub count: usize,
    pub labels: Vec<SavedLabel>,
    pub files: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct SavedLabel {
    pub name: String,
    pub label: Option<u32>,
    pub note: Option<String>,
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into())
}

impl Annotator {
    /// An annotator for `images`, writing into `out` (created). Prompts saved there earlier are
    /// loaded.
    ///
    /// # Errors
    /// No images, an image that does not exist, two images with one file stem (their outputs
    /// would collide), the folder cannot be created, earlier prompt files that cannot be read.
    pub fn new(sam: Sam, prep: ImagePrep, images: &[PathBuf], out: &Path) -> Result<Self, String> {
        if images.is_empty() {
            return Err("no images given".into());
        }
        let mut entries = Vec::new();
        let mut stems: HashMap<String, PathBuf> = HashMap::new();
        for p in images {
            let path = std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let s = stem(&path);
            if let Some(prev) = stems.insert(s.clone(), path.clone()) {
                return Err(format!(
                    "{} and {} have the same file stem: their outputs would overwrite each other",
                    prev.display(),
                    path.display()
                ));
            }
            entries.push(Entry {
                name: path
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                stem: s,
                path,
            });
        }
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        let a = Annotator {
            sam,
            prep,
            images: entries,
            out: out.to_path_buf(),
            prepared: Mutex::new(HashMap::new()),
            embeddings: Mutex::new((HashMap::new(), VecDeque::new())),
            save_lock: Mutex::new(()),
            earlier: Mutex::new(HashMap::new()),
        };
        a.load_earlier()?;
        Ok(a)
    }

    /// Reads `points.csv` / `boxes.csv` of the output folder, if there are any.
    fn load_earlier(&self) -> Result<(), String> {
        let points = self.out.join("points.csv");
        let boxes = self.out.join("boxes.csv");
        let (p, b) = (points.is_file(), boxes.is_file());
        if !p && !b {
            return Ok(());
        }
        let has_rows = |f: &Path| {
            std::fs::read_to_string(f)
                .map(|t| t.lines().skip(1).any(|l| !l.trim().is_empty()))
                .unwrap_or(false)
        };
        let p = p && has_rows(&points);
        let b = b && has_rows(&boxes);
        if !p && !b {
            return Ok(());
        }
        let files = mica_sam::PromptFiles::read(
            p.then_some(points.as_path()),
            b.then_some(boxes.as_path()),
        )
        .map_err(|e| format!("earlier prompts in {}: {e}", self.out.display()))?;
        let mut earlier = self.earlier.lock().unwrap();
        for (i, e) in self.images.iter().enumerate() {
            if let Some(ip) = files.for_path(&e.path) {
                let objects = ip
                    .objects
                    .clone()
                    .map_err(|m| format!("earlier prompts in {}: {m}", self.out.display()))?;
                earlier.insert(
                    i,
                    objects
                        .into_iter()
                        .map(|o| ObjectIn {
                            name: o.name,
                            points: o
                                .prompt
                                .points
                                .iter()
                                .map(|q| {
                                    [
                                        q.x,
                                        q.y,
                                        f32::from(u8::from(q.label == PointLabel::Positive)),
                                    ]
                                })
                                .collect(),
                            bbox: o.prompt.bbox,
                        })
                        .collect(),
                );
            }
        }
        Ok(())
    }

    fn entry(&self, i: usize) -> ApiResult<&Entry> {
        self.images.get(i).ok_or_else(|| {
            ApiError(
                404,
                format!("no image {i} (there are {})", self.images.len()),
            )
        })
    }

    /// The image as SAM sees it (8-bit RGB), read once.
    fn prepared(&self, i: usize) -> ApiResult<Arc<Image>> {
        let e = self.entry(i)?;
        let slot = self.prepared.lock().unwrap().entry(i).or_default().clone();
        slot.get_or_init(|| {
            let img = mica_core::io::read_image(&e.path).map_err(|err| err.to_string())?;
            let rgb = self
                .prep
                .apply(&img)
                .map_err(|err| format!("{}: {err}", e.path.display()))?;
            Ok(Arc::new(rgb))
        })
        .clone()
        .map_err(|m| ApiError::bad(format!("{}: {m}", e.path.display())))
    }

    /// The image's embedding, computed once (concurrent callers wait for the same one).
    fn embedding(&self, i: usize) -> ApiResult<Arc<ImageEmbedding>> {
        let rgb = self.prepared(i)?;
        let slot = {
            let mut g = self.embeddings.lock().unwrap();
            let (map, order) = &mut *g;
            if !map.contains_key(&i) {
                order.push_back(i);
                while order.len() > KEEP_EMBEDDINGS {
                    if let Some(old) = order.pop_front() {
                        map.remove(&old);
                    }
                }
            }
            map.entry(i).or_default().clone()
        };
        slot.get_or_init(|| {
            let t = Instant::now();
            let emb = self.sam.embed(&rgb).map_err(|e| e.to_string())?;
            tracing::info!(image = i, ms = t.elapsed().as_millis() as u64, "embedded");
            Ok(Arc::new(emb))
        })
        .clone()
        .map_err(|m| ApiError::internal(format!("{}: {m}", self.images[i].path.display())))
    }

    fn images_json(&self) -> serde_json::Value {
        let earlier = self.earlier.lock().unwrap();
        serde_json::Value::Array(
            self.images
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    serde_json::json!({
                        "index": i,
                        "name": e.name,
                        "path": e.path.display().to_string(),
                        "objects": earlier.get(&i).cloned().unwrap_or_default(),
                    })
                })
                .collect(),
        )
    }

    /// The mask of one object: row-major runs `[start, length, ...]` of its pixels.
    fn predict(&self, req: PredictIn) -> ApiResult<serde_json::Value> {
        let emb = self.embedding(req.image)?;
        let (w, h) = emb.image_size();
        let prompt = req.object.prompt(w as u32, h as u32)?;
        let mut timings = mica_sam::AmgTimings::default();
        let t = Instant::now();
        let (masks, mask_of) =
            mica_sam::prompted::segment_objects_embedded(&self.sam, &emb, &[prompt], &mut timings)
                .map_err(|e| ApiError::bad(e.to_string()))?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let Some(m) = mask_of[0].map(|j| &masks[j]) else {
            return Ok(
                serde_json::json!({"width": w, "height": h, "runs": [], "area": 0,
                                         "iou": null, "ms": ms}),
            );
        };
        let mask = m.to_binary_mask();
        let mut runs = Vec::new();
        let mut start = None;
        for (k, &v) in mask.as_slice().iter().enumerate() {
            match (v, start) {
                (true, None) => start = Some(k),
                (false, Some(s)) => {
                    runs.extend([s, k - s]);
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            runs.extend([s, mask.as_slice().len() - s]);
        }
        Ok(serde_json::json!({
            "width": w, "height": h, "runs": runs, "area": m.area,
            "iou": m.predicted_iou, "ms": ms,
        }))
    }

    /// Segments the accepted objects of one image and writes its files and table rows.
    ///
    /// # Errors
    /// Bad objects (400), a file that cannot be written (500).
    pub fn save(&self, image: usize, objects: &[ObjectIn]) -> ApiResult<Saved> {
        let e = self.entry(image)?.clone();
        let emb = self.embedding(image)?;
        let rgb = self.prepared(image)?;
        let (w, h) = emb.image_size();
        // The order a replay of the saved files gives (objects are numbered by their first row
        // in points.csv, then boxes.csv): objects with points, then those with only a box, each
        // in the order accepted. So the saved label image is the one a replay makes.
        let mut ordered: Vec<(usize, &ObjectIn)> = objects.iter().enumerate().collect();
        ordered.sort_by_key(|(_, o)| o.points.is_empty());
        let mut names = Vec::new();
        let mut prompts = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut kept = Vec::new();
        for (k, o) in ordered {
            let name = if o.name.trim().is_empty() {
                (k + 1).to_string()
            } else {
                o.name.trim().to_string()
            };
            if !seen.insert(name.clone()) {
                return Err(ApiError::bad(format!("two objects are named {name:?}")));
            }
            prompts.push(o.prompt(w as u32, h as u32)?);
            names.push(name);
            kept.push(o.clone());
        }
        let objects = kept.as_slice();
        let mut timings = mica_sam::AmgTimings::default();
        let (masks, mask_of) =
            mica_sam::prompted::segment_objects_embedded(&self.sam, &emb, &prompts, &mut timings)
                .map_err(|err| ApiError::bad(err.to_string()))?;
        let out = mica_sam::AmgOutput {
            width: w as u32,
            height: h as u32,
            masks,
            timings,
        };
        let seg = mica_sam::prompted::object_segmentation(&out, &mask_of, &names);
        let original = mica_core::io::read_image(&e.path)
            .map_err(|err| ApiError::internal(err.to_string()))?;
        let _guard = self.save_lock.lock().unwrap();
        let files = self
            .write(
                &e,
                &original,
                &rgb,
                &seg.labels,
                &seg.named_objects,
                &names,
                objects,
            )
            .map_err(ApiError::internal)?;
        self.earlier.lock().unwrap().insert(
            image,
            objects
                .iter()
                .zip(&names)
                .map(|(o, n)| ObjectIn {
                    name: n.clone(),
                    ..o.clone()
                })
                .collect(),
        );
        tracing::info!(image = %e.path.display(), objects = seg.count, "saved");
        Ok(Saved {
            count: seg.count,
            labels: seg
                .named_objects
                .iter()
                .map(|n| SavedLabel {
                    name: n.name.clone(),
                    label: n.label.as_ref().ok().copied(),
                    note: n.label.as_ref().err().cloned(),
                })
                .collect(),
            files,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        e: &Entry,
        original: &Image,
        rgb: &Image,
        labels: &LabelImage,
        named: &[mica_core::NamedObject],
        names: &[String],
        objects: &[ObjectIn],
    ) -> Result<Vec<String>, String> {
        let image = e.path.display().to_string();
        let label_file = self.out.join(format!("{}_labels.tif", e.stem));
        mica_core::io::write_label_tiff(&label_file, labels).map_err(|x| x.to_string())?;
        let overlay = mica_core::render::outline_overlay(rgb, labels, OUTLINE_RGB)
            .map_err(|x| x.to_string())?;
        let overlay_file = self.out.join(format!("{}_overlay.png", e.stem));
        mica_core::io::write_png(&overlay_file, &overlay).map_err(|x| x.to_string())?;
        let props = mica_core::object_properties(labels, Some(original))
            .map_err(|x| format!("{}: {x}", e.path.display()))?;
        let t = mica_core::tables::write_object_rows;
        replace_rows(
            &self.out.join("objects.csv"),
            &mica_core::tables::OBJECTS_HEADER,
            &image,
            |w| t(w, &image, &props, None, false),
        )?;
        replace_rows(
            &self.out.join("counts.csv"),
            &mica_core::tables::COUNTS_HEADER,
            &image,
            |w| mica_core::tables::write_count_row(w, &image, labels.num_objects()),
        )?;
        replace_rows(
            &self.out.join("prompt_labels.csv"),
            &mica_core::tables::PROMPT_LABELS_HEADER,
            &image,
            |w| mica_core::tables::write_prompt_label_rows(w, &image, named),
        )?;
        let safe = |s: &str| mica_core::text::csv_safe(s).into_owned();
        replace_rows(
            &self.out.join("points.csv"),
            &["image", "x", "y", "label", "object"],
            &image,
            |w| {
                for (o, n) in objects.iter().zip(names) {
                    for p in &o.points {
                        w.write_record([
                            image.clone(),
                            p[0].to_string(),
                            p[1].to_string(),
                            (p[2] as u8).to_string(),
                            safe(n),
                        ])?;
                    }
                }
                Ok(())
            },
        )?;
        replace_rows(
            &self.out.join("boxes.csv"),
            &["image", "x0", "y0", "x1", "y1", "object"],
            &image,
            |w| {
                for (o, n) in objects.iter().zip(names) {
                    if let Some(b) = o.bbox {
                        w.write_record([
                            image.clone(),
                            b[0].to_string(),
                            b[1].to_string(),
                            b[2].to_string(),
                            b[3].to_string(),
                            safe(n),
                        ])?;
                    }
                }
                Ok(())
            },
        )?;
        Ok([
            label_file,
            overlay_file,
            self.out.join("objects.csv"),
            self.out.join("counts.csv"),
            self.out.join("prompt_labels.csv"),
            self.out.join("points.csv"),
            self.out.join("boxes.csv"),
        ]
        .iter()
        .map(|p| p.display().to_string())
        .collect())
    }

    /// Answers one request.
    fn handle(&self, method: &str, url: &str, body: &[u8]) -> ApiResult<(String, Vec<u8>)> {
        let json =
            |v: serde_json::Value| Ok(("application/json".to_string(), v.to_string().into_bytes()));
        let path = url.split('?').next().unwrap_or(url);
        match (method, path) {
            ("GET", "/") => Ok(("text/html; charset=utf-8".into(), PAGE.as_bytes().to_vec())),
            ("GET", "/favicon.ico") => Ok(("image/svg+xml".into(), ICON.as_bytes().to_vec())),
            ("GET", "/api/images") => json(self.images_json()),
            ("GET", p) if p.starts_with("/api/image/") => {
                let i = index(p.trim_start_matches("/api/image/").trim_end_matches(".png"))?;
                let rgb = self.prepared(i)?;
                let png = mica_core::io::encode_png(&rgb)
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                Ok(("image/png".into(), png))
            }
            ("POST", p) if p.starts_with("/api/embed/") => {
                let i = index(p.trim_start_matches("/api/embed/"))?;
                let t = Instant::now();
                let emb = self.embedding(i)?;
                let (w, h) = emb.image_size();
                json(serde_json::json!({"width": w, "height": h,
                                        "ms": t.elapsed().as_secs_f64() * 1e3}))
            }
            ("POST", "/api/predict") => {
                let req: PredictIn = parse(body)?;
                json(self.predict(req)?)
            }
            ("POST", "/api/save") => {
                let req: SaveIn = parse(body)?;
                let saved = self.save(req.image, &req.objects)?;
                json(serde_json::to_value(saved).map_err(|e| ApiError::internal(e.to_string()))?)
            }
            _ => Err(ApiError(404, format!("no such page: {method} {path}"))),
        }
    }

    /// Serves the page on `127.0.0.1:port` (0 = any free port) until the process ends; calls
    /// `ready` with the address once listening.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub fn serve(self, port: u16, ready: impl FnOnce(std::net::SocketAddr)) -> Result<(), String> {
        let server = tiny_http::Server::http(("127.0.0.1", port))
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| "not an IP address".to_string())?;
        ready(addr);
        let me = Arc::new(self);
        let allowed = [
            format!("127.0.0.1:{}", addr.port()),
            format!("localhost:{}", addr.port()),
        ];
        for mut req in server.incoming_requests() {
            let me = me.clone();
            let allowed = allowed.clone();
            std::thread::spawn(move || {
                let host = req
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Host"))
                    .map(|h| h.value.as_str().to_string())
                    .unwrap_or_default();
                let method = req.method().as_str().to_string();
                let url = req.url().to_string();
                let result = if !allowed.contains(&host) {
                    Err(ApiError(
                        403,
                        format!("requests must be addressed to {}", allowed[0]),
                    ))
                } else {
                    let mut body = Vec::new();
                    match req.as_reader().take(MAX_BODY + 1).read_to_end(&mut body) {
                        Err(e) => Err(ApiError::bad(e.to_string())),
                        Ok(_) if body.len() as u64 > MAX_BODY => {
                            Err(ApiError(413, "request body over 1 MiB".into()))
                        }
                        Ok(_) => me.handle(&method, &url, &body),
                    }
                };
                let response = match result {
                    Ok((ctype, bytes)) => tiny_http::Response::from_data(bytes)
                        .with_header(header("Content-Type", &ctype)),
                    Err(ApiError(code, msg)) => {
                        tracing::warn!(%method, %url, code, "{}", mica_core::text::terminal_safe(&msg));
                        tiny_http::Response::from_data(
                            serde_json::json!({"error": msg}).to_string().into_bytes(),
                        )
                        .with_status_code(code)
                        .with_header(header("Content-Type", "application/json"))
                    }
                };
                let response = response
                    .with_header(header("Cache-Control", "no-store"))
                    .with_header(header(
                        "Content-Security-Policy",
                        "default-src 'self'; img-src 'self' data: blob:; \
                         style-src 'unsafe-inline'; script-src 'unsafe-inline'",
                    ))
                    .with_header(header("X-Content-Type-Options", "nosniff"));
                let _ = req.respond(response);
            });
        }
        Ok(())
    }
}

fn header(k: &str, v: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("valid header")
}

fn index(s: &str) -> ApiResult<usize> {
    s.parse()
        .map_err(|_| ApiError::bad(format!("{s:?} is not an image index")))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("bad request: {e}")))
}

/// Rewrites the CSV at `path` with its rows for `image` replaced by those `write` writes
/// (other images' rows kept, in order); temporary file, then rename.
fn replace_rows(
    path: &Path,
    header: &[&str],
    image: &str,
    write: impl FnOnce(&mut csv::Writer<std::fs::File>) -> csv::Result<()>,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut kept = Vec::new();
    if path.is_file() {
        let mut r = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(path)
            .map_err(|e| err(&e))?;
        let h = r.headers().map_err(|e| err(&e))?.clone();
        if h.iter().collect::<Vec<_>>() != header {
            return Err(format!(
                "{} has columns {:?}, not {:?}: not a file mica annotate wrote; choose another \
                 --out folder",
                path.display(),
                h.iter().collect::<Vec<_>>(),
                header
            ));
        }
        for rec in r.records() {
            let rec = rec.map_err(|e| err(&e))?;
            if rec.get(0) != Some(image) {
                kept.push(rec);
            }
        }
    }
    let tmp = path.with_extension(format!("csv.tmp-{}", std::process::id()));
    let file = std::fs::File::create(&tmp).map_err(|e| err(&e))?;
    let mut w = csv::Writer::from_writer(file);
    w.write_record(header).map_err(|e| err(&e))?;
    for rec in &kept {
        w.write_record(rec).map_err(|e| err(&e))?;
    }
    write(&mut w).map_err(|e| err(&e))?;
    w.flush().map_err(|e| err(&e))?;
    drop(w);
    std::fs::rename(&tmp, path).map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_rows_keeps_other_images_and_refuses_foreign_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("counts.csv");
        let hdr = ["image", "count"];
        for (img, n) in [("a", 1), ("b", 2), ("a", 3)] {
            replace_rows(&p, &hdr, img, |w| w.write_record([img, &n.to_string()])).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "image,count\nb,2\na,3\n"
        );
        std::fs::write(&p, "x,y\n1,2\n").unwrap();
        let e = replace_rows(&p, &hdr, "a", |_| Ok(())).unwrap_err();
        assert!(e.contains("not a file mica annotate wrote"), "{e}");
    }

    #[test]
    fn objects_from_the_page_are_validated() {
        let o = |points: Vec<PointIn>, bbox| ObjectIn {
            name: String::new(),
            points,
            bbox,
        };
        assert!(o(vec![[5.0, 5.0, 1.0]], None).prompt(10, 10).is_ok());
        assert!(o(vec![], Some([1.0, 1.0, 4.0, 4.0])).prompt(10, 10).is_ok());
        for (bad, why) in [
            (o(vec![[50.0, 5.0, 1.0]], None), "outside"),
            (o(vec![[5.0, 5.0, 2.0]], None), "label"),
            (o(vec![[5.0, 5.0, 0.0]], None), "foreground point or a box"),
            (o(vec![], Some([4.0, 1.0, 1.0, 4.0])), "not a box"),
            (o(vec![[f32::NAN, 5.0, 1.0]], None), "outside"),
        ] {
            let e = bad.prompt(10, 10).unwrap_err();
            assert_eq!(e.0, 400);
            assert!(e.1.contains(why), "{}", e.1);
        }
    }
}
