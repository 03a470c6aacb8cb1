#!/usr/bin/env python3
"""
bert_tiny.py — writes a tiny sentence-transformers BERT model directory
(random weights) and a float64 reference for it, standard library only.

    python3 test/bert_tiny.py DIR

DIR gets what .ci/bert_to_gguf.py reads: config.json, model.safetensors
(F32), tokenizer.json (BertNormalizer, WordPiece with a 60-piece
vocabulary whose special tokens sit at ids 0 and 2..5, not BERT's usual
ones), modules.json, 1_Pooling/config.json, sentence_bert_config.json
(max_seq_length 16) — and reference.json: for a few texts, the token ids
and the mean-pooled, L2-normalised embedding computed here in float64 by a
plain-Python BertModel (the weights as float32 values), an independent
oracle for test/unit/test_bert.c.
"""

import json
import math
import os
import random
import struct
import sys
import unicodedata

VOCAB = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
         "the", "cat", "##s", "sit", "##ting", "ting", "un", "##want", "##ed", "runn", "##ing",
         ",", ".", "!", "-", "a", "##b", "b", "resume", "naive", "cafe", "\u4e2d", "\u56fd",
         "hello", "world", "$", "i", "[", "]", "dog", "run", "##n", "play", "##er", "is",
         "on", "mat", "sun", "##ny", "day", "good", "bad", "##ly", "fish", "swim", "##s##",
         "tree", "green", "blue", "sky", "red", "car", "fast", "slow"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
HP = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
      "intermediate_size": 64, "max_position_embeddings": 64, "type_vocab_size": 2}
MAX_SEQ = 16
MAX_CHARS = 10
TEXTS = ["the cat sits on the mat", "Hello, world!", "un-wanted running dogs",
         "a good sunny day", "fish swim fast", "the blue sky is green"]


def f32(x):
    """x rounded to float32."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def make_weights(rng):
    """{hf name: (shape, flat float32 values)}."""
    E, F, V = HP["hidden_size"], HP["intermediate_size"], len(VOCAB)
    w = {}

    def mat(name, rows, cols, scale):
        w[name] = ([rows, cols], [f32(rng.gauss(0, scale)) for _ in range(rows * cols)])

    def vec(name, n, base, scale):
        w[name] = ([n], [f32(base + rng.gauss(0, scale)) for _ in range(n)])

    mat("embeddings.word_embeddings.weight", V, E, 1.0)
    mat("embeddings.position_embeddings.weight", HP["max_position_embeddings"], E, 0.3)
    mat("embeddings.token_type_embeddings.weight", HP["type_vocab_size"], E, 0.3)
    vec("embeddings.LayerNorm.weight", E, 1.0, 0.1)
    vec("embeddings.LayerNorm.bias", E, 0.0, 0.1)
    for il in range(HP["num_hidden_layers"]):
        p = "encoder.layer.%d." % il
        for part in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            mat(p + part + ".weight", E, E, 0.3)
            vec(p + part + ".bias", E, 0.0, 0.1)
        mat(p + "intermediate.dense.weight", F, E, 0.3)
        vec(p + "intermediate.dense.bias", F, 0.0, 0.1)
        mat(p + "output.dense.weight", E, F, 0.2)
        vec(p + "output.dense.bias", E, 0.0, 0.1)
        for part in ("attention.output.LayerNorm", "output.LayerNorm"):
            vec(p + part + ".weight", E, 1.0, 0.1)
            vec(p + part + ".bias", E, 0.0, 0.1)
    mat("pooler.dense.weight", E, E, 0.3)        # present in real files, unused
    vec("pooler.dense.bias", E, 0.0, 0.1)
    return w


def write_safetensors(path, w):
    """A safetensors file of F32 tensors."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(w):
        shape, vals = w[name]
        b = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def tokenize(text):
    """BERT uncased WordPiece of text (the oracle: written out plainly)."""
    ids = {t: i for i, t in enumerate(VOCAB)}
    s = "".join(" " if c.isspace() else c for c in text
                if not (ord(c) == 0 or ord(c) == 0xFFFD or
                        (unicodedata.category(c)[0] == "C" and c not in "\t\n\r")))
    s = "".join(" %s " % c if 0x4E00 <= ord(c) <= 0x9FFF else c for c in s)
    s = "".join(c for c in unicodedata.normalize("NFD", s) if unicodedata.category(c) != "Mn").lower()
    words, cur = [], ""
    for c in s:
        if c.isspace() or c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" or unicodedata.category(c)[0] == "P":
            if cur:
                words.append(cur)
            cur = ""
            if not c.isspace():
                words.append(c)
        else:
            cur += c
    if cur:
        words.append(cur)
    out = [ids["[CLS]"]]
    for wd in words:
        if len(wd) > MAX_CHARS:
            out.append(ids["[UNK]"])
            continue
        start, sub = 0, []
        while start < len(wd):
            end = len(wd)
            while end > start and (("##" if start else "") + wd[start:end]) not in ids:
                end -= 1
            if end == start:
                sub = [ids["[UNK]"]]
                break
            sub.append(ids[("##" if start else "") + wd[start:end]])
            start = end
        out += sub
    return out + [ids["[SEP]"]]


