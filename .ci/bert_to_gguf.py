#!/usr/bin/env python3
"""
bert_to_gguf.py — converts a sentence-transformers BERT model directory
(model.safetensors, config.json, tokenizer.json / vocab.txt, modules.json,
1_Pooling/config.json, sentence_bert_config.json) into one GGUF file.

    python3 .ci/bert_to_gguf.py MODEL_DIR OUT.gguf [--name NAME]

Standard library only (no torch, no numpy): the safetensors header is JSON
and the tensors are copied byte for byte (F32 stays F32, F16 stays F16), so
the output is a deterministic function of the input files.  The GGUF image
is written by test/gguf_writer.py's GGUFWriter (the writer the tests use),
to OUT.partial and renamed when complete.

Names and metadata follow llama.cpp's `bert` conventions, so llama.cpp can
read the file too:
  token_embd, position_embd, token_types, token_embd_norm (weight, bias),
  blk.N.attn_q/k/v/output, attn_output_norm, ffn_up, ffn_down,
  layer_output_norm (weight and bias each); the pooler is dropped.
  bert.context_length / embedding_length / feed_forward_length /
  block_count / attention.head_count / attention.layer_norm_epsilon /
  attention.causal (false) / pooling_type (1 = mean, 2 = CLS).
  The vocabulary in llama.cpp's "phantom space" form: a word-initial piece
  "foo" is stored as "\u2581foo", a continuation "##bar" as "bar", control
  tokens ([CLS], [SEP], ...) as they are; tokenizer.ggml.model = "bert".
The WordPiece settings llama.cpp keeps implicit are written too
(tokenizer.wordpiece.*: lowercase, strip_accents, handle_chinese_chars,
clean_text, max_input_chars_per_word, max_seq_length from
sentence_bert_config.json) and sentence_transformers.normalize when the
module list ends with Normalize.
"""

import argparse
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test"))
from gguf_writer import GGUFWriter  # noqa: E402

# safetensors dtype -> ggml type name
DTYPES = {"F32": "F32", "F16": "F16", "BF16": "BF16"}

# per-layer HF suffix -> llama.cpp name
LAYER_MAP = [
    ("attention.self.query", "attn_q"),
    ("attention.self.key", "attn_k"),
    ("attention.self.value", "attn_v"),
    ("attention.output.dense", "attn_output"),
    ("attention.output.LayerNorm", "attn_output_norm"),
    ("intermediate.dense", "ffn_up"),
    ("output.dense", "ffn_down"),
    ("output.LayerNorm", "layer_output_norm"),
]

# token types (llama.cpp's)
TT_NORMAL, TT_UNKNOWN, TT_CONTROL = 1, 2, 3


class ConvertError(Exception):
    """A model directory this converter cannot handle."""


def read_json(path):
    """Parsed JSON of a file."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_safetensors(path):
    """{name: (dtype, shape, bytes)} of a safetensors file, checked against its size."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ConvertError("%s is too short to be safetensors" % path)
    n = struct.unpack("<Q", raw[:8])[0]
    if n > len(raw) - 8:
        raise ConvertError("%s: header of %d bytes runs past the file" % (path, n))
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        if not 0 <= b <= e <= len(raw) - base:
            raise ConvertError("%s: tensor %s lies outside the file" % (path, name))
        out[name] = (info["dtype"], list(info["shape"]), raw[base + b:base + e])
    return out


def phantom(tok, ttype):
    """llama.cpp's phantom-space form of a WordPiece vocabulary entry."""
    if ttype != TT_NORMAL:
        return tok
    if tok.startswith("##"):
        return tok[2:]
    return "\u2581" + tok


