//! Cost: a user-editable price table (TOML), token estimates for images, and a [`Budget`] that
//! refuses a request which could push spending over `--max-cost`.

use crate::error::VlmError;
use crate::model::{ModelSpec, Provider};
use crate::request::{Detail, Usage, VlmRequest};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Mutex;

/// The price table shipped with mica (see its header for where the numbers come from).
pub const DEFAULT_PRICES_TOML: &str = include_str!("../prices.toml");

/// One row of the price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub provider: Provider,
    /// Model name or prefix; `*` for every model of the provider.
    pub model: String,
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    /// The provider's Batch API rates (OpenAI's Batch API, Gemini's batch mode); a row without
    /// them has no batch price, and its batch cost is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_input_usd_per_mtok: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_output_usd_per_mtok: Option<f64>,
}

impl ModelPrice {
    /// Cost of `input` and `output` tokens in USD.
    pub fn cost_usd(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_usd_per_mtok
            + output_tokens as f64 * self.output_usd_per_mtok)
            / 1e6
    }

    /// Cost of `input` and `output` tokens sent through the provider's Batch API, USD; `None`
    /// when the row has no batch rates.
    pub fn batch_cost_usd(&self, input_tokens: u64, output_tokens: u64) -> Option<f64> {
        Some(
            (input_tokens as f64 * self.batch_input_usd_per_mtok?
                + output_tokens as f64 * self.batch_output_usd_per_mtok?)
                / 1e6,
        )
    }
}

/// A model its provider has shut down: mica refuses to send to it (a shut-down model answers
/// 404, or, as Google announced for Gemini 2.5, is silently routed to another model and billed
/// at that model's rates: either way its answers would not be the named model's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredModel {
    pub provider: Provider,
    /// The exact model name (variants such as `-001` are listed one by one).
    pub model: String,
    /// When the provider shut it down (`YYYY-MM-DD`).
    pub shut_down: String,
    /// The replacement the provider recommends.
    pub replacement: String,
    /// Where the date comes from.
    pub source: String,
}

/// The price table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriceTable {
    /// When the prices were checked (free text, e.g. `2026-06`).
    pub checked: String,
    pub price: Vec<ModelPrice>,
    /// Models shut down by their provider.
    pub retired: Vec<RetiredModel>,
}

impl PriceTable {
    /// The shipped table.
    ///
    /// # Errors
    /// Never for the shipped file (tested); [`VlmError::Prices`] if it were malformed.
    pub fn builtin() -> Result<Self, VlmError> {
        Self::parse(DEFAULT_PRICES_TOML, Path::new("<built-in prices.toml>"))
    }

