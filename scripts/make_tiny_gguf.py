#!/usr/bin/env python3
"""Writes a tiny llama-architecture GGUF model with random weights, for tests that run a real
llama.cpp server (tests/llama_server.rs). Its answers are meaningless, which is the point: the
server's request parsing, grammar-constrained JSON, token limits and error bodies are real.

    python scripts/make_tiny_gguf.py OUT.gguf

Needs the `gguf` package (llama.cpp's gguf-py, PyPI `gguf`) and numpy. Vocabulary: <unk>, <s>,
</s>, the 256 byte-fallback tokens and the printable ASCII characters (SentencePiece style, so
any text tokenises); one transformer block of width 64; weights from a fixed seed (the same file
every time)."""
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


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
