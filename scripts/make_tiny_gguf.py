#!/usr/bin/env python3
"""Writes a tiny llama-architecture GGUF model with random weights, for tests that run a real
llama.cpp server (tests/llama_server.rs). Its answers are meaningless, which is the point: the
server's request parsing, grammar-constrained JSON, token limits and error bodies are real.

    python scripts/make_tiny_gguf.py OUT.gguf [--mmproj MMPROJ.gguf]

Needs the `gguf` package (llama.cpp's gguf-py, PyPI `gguf`) and numpy. Vocabulary: <unk>, <s>,
</s>, the 256 byte-fallback tokens and the printable ASCII characters (SentencePiece style, so
any text tokenises); one transformer block of width 64; weights from a fixed seed (the same file
every time).

--mmproj also writes a tiny LLaVA-1.5-style multimodal projector (GGUF architecture `clip`,
projector type `mlp`) for that model: a one-block ViT of width 32 on 28 x 28 images in 14-px
patches (4 patch embeddings plus a class embedding), then mm.0 / GELU / mm.2 into the model's
width (64). llama.cpp's mtmd loads it (`--chat_format llava-1-5 --clip_model_path`), decodes
the image it is sent (stb_image: PNG, JPEG, ...), resizes it to 28 x 28 and feeds the model 4
image tokens: the vision path is real, the weights random."""
import sys

import gguf
import numpy as np


def main(out: str) -> None:
    rng = np.random.default_rng(0)
    n_embd, n_ff, n_head, n_layer, n_ctx = 64, 128, 4, 1, 8192
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256
    chars = [chr(c) for c in range(32, 127)]
    tokens += ["\u2581" if c == " " else c for c in chars]
    types += [gguf.TokenType.NORMAL] * len(chars)
    w = gguf.GGUFWriter(out, "llama")
    w.add_name("mica-tiny-random")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_chat_template(
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>"
    )

    def rand(name: str, *shape: int) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    rand("token_embd.weight", len(tokens), n_embd)
    w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    rand("output.weight", len(tokens), n_embd)
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, np.float32))
        for n in ["attn_q", "attn_k", "attn_v", "attn_output"]:
            rand(p + n + ".weight", n_embd, n_embd)
        w.add_tensor(p + "ffn_norm.weight", np.ones(n_embd, np.float32))
        rand(p + "ffn_gate.weight", n_ff, n_embd)
        rand(p + "ffn_up.weight", n_ff, n_embd)
        rand(p + "ffn_down.weight", n_embd, n_ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def mmproj(out: str, n_embd_text: int = 64) -> None:
    rng = np.random.default_rng(1)
    hidden, n_ff, n_head, n_layer, image, patch = 32, 64, 4, 1, 28, 14
    n_pos = (image // patch) ** 2 + 1
    w = gguf.GGUFWriter(out, "clip")
    w.add_name("mica-tiny-random-projector")
    w.add_clip_has_vision_encoder(True)
    w.add_clip_projector_type("mlp")
    w.add_vision_image_size(image)
    w.add_vision_patch_size(patch)
    w.add_vision_embedding_length(hidden)
    w.add_vision_feed_forward_length(n_ff)
    w.add_vision_projection_dim(n_embd_text)
    w.add_vision_head_count(n_head)
    w.add_vision_attention_layernorm_eps(1e-5)
    w.add_vision_block_count(n_layer)
    # CLIP's normalisation, as LLaVA 1.5's projector files carry it.
    w.add_vision_image_mean([0.48145466, 0.4578275, 0.40821073])
    w.add_vision_image_std([0.26862954, 0.26130258, 0.27577711])
    w.add_vision_use_gelu(True)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    def rand(name: str, *shape: int) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    def norm(name: str, n: int) -> None:
        w.add_tensor(name + ".weight", np.ones(n, np.float32))
        w.add_tensor(name + ".bias", np.zeros(n, np.float32))

    def linear(name: str, n_out: int, n_in: int) -> None:
        rand(name + ".weight", n_out, n_in)
        w.add_tensor(name + ".bias", np.zeros(n_out, np.float32))

    rand("v.patch_embd.weight", hidden, 3, patch, patch)
    rand("v.class_embd", hidden)
    rand("v.position_embd.weight", n_pos, hidden)
    norm("v.pre_ln", hidden)
    for i in range(n_layer):
        p = f"v.blk.{i}."
        for n in ["attn_q", "attn_k", "attn_v", "attn_out"]:
            linear(p + n, hidden, hidden)
        norm(p + "ln1", hidden)
        norm(p + "ln2", hidden)
        linear(p + "ffn_up", n_ff, hidden)
        linear(p + "ffn_down", hidden, n_ff)
    linear("mm.0", n_embd_text, hidden)
    linear("mm.2", n_embd_text, n_embd_text)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    if len(sys.argv) == 2:
        main(sys.argv[1])
    elif len(sys.argv) == 4 and sys.argv[2] == "--mmproj":
        main(sys.argv[1])
        mmproj(sys.argv[3])
    else:
        sys.exit(__doc__)