    /// Reads a table from `path`.
    ///
    /// # Errors
    /// [`VlmError::Prices`] naming the file when it cannot be read or parsed, or a price is negative.
    pub fn load(path: &Path) -> Result<Self, VlmError> {
        let text = std::fs::read_to_string(path).map_err(|e| VlmError::Prices {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self, VlmError> {
        let err = |reason: String| VlmError::Prices {
            path: path.to_path_buf(),
            reason,
        };
        let t: PriceTable = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        for p in &t.price {
            if !(p.input_usd_per_mtok >= 0.0 && p.output_usd_per_mtok >= 0.0) {
                return Err(err(format!(
                    "{}:{} has a negative or missing price",
                    p.provider, p.model
                )));
            }
            let batch = [p.batch_input_usd_per_mtok, p.batch_output_usd_per_mtok];
            if batch
                .iter()
                .any(|b| b.is_some_and(|v| v.is_nan() || v < 0.0))
                || batch[0].is_some() != batch[1].is_some()
            {
                return Err(err(format!(
                    "{}:{}: batch prices need both batch_input_usd_per_mtok and batch_output_usd_per_mtok, neither negative",
                    p.provider, p.model
                )));
            }
        }
        Ok(t)
    }

    /// The entry of `spec` among the retired models (exact name), if it was shut down.
    pub fn retired(&self, spec: &ModelSpec) -> Option<&RetiredModel> {
        self.retired
            .iter()
            .find(|r| r.provider == spec.provider && r.model == spec.model)
    }

    /// [`VlmError::RetiredModel`] when `spec` was shut down by its provider.
    ///
    /// # Errors
    /// That error, saying when, the replacement, and how to override the list.
    pub fn check_not_retired(&self, spec: &ModelSpec) -> Result<(), VlmError> {
        match self.retired(spec) {
            Some(r) => Err(VlmError::RetiredModel {
                model: spec.to_string(),
                shut_down: r.shut_down.clone(),
                replacement: format!("{}:{}", r.provider, r.replacement),
                according_to: r.source.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The price of `spec`: exact model name, else the longest row name it begins with *followed
    /// by a snapshot suffix* (`gpt-4o` prices `gpt-4o-2024-08-06`, see [`is_snapshot_suffix`]),
    /// else the provider's `*`. Another model whose name merely begins with a row's
    /// (`gpt-4.1-nano`, `gpt-5.4`, `gemini-3.5-flash-lite`) is not priced by it: it has no price
    /// until it has a row.
    pub fn lookup(&self, spec: &ModelSpec) -> Option<&ModelPrice> {
        // How well row `p` matches: exact name, a snapshot of its model (longer rows first),
        // the provider's `*`; `None` when it does not.
        let score = |p: &ModelPrice| {
            if p.model == spec.model {
                Some(usize::MAX)
            } else if p.model == "*" {
                Some(0)
            } else {
                spec.model
                    .strip_prefix(p.model.as_str())
                    .is_some_and(is_snapshot_suffix)
                    .then_some(p.model.len())
            }
        };
        let mut best: Option<(usize, &ModelPrice)> = None;
        for p in self.price.iter().filter(|p| p.provider == spec.provider) {
            if let Some(s) = score(p) {
                if best.is_none_or(|(b, _)| s > b) {
                    best = Some((s, p));
                }
            }
        }
        best.map(|(_, p)| p)
    }
}

/// Whether `rest`, what follows a price row's name in a model name, names a snapshot of that
/// same model: `-latest`, or a dash followed by digits and dashes only (OpenAI's dated
/// snapshots `-2024-08-06` and `-0613`, Gemini's versions `-001`). `-mini`, `-nano`, `.4`,
/// `-lite`, `-preview` name other models, priced differently.
pub fn is_snapshot_suffix(rest: &str) -> bool {
    rest == "-latest"
        || rest
            .strip_prefix('-')
            .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_digit() || c == '-'))
}

/// Estimated input tokens of one image of `width` × `height` as the provider counts them.
///
/// - OpenAI (GPT-4o family and compatible): `detail: low` = 85; high/auto: scale to fit
///   2048 × 2048, then the shorter side to 768, tokens = 85 + 170 × (number of 512-px tiles).
///   `gpt-4o-mini` counts 2833 + 5667 per tile (its lower token price compensates).
/// - Gemini 3 and later (`gemini-3…`): 1,120 per image, whatever its size (the default media
///   resolution of images for Gemini 3 is `high`, at most 1,120 tokens per image; Gemini API
///   "Media resolution" docs).
/// - Gemini before 3: 258 when both sides ≤ 384, else 258 per 768 × 768 tile.
/// - Ollama: not billed; counted with the OpenAI rule for the budget only.
pub fn image_tokens(spec: &ModelSpec, width: u32, height: u32, detail: Detail) -> u64 {
    let (w, h) = (width.max(1) as f64, height.max(1) as f64);
    match spec.provider {
        Provider::Gemini if gemini_major(&spec.model).is_some_and(|m| m >= 3) => {
            GEMINI_3_IMAGE_TOKENS
        }
        Provider::Gemini => {
            if w <= 384.0 && h <= 384.0 {
                258
            } else {
                258 * ((w / 768.0).ceil() * (h / 768.0).ceil()) as u64
            }
        }
        _ => {
            let (base, per_tile) = if spec.model.starts_with("gpt-4o-mini") {
                (2833, 5667)
            } else {
                (85, 170)
            };
            if detail == Detail::Low {
                return base;
            }
            let s1 = (2048.0 / w.max(h)).min(1.0);
            let (w1, h1) = (w * s1, h * s1);
            let s2 = (768.0 / w1.min(h1)).min(1.0);
            let (w2, h2) = (w1 * s2, h1 * s2);
            base + per_tile * ((w2 / 512.0).ceil() * (h2 / 512.0).ceil()) as u64
        }
    }
}

/// Tokens of one image for Gemini 3 and later at the default (high) media resolution.
pub const GEMINI_3_IMAGE_TOKENS: u64 = 1120;

/// The major version of a Gemini model name (`gemini-3.5-flash` → 3, `gemini-2.5-pro` → 2).
fn gemini_major(model: &str) -> Option<u32> {
    let rest = model.strip_prefix("gemini-")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Output tokens assumed for a budget check when a request sets no limit.
pub const ASSUMED_MAX_OUTPUT_TOKENS: u64 = 1024;

/// An upper estimate of the tokens of `req`: text at one token per 3 characters, images by
/// [`image_tokens`], output = its `max_tokens` or [`ASSUMED_MAX_OUTPUT_TOKENS`].
pub fn estimate_tokens(spec: &ModelSpec, req: &VlmRequest) -> Usage {
    let mut input = req
        .system
        .as_ref()
        .map_or(0, |s| s.chars().count() as u64 / 3 + 4);
    for t in &req.turns {
        input += t.text.chars().count() as u64 / 3 + 4;
        for i in &t.images {
            input += image_tokens(spec, i.width, i.height, req.sampling.detail);
        }
    }
    Usage {
        input_tokens: Some(input),
        output_tokens: Some(
            req.sampling
                .max_tokens
                .map_or(ASSUMED_MAX_OUTPUT_TOKENS, u64::from),
        ),
    }
}

/// Spending so far and the limit. Requests reserve their worst-case cost before they are sent
/// and settle to their real cost after.
#[derive(Debug)]
pub struct Budget {
    limit_usd: Option<f64>,
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    spent_usd: f64,
    reserved_usd: f64,
}

impl Budget {
    /// A budget with an optional limit.
    pub fn new(limit_usd: Option<f64>) -> Self {
        Budget {
            limit_usd,
            state: Mutex::new(BudgetState::default()),
        }
    }

    pub fn limit_usd(&self) -> Option<f64> {
        self.limit_usd
    }

    /// Money spent by settled requests.
    pub fn spent_usd(&self) -> f64 {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spent_usd
    }

    /// Reserves `max_usd` for a request about to be sent.
    ///
    /// # Errors
    /// [`VlmError::Budget`] when spent + reserved + `max_usd` exceeds the limit; nothing is reserved.
    pub fn reserve(&self, max_usd: f64) -> Result<(), VlmError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(limit) = self.limit_usd {
            let committed = s.spent_usd + s.reserved_usd;
            if committed + max_usd > limit {
                return Err(VlmError::Budget {
                    limit_usd: limit,
                    spent_usd: committed,
                    next_usd: max_usd,
                });
            }
        }
        s.reserved_usd += max_usd;
        Ok(())
    }

    /// Replaces a reservation of `reserved_usd` by the actual cost (0 when the request failed).
    pub fn settle(&self, reserved_usd: f64, actual_usd: f64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.reserved_usd = (s.reserved_usd - reserved_usd).max(0.0);
        s.spent_usd += actual_usd;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> ModelSpec {
        ModelSpec::parse(s).unwrap()
    }

    #[test]
    fn builtin_table_parses_and_looks_up_by_longest_prefix() {
        let t = PriceTable::builtin().unwrap();
        assert!(!t.checked.is_empty());
        assert_eq!(t.lookup(&spec("openai:gpt-4o")).unwrap().model, "gpt-4o");
        assert_eq!(
            t.lookup(&spec("openai:gpt-4o-mini-2024-07-18"))
                .unwrap()
                .model,
            "gpt-4o-mini"
        );
        assert_eq!(
            t.lookup(&spec("openai:gpt-4o-2024-08-06")).unwrap().model,
            "gpt-4o"
        );
        assert_eq!(t.lookup(&spec("ollama:llava:13b")).unwrap().model, "*");
        assert!(t.lookup(&spec("openai-compatible:llava")).is_none());
        assert!(t.lookup(&spec("openai:o9-ultra")).is_none());
    }

    /// Regression: a row priced every model whose name began with its own, so `gpt-4.1-nano`
    /// ($0.10 / $0.40) was charged at `gpt-4.1`'s $2 / $8, `gpt-5.4` at `gpt-5`'s rates and
    /// `gemini-3.5-flash-lite` at Flash's: wrong costs that looked right, and a `--max-cost`
    /// reserving the wrong amounts.
    #[test]
    fn a_price_row_does_not_price_another_model_whose_name_begins_with_its_own() {
        let t = PriceTable::builtin().unwrap();
        let model = |m: &str| t.lookup(&spec(m)).map(|p| p.model.as_str());
        assert_eq!(model("openai:gpt-4.1-nano"), Some("gpt-4.1-nano"));
        assert_eq!(
            model("openai:gpt-4.1-mini-2025-04-14"),
            Some("gpt-4.1-mini")
        );
        assert_eq!(model("openai:gpt-5-nano"), None);
        assert_eq!(model("openai:gpt-5.4"), Some("gpt-5.4"));
        assert_eq!(model("openai:gpt-5.4-mini"), Some("gpt-5.4-mini"));
        assert_eq!(model("openai:gpt-5.4-2026-03-05"), Some("gpt-5.4"));
        assert_eq!(model("openai:gpt-5.3"), None);
        assert_eq!(model("gemini:gemini-3.5-flash-lite"), None);
        assert_eq!(
            model("gemini:gemini-3.5-flash-001"),
            Some("gemini-3.5-flash")
        );
        assert_eq!(model("openai:gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(model("openai:gpt-4o-latest"), Some("gpt-4o"));
        assert!(is_snapshot_suffix("-0613"));
        assert!(!is_snapshot_suffix("-"));
        assert!(!is_snapshot_suffix("-mini"));
        assert!(!is_snapshot_suffix(".4"));
    }

    #[test]
    fn rejects_unknown_fields_and_negative_prices() {
        let bad = "[[price]]\nprovider='openai'\nmodel='x'\ninput_usd_per_mtok=-1\noutput_usd_per_mtok=1\n";
        assert!(PriceTable::parse(bad, Path::new("p.toml")).is_err());
        let typo = "[[price]]\nprovider='openai'\nmodel='x'\ninput_usd_per_mtok=1\noutput_usd_per_mtok=1\ncolour=1\n";
        assert!(PriceTable::parse(typo, Path::new("p.toml")).is_err());
    }

    #[test]
    fn batch_prices_are_half_for_openai_and_gemini_and_must_come_in_pairs() {
        let t = PriceTable::builtin().unwrap();
        for p in t
            .price
            .iter()
            .filter(|p| matches!(p.provider, Provider::Openai | Provider::Gemini))
        {
            assert_eq!(p.batch_input_usd_per_mtok, Some(p.input_usd_per_mtok / 2.0));
            assert_eq!(
                p.batch_output_usd_per_mtok,
                Some(p.output_usd_per_mtok / 2.0)
            );
        }
        let gpt4o = t
            .lookup(&ModelSpec::parse("openai:gpt-4o").unwrap())
            .unwrap();
        assert_eq!(gpt4o.batch_cost_usd(1_000_000, 1_000_000), Some(1.25 + 5.0));
        let gemini = t
            .lookup(&ModelSpec::parse("gemini:gemini-3.5-flash").unwrap())
            .unwrap();
        assert_eq!(
            gemini.batch_cost_usd(1_000_000, 1_000_000),
            Some(0.75 + 4.5)
        );
        let ollama = t
            .lookup(&ModelSpec::parse("ollama:llava:13b").unwrap())
            .unwrap();
        assert_eq!(ollama.batch_cost_usd(1, 1), None);
        let row = "[[price]]\nprovider='openai'\nmodel='x'\ninput_usd_per_mtok=1\noutput_usd_per_mtok=1\n";
        let one = format!("{row}batch_input_usd_per_mtok=0.5\n");
        assert!(PriceTable::parse(&one, Path::new("p.toml")).is_err());
        let negative = format!("{one}batch_output_usd_per_mtok=-1\n");
        assert!(PriceTable::parse(&negative, Path::new("p.toml")).is_err());
        let both = format!("{one}batch_output_usd_per_mtok=0.5\n");
        assert!(PriceTable::parse(&both, Path::new("p.toml")).is_ok());
    }

    #[test]
    fn image_tokens_follow_provider_rules() {
        // 1024x768 NFFA image: OpenAI high detail -> 768 short side -> 1024x768 -> 2x2 tiles.
        assert_eq!(
            image_tokens(&spec("openai:gpt-4o"), 1024, 768, Detail::High),
            85 + 170 * 4
        );
        assert_eq!(
            image_tokens(&spec("openai:gpt-4o"), 4096, 4096, Detail::High),
            85 + 170 * 4
        );
        assert_eq!(
            image_tokens(&spec("openai:gpt-4o"), 1024, 768, Detail::Low),
            85
        );
        // Gemini before 3: 258 per 768x768 tile.
        assert_eq!(
            image_tokens(
                &spec("gemini:gemini-2.5-flash-lite"),
                300,
                300,
                Detail::High
            ),
            258
        );
        assert_eq!(
            image_tokens(
                &spec("gemini:gemini-2.5-flash-lite"),
                1024,
                768,
                Detail::High
            ),
            516
        );
        // Gemini 3 and later: 1,120 per image at the default (high) media resolution.
        for m in ["gemini:gemini-3.5-flash", "gemini:gemini-3-flash-preview"] {
            for (w, h) in [(300, 300), (1024, 768), (4096, 4096)] {
                assert_eq!(image_tokens(&spec(m), w, h, Detail::High), 1120, "{m}");
            }
        }
    }

    /// A model its provider shut down is refused with the date and the replacement; a current
    /// model of a similar name is not (issue #15 item 2).
    #[test]
    fn retired_models_are_refused_by_name() {
        let t = PriceTable::builtin().unwrap();
        let err = t
            .check_not_retired(&spec("gemini:gemini-2.0-flash"))
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("shut down")
                && msg.contains("2026-06-01")
                && msg.contains("gemini:gemini-3.5-flash"),
            "{msg}"
        );
        assert!(!err.is_per_image());
        assert!(t
            .check_not_retired(&spec("gemini:gemini-2.5-flash"))
            .is_err());
        // Exact names only: 2.5 Flash-Lite is not retired.
        assert!(t
            .check_not_retired(&spec("gemini:gemini-2.5-flash-lite"))
            .is_ok());
        assert!(t
            .check_not_retired(&spec("gemini:gemini-3.5-flash"))
            .is_ok());
        // Every retired entry names a date and a source, and has no price row left.
        for r in &t.retired {
            assert!(r.shut_down.len() == 10 && !r.source.is_empty(), "{r:?}");
            let s = ModelSpec::parse(&format!("{}:{}", r.provider, r.model)).unwrap();
            assert!(
                t.lookup(&s).is_none_or(|p| p.model != r.model),
                "{r:?} still has a price"
            );
        }
    }

    #[test]
    fn budget_refuses_before_exceeding() {
        let b = Budget::new(Some(1.0));
        b.reserve(0.6).unwrap();
        assert!(b.reserve(0.6).is_err());
        b.settle(0.6, 0.1);
        b.reserve(0.6).unwrap();
        assert!((b.spent_usd() - 0.1).abs() < 1e-12);
        let unlimited = Budget::new(None);
        unlimited.reserve(1e9).unwrap();
    }
}