def forward(w, ids):
    """Mean-pooled, L2-normalised embedding of ids, float64 BertModel."""
    E, H = HP["hidden_size"], HP["num_attention_heads"]
    hd = E // H

    def row(name, r):
        shape, vals = w[name]
        return vals[r * shape[1]:(r + 1) * shape[1]]

    def lin(x, name):
        shape, vals = w[name + ".weight"]
        b = w[name + ".bias"][1]
        return [sum(vals[o * shape[1] + i] * x[i] for i in range(shape[1])) + b[o] for o in range(shape[0])]

    def ln(x, name, eps=1e-12):
        m = sum(x) / len(x)
        v = sum((a - m) ** 2 for a in x) / len(x)
        g, b = w[name + ".weight"][1], w[name + ".bias"][1]
        return [(a - m) / math.sqrt(v + eps) * g[i] + b[i] for i, a in enumerate(x)]

    xs = [ln([a + p + t for a, p, t in zip(row("embeddings.word_embeddings.weight", tok),
                                            row("embeddings.position_embeddings.weight", pos),
                                            row("embeddings.token_type_embeddings.weight", 0))],
             "embeddings.LayerNorm") for pos, tok in enumerate(ids)]
    for il in range(HP["num_hidden_layers"]):
        p = "encoder.layer.%d." % il
        q = [lin(x, p + "attention.self.query") for x in xs]
        k = [lin(x, p + "attention.self.key") for x in xs]
        v = [lin(x, p + "attention.self.value") for x in xs]
        att = []
        for i in range(len(xs)):
            a = []
            for h in range(H):
                sl = slice(h * hd, (h + 1) * hd)
                sc = [sum(x * y for x, y in zip(q[i][sl], k[j][sl])) / math.sqrt(hd) for j in range(len(xs))]
                mx = max(sc)
                e = [math.exp(s - mx) for s in sc]
                z = sum(e)
                a += [sum(e[j] / z * v[j][sl][d] for j in range(len(xs))) for d in range(hd)]
            att.append(a)
        xs = [ln([a + b for a, b in zip(x, lin(at, p + "attention.output.dense"))],
                 p + "attention.output.LayerNorm") for x, at in zip(xs, att)]
        ff = [[0.5 * u * (1 + math.erf(u / math.sqrt(2))) for u in lin(x, p + "intermediate.dense")] for x in xs]
        xs = [ln([a + b for a, b in zip(x, lin(f, p + "output.dense"))], p + "output.LayerNorm")
              for x, f in zip(xs, ff)]
    mean = [sum(x[i] for x in xs) / len(xs) for i in range(E)]
    n = math.sqrt(sum(a * a for a in mean))
    return [a / n for a in mean]


def main():
    """Write the directory given on the command line."""
    d = sys.argv[1]
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    w = make_weights(random.Random(7))
    write_safetensors(os.path.join(d, "model.safetensors"), w)
    cfg = dict(HP, model_type="bert", vocab_size=len(VOCAB), hidden_act="gelu", layer_norm_eps=1e-12,
               position_embedding_type="absolute", architectures=["BertModel"])
    files = {
        "config.json": cfg,
        "sentence_bert_config.json": {"max_seq_length": MAX_SEQ, "do_lower_case": False},
        "modules.json": [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                         {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                         {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
        "1_Pooling/config.json": {"word_embedding_dimension": HP["hidden_size"], "pooling_mode_cls_token": False,
                                  "pooling_mode_mean_tokens": True},
        "tokenizer.json": {
            "added_tokens": [{"id": VOCAB.index(t), "content": t, "special": True} for t in SPECIAL],
            "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                           "strip_accents": None, "lowercase": True},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": MAX_CHARS, "vocab": {t: i for i, t in enumerate(VOCAB)}}},
    }
    for name, obj in files.items():
        with open(os.path.join(d, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False)
    ref = [{"text": t, "token_ids": tokenize(t), "embedding": forward(w, tokenize(t))} for t in TEXTS]
    with open(os.path.join(d, "reference.json"), "w", encoding="utf-8") as f:
        json.dump({"results": ref}, f, ensure_ascii=False)
    print("bert_tiny: wrote %s" % d)


if __name__ == "__main__":
    main()