def vocab_of(d, tok_json):
    """Tokens (in id order) and token types from tokenizer.json, else vocab.txt."""
    if tok_json is not None:
        model = tok_json.get("model", {})
        if model.get("type") != "WordPiece":
            raise ConvertError("tokenizer.json model is %r, expected WordPiece" % model.get("type"))
        vocab = model["vocab"]
        toks = [None] * len(vocab)
        for t, i in vocab.items():
            if not 0 <= i < len(toks) or toks[i] is not None:
                raise ConvertError("tokenizer.json vocabulary ids are not 0..%d" % (len(toks) - 1))
            toks[i] = t
        special = {a["content"] for a in tok_json.get("added_tokens", []) if a.get("special")}
    else:
        with open(os.path.join(d, "vocab.txt"), encoding="utf-8") as f:
            toks = [line.rstrip("\n") for line in f]
        while toks and toks[-1] == "":
            toks.pop()
        special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    types = []
    for t in toks:
        if t == "[UNK]":
            types.append(TT_UNKNOWN)
        elif t in special:
            types.append(TT_CONTROL)
        else:
            types.append(TT_NORMAL)
    return toks, types


def convert(d, out, name):
    """Write OUT from model directory d; returns the number of tensors."""
    cfg = read_json(os.path.join(d, "config.json"))
    if cfg.get("model_type") != "bert":
        raise ConvertError("config.json model_type is %r, expected bert" % cfg.get("model_type"))
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise ConvertError("hidden_act %r is not supported (only exact gelu)" % cfg.get("hidden_act"))
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ConvertError("position_embedding_type must be absolute")
    st_cfg = {}
    if os.path.exists(os.path.join(d, "sentence_bert_config.json")):
        st_cfg = read_json(os.path.join(d, "sentence_bert_config.json"))
    pooling = 1
    normalize = False
    if os.path.exists(os.path.join(d, "modules.json")):
        modules = read_json(os.path.join(d, "modules.json"))
        for m in modules:
            if m.get("type", "").endswith(".Pooling"):
                p = read_json(os.path.join(d, m.get("path", ""), "config.json"))
                if p.get("pooling_mode_mean_tokens"):
                    pooling = 1
                elif p.get("pooling_mode_cls_token"):
                    pooling = 2
                else:
                    raise ConvertError("only mean and CLS pooling are supported")
            if m.get("type", "").endswith(".Normalize"):
                normalize = True
    tok_json = None
    if os.path.exists(os.path.join(d, "tokenizer.json")):
        tok_json = read_json(os.path.join(d, "tokenizer.json"))
    norm = (tok_json or {}).get("normalizer") or {}
    wp = (tok_json or {}).get("model") or {}
    lowercase = bool(norm.get("lowercase", True))
    strip = norm.get("strip_accents")
    strip = lowercase if strip is None else bool(strip)
    toks, types = vocab_of(d, tok_json)
    if len(toks) != cfg["vocab_size"]:
        raise ConvertError("vocabulary has %d tokens, config.json says %d" % (len(toks), cfg["vocab_size"]))

    def tid(t):
        return toks.index(t) if t in toks else None

    n_embd, n_layer = cfg["hidden_size"], cfg["num_hidden_layers"]
    w = GGUFWriter(version=3, alignment=32)
    w.add_kv("general.architecture", "str", "bert")
    w.add_kv("general.name", "str", name)
    w.add_kv("general.file_type", "u32", 0)
    w.add_kv("bert.context_length", "u32", cfg["max_position_embeddings"])
    w.add_kv("bert.embedding_length", "u32", n_embd)
    w.add_kv("bert.feed_forward_length", "u32", cfg["intermediate_size"])
    w.add_kv("bert.block_count", "u32", n_layer)
    w.add_kv("bert.attention.head_count", "u32", cfg["num_attention_heads"])
    w.add_kv("bert.attention.layer_norm_epsilon", "f32", cfg.get("layer_norm_eps", 1e-12))
    w.add_kv("bert.attention.causal", "bool", False)
    w.add_kv("bert.pooling_type", "u32", pooling)
    w.add_kv("sentence_transformers.normalize", "bool", normalize)
    w.add_kv("tokenizer.ggml.model", "str", "bert")
    w.add_kv("tokenizer.ggml.tokens", "arr:str", [phantom(t, y) for t, y in zip(toks, types)])
    w.add_kv("tokenizer.ggml.token_type", "arr:i32", types)
    w.add_kv("tokenizer.ggml.token_type_count", "u32", cfg.get("type_vocab_size", 2))
    for key, tok in (("unknown_token_id", "[UNK]"), ("seperator_token_id", "[SEP]"),
                     ("padding_token_id", "[PAD]"), ("cls_token_id", "[CLS]"),
                     ("mask_token_id", "[MASK]"), ("bos_token_id", "[CLS]"),
                     ("eos_token_id", "[SEP]")):
        if tid(tok) is not None:
            w.add_kv("tokenizer.ggml." + key, "u32", tid(tok))
    w.add_kv("tokenizer.ggml.add_bos_token", "bool", True)
    w.add_kv("tokenizer.ggml.add_eos_token", "bool", True)
    w.add_kv("tokenizer.wordpiece.lowercase", "bool", lowercase)
    w.add_kv("tokenizer.wordpiece.strip_accents", "bool", strip)
    w.add_kv("tokenizer.wordpiece.handle_chinese_chars", "bool", bool(norm.get("handle_chinese_chars", True)))
    w.add_kv("tokenizer.wordpiece.clean_text", "bool", bool(norm.get("clean_text", True)))
    w.add_kv("tokenizer.wordpiece.max_input_chars_per_word", "u32", int(wp.get("max_input_chars_per_word", 100)))
    w.add_kv("tokenizer.wordpiece.max_seq_length", "u32",
             int(st_cfg.get("max_seq_length", cfg["max_position_embeddings"])))

    st = read_safetensors(os.path.join(d, "model.safetensors"))
    st = {(k[5:] if k.startswith("bert.") else k): v for k, v in st.items()}
    want = [("embeddings.word_embeddings.weight", "token_embd.weight", [cfg["vocab_size"], n_embd]),
            ("embeddings.position_embeddings.weight", "position_embd.weight",
             [cfg["max_position_embeddings"], n_embd]),
            ("embeddings.token_type_embeddings.weight", "token_types.weight",
             [cfg.get("type_vocab_size", 2), n_embd]),
            ("embeddings.LayerNorm.weight", "token_embd_norm.weight", [n_embd]),
            ("embeddings.LayerNorm.bias", "token_embd_norm.bias", [n_embd])]
    sizes = {"attn_q": [n_embd, n_embd], "attn_k": [n_embd, n_embd], "attn_v": [n_embd, n_embd],
             "attn_output": [n_embd, n_embd], "attn_output_norm": [n_embd],
             "ffn_up": [cfg["intermediate_size"], n_embd], "ffn_down": [n_embd, cfg["intermediate_size"]],
             "layer_output_norm": [n_embd]}
    for il in range(n_layer):
        for hf, gg in LAYER_MAP:
            for part in ("weight", "bias"):
                shape = sizes[gg] if part == "weight" else sizes[gg][:1]
                want.append(("encoder.layer.%d.%s.%s" % (il, hf, part), "blk.%d.%s.%s" % (il, gg, part), shape))
    for src, dst, shape in want:
        if src not in st:
            raise ConvertError("model.safetensors lacks tensor %s" % src)
        dtype, sshape, data = st[src]
        if dtype not in DTYPES:
            raise ConvertError("tensor %s has dtype %s (supported: F32, F16, BF16)" % (src, dtype))
        if sshape != shape:
            raise ConvertError("tensor %s has shape %s, expected %s" % (src, sshape, shape))
        ttype = DTYPES[dtype] if len(shape) == 2 else "F32"
        if ttype != DTYPES[dtype]:
            raise ConvertError("vector %s must be F32, is %s" % (src, dtype))
        w.add_tensor(dst, ttype, list(reversed(shape)), data=data)
    tmp = out + ".partial"
    w.write(tmp)
    os.replace(tmp, out)
    return len(want)


def main(argv=None):
    """Command line entry point."""
    ap = argparse.ArgumentParser(description="convert a sentence-transformers BERT model to GGUF")
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--name", default="bert")
    args = ap.parse_args(argv)
    try:
        n = convert(args.model_dir, args.out, args.name)
    except (ConvertError, OSError, KeyError, ValueError) as e:
        print("bert_to_gguf: %s" % e, file=sys.stderr)
        return 1
    print("bert_to_gguf: wrote %s (%d tensors)" % (args.out, n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
