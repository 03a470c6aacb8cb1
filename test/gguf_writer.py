#!/usr/bin/env python3
"""
gguf_writer.py — writes GGUF v2/v3 test files, good and deliberately broken.

Standard library only.  Used as a library:

    w = GGUFWriter(version=3, alignment=64, seed=1)
    w.add_kv("general.architecture", "str", "llama")
    w.add_kv("x.list", "arr:arr:u8", [[1, 2], [3]])
    w.add_tensor("blk.0.w", "Q4_0", [64, 8])          # random, valid-looking blocks
    w.write("out.gguf")

and as a command line tool:

    python3 test/gguf_writer.py out.gguf --version 3 --alignment 64 \
        --kv general.architecture=str:llama --kv n=u32:7 \
        --kv list=arr:i32:1,2,3 --tensor blk.0.w:Q4_0:64x8
    python3 test/gguf_writer.py tiny.gguf --llama-tiny Q8_0
    python3 test/gguf_writer.py bad.gguf --llama-tiny F32 --break dup-tensor

Layout written (little endian): magic "GGUF", u32 version, u64 n_tensors,
u64 n_kv, the key/value pairs (string key, u32 type, value), the tensor infos
(string name, u32 n_dims, i64 ne[n_dims], u32 type, u64 offset), zero padding
to the alignment, then the tensor data, each tensor padded to the alignment.
A string is a u64 byte count and the bytes; an array is a u32 element type, a
u64 count and the elements.  Shapes are in ggml order (fastest dimension first).

Quantized blocks are random bytes except their fp16/f32 scale fields, which get
small finite values, so any dequantizer reads finite numbers.  Everything is
deterministic for a given seed.
"""

import argparse
import random
import struct
import sys

# Value type ids and their struct codes (None: not a fixed-size scalar).
VTYPES = {
    "u8": (0, "<B"), "i8": (1, "<b"), "u16": (2, "<H"), "i16": (3, "<h"),
    "u32": (4, "<I"), "i32": (5, "<i"), "f32": (6, "<f"), "bool": (7, "<?"),
    "str": (8, None), "arr": (9, None), "u64": (10, "<Q"), "i64": (11, "<q"),
    "f64": (12, "<d"),
}
VTYPE_ALIASES = {"string": "str", "float32": "f32", "float64": "f64",
                 "uint8": "u8", "int8": "i8", "uint16": "u16", "int16": "i16",
                 "uint32": "u32", "int32": "i32", "uint64": "u64", "int64": "i64",
                 "array": "arr"}

# ggml tensor types: id -> (name, elements per block, bytes per block,
# [(byte offset in block, "e" for fp16 / "f" for f32 scale field), ...]).
TYPES = {
    0: ("F32", 1, 4, None), 1: ("F16", 1, 2, None),
    2: ("Q4_0", 32, 18, [(0, "e")]), 3: ("Q4_1", 32, 20, [(0, "e"), (2, "e")]),
    6: ("Q5_0", 32, 22, [(0, "e")]), 7: ("Q5_1", 32, 24, [(0, "e"), (2, "e")]),
    8: ("Q8_0", 32, 34, [(0, "e")]), 9: ("Q8_1", 32, 36, [(0, "e"), (2, "e")]),
    10: ("Q2_K", 256, 84, [(80, "e"), (82, "e")]), 11: ("Q3_K", 256, 110, [(108, "e")]),
    12: ("Q4_K", 256, 144, [(0, "e"), (2, "e")]), 13: ("Q5_K", 256, 176, [(0, "e"), (2, "e")]),
    14: ("Q6_K", 256, 210, [(208, "e")]), 15: ("Q8_K", 256, 292, [(0, "f")]),
    16: ("IQ2_XXS", 256, 66, [(0, "e")]), 17: ("IQ2_XS", 256, 74, [(0, "e")]),
    18: ("IQ3_XXS", 256, 98, [(0, "e")]), 19: ("IQ1_S", 256, 50, [(0, "e")]),
    20: ("IQ4_NL", 32, 18, [(0, "e")]), 21: ("IQ3_S", 256, 110, [(0, "e")]),
    22: ("IQ2_S", 256, 82, [(0, "e")]), 23: ("IQ4_XS", 256, 136, [(0, "e")]),
    24: ("I8", 1, 1, None), 25: ("I16", 1, 2, None), 26: ("I32", 1, 4, None),
    27: ("I64", 1, 8, None), 28: ("F64", 1, 8, None), 29: ("IQ1_M", 256, 56, []),
    30: ("BF16", 1, 2, None), 34: ("TQ1_0", 256, 54, [(52, "e")]),
    35: ("TQ2_0", 256, 66, [(64, "e")]), 39: ("MXFP4", 32, 17, []),
}
TYPE_IDS = {v[0]: k for k, v in TYPES.items()}


def type_id(t):
    """Type id of a name ("Q4_0"), a decimal id ("2") or an int."""
    if isinstance(t, int):
        return t
    if t.upper() in TYPE_IDS:
        return TYPE_IDS[t.upper()]
    return int(t)


def tensor_nbytes(tid, shape):
    """Byte size of a tensor of a known type; ne[0] must be a block multiple."""
    _, bs, ts, _ = TYPES[tid]
    n = 1
    for d in shape:
        n *= d
    if shape and shape[0] % bs:
        raise ValueError("ne[0]=%d is not a multiple of the %s block size %d"
                         % (shape[0], TYPES[tid][0], bs))
    return n // bs * ts


def pack_str(s):
    """A GGUF string: u64 length and the UTF-8 bytes."""
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def norm_vtype(t):
    """Canonical value type name ("u32", "arr:str", ...)."""
    parts = [VTYPE_ALIASES.get(p, p) for p in t.split(":")]
    for p in parts:
        if p not in VTYPES:
            raise ValueError("unknown value type %r" % t)
    return ":".join(parts)


def pack_value(vtype, value):
    """Bytes of a value of a type like "u32", "str" or "arr:arr:i8" (no type tag)."""
    vtype = norm_vtype(vtype)
    if vtype.startswith("arr:"):
        sub = vtype[4:]
        out = struct.pack("<IQ", VTYPES[sub.split(":")[0]][0], len(value))
        return out + b"".join(pack_value(sub, v) for v in value)
    if vtype == "str":
        return pack_str(value)
    return struct.pack(VTYPES[vtype][1], value)


def random_f16(rng, scale=0.01):
    """Two bytes of a small finite fp16 value."""
    return struct.pack("<e", rng.uniform(-scale, scale))


def make_data(tid, shape, rng, fill="random"):
    """Tensor bytes: zeros, or random values / blocks with finite scales.

    fill "fast" draws a quantized tensor's bytes in one call (same kind of
    blocks, another random stream), for models too large to draw byte by byte.
    """
    nbytes = tensor_nbytes(tid, shape)
    if fill == "zero":
        return bytes(nbytes)
    name, bs, ts, scales = TYPES[tid]
    n = nbytes // ts * bs
    if name == "F32":
        return struct.pack("<%df" % n, *(rng.uniform(-1, 1) for _ in range(n)))
    if name == "F64":
        return struct.pack("<%dd" % n, *(rng.uniform(-1, 1) for _ in range(n)))
    if name == "F16":
        return struct.pack("<%de" % n, *(rng.uniform(-1, 1) for _ in range(n)))
    if name == "BF16":
        f = struct.pack("<%df" % n, *(rng.uniform(-1, 1) for _ in range(n)))
        return b"".join(f[i + 2:i + 4] for i in range(0, len(f), 4))
    if fill == "fast":
        # the same kind of blocks, from one call (for large models)
        raw = bytearray(rng.randbytes(nbytes))
    else:
        raw = bytearray(rng.getrandbits(8) for _ in range(nbytes))
    for blk in range(0, nbytes, ts) if scales else ():
        for off, kind in scales:
            if kind == "e":
                raw[blk + off:blk + off + 2] = random_f16(rng)
            else:
                raw[blk + off:blk + off + 4] = struct.pack("<f", rng.uniform(-0.01, 0.01))
    return bytes(raw)


def align(x, a):
    """x rounded up to a multiple of a."""
    return (x + a - 1) // a * a


class GGUFWriter:
    """Collects key/value pairs and tensors, then writes one GGUF image.

    Fields that broken-file tests override (all None/False = a valid file):
      magic, n_tensors_override, n_kv_override, truncate_at, data_alignment
      (alignment used for the layout when general.alignment is bogus);
      per kv: raw (bytes after the key, instead of type+value);
      per tensor: ne_raw, type_raw, offset_raw, offset_delta, data (bytes).
    """

    def __init__(self, version=3, alignment=None, seed=0):
        self.version = version          # header version field
        self.alignment = alignment      # None: default 32 and no general.alignment key
        self.rng = random.Random(seed)  # source of random tensor data
        self.kvs = []                   # [key, vtype, value, raw]
        self.tensors = []               # dicts: name, shape, type, data, offset_raw ...
        self.magic = b"GGUF"
        self.n_tensors_override = None
        self.n_kv_override = None
        self.truncate_at = None
        self.data_alignment = None
        self.pad_last = True            # pad the last tensor to the alignment
        if alignment is not None:
            self.add_kv("general.alignment", "u32", alignment)

    def add_kv(self, key, vtype, value, raw=None):
        """Add a key; vtype like "u32", "str", "arr:f32", "arr:arr:u8"."""
        self.kvs.append([key, norm_vtype(vtype) if raw is None else vtype, value, raw])

    def add_tensor(self, name, ttype, shape, fill="random", data=None):
        """Add a tensor (shape in ggml order); data random, zero or given bytes."""
        tid = type_id(ttype)
        if data is None:
            data = make_data(tid, list(shape), self.rng, fill)
        t = {"name": name, "shape": list(shape), "type": tid, "data": data,
             "ne_raw": None, "type_raw": None, "offset_raw": None, "offset_delta": 0}
        self.tensors.append(t)
        return t

    def layout_alignment(self):
        """Alignment used to place the data section and the tensors."""
        if self.data_alignment:
            return self.data_alignment
        return self.alignment if self.alignment else 32

    def header_bytes(self):
        """Header up to the end of the tensor infos, and each tensor's offset."""
        a = self.layout_alignment()
        out = bytearray(self.magic)
        out += struct.pack("<I", self.version)
        nt = len(self.tensors) if self.n_tensors_override is None else self.n_tensors_override
        nk = len(self.kvs) if self.n_kv_override is None else self.n_kv_override
        out += struct.pack("<QQ", nt, nk)
        for key, vtype, value, raw in self.kvs:
            out += pack_str(key)
            if raw is not None:
                out += raw
            elif vtype.startswith("arr:"):
                out += struct.pack("<I", VTYPES["arr"][0]) + pack_value(vtype, value)
            else:
                out += struct.pack("<I", VTYPES[vtype][0]) + pack_value(vtype, value)
        offsets = []
        off = 0
        for t in self.tensors:
            offsets.append(off)
            off = align(off + len(t["data"]), a)
        for t, o in zip(self.tensors, offsets):
            ne = t["ne_raw"] if t["ne_raw"] is not None else t["shape"]
            out += pack_str(t["name"])
            out += struct.pack("<I", len(ne))
            out += b"".join(struct.pack("<q", d) if d < 2 ** 63 else struct.pack("<Q", d)
                            for d in ne)
            out += struct.pack("<I", t["type"] if t["type_raw"] is None else t["type_raw"])
            o += t["offset_delta"]
            out += struct.pack("<Q", o if t["offset_raw"] is None else t["offset_raw"])
        return bytes(out), offsets

    def to_bytes(self):
        """The whole file image."""
        a = self.layout_alignment()
        head, offsets = self.header_bytes()
        out = bytearray(head)
        out += bytes(align(len(out), a) - len(out))
        base = len(out)
        for t, o in zip(self.tensors, offsets):
            out += bytes(base + o - len(out))
            out += t["data"]
        if self.pad_last and self.tensors:
            out += bytes(align(len(out) - base, a) - (len(out) - base))
        if self.truncate_at is not None:
            del out[self.truncate_at:]
        return bytes(out)

    def write(self, path):
        """Write the image to a file; returns its size."""
        b = self.to_bytes()
        with open(path, "wb") as f:
            f.write(b)
        return len(b)


# Per-layer llama tensors of stories260K, (name, ne as a function of hparams).
LLAMA_LAYER = [
    ("attn_k.weight", lambda h: [h["n_embd"], h["n_embd"] * h["n_head_kv"] // h["n_head"]]),
    ("attn_norm.weight", lambda h: [h["n_embd"]]),
    ("attn_output.weight", lambda h: [h["n_embd"], h["n_embd"]]),
    ("attn_q.weight", lambda h: [h["n_embd"], h["n_embd"]]),
    ("attn_v.weight", lambda h: [h["n_embd"], h["n_embd"] * h["n_head_kv"] // h["n_head"]]),
    ("ffn_down.weight", lambda h: [h["n_ff"], h["n_embd"]]),
    ("ffn_gate.weight", lambda h: [h["n_embd"], h["n_ff"]]),
    ("ffn_norm.weight", lambda h: [h["n_embd"]]),
    ("ffn_up.weight", lambda h: [h["n_embd"], h["n_ff"]]),
]

# general.file_type values llama.cpp writes for each main weight type.
FILE_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8,
              "Q5_1": 9, "Q2_K": 10, "Q3_K": 11, "Q4_K": 14, "Q5_K": 16, "Q6_K": 18,
              "BF16": 32}

LLAMA_DEFAULTS = {"n_embd": 64, "n_layer": 5, "n_head": 8, "n_head_kv": 4,
                  "n_ff": 172, "n_vocab": 512, "n_ctx": 128}


def llama_vocab(n_vocab):
    """Tokens, scores and token types: <unk> <s> </s>, byte tokens, "▁", then pieces."""
    toks, types = ["<unk>", "<s>", "</s>"], [2, 3, 3]
    if n_vocab >= 259:
        toks += ["<0x%02X>" % i for i in range(256)]
        types += [6] * 256
    letters = "abcdefghijklmnopqrstuvwxyz"
    if len(toks) < n_vocab:
        toks.append("\u2581")  # the space piece, as every SentencePiece vocabulary has
        types.append(1)
    i = 0
    while len(toks) < n_vocab:
        # Unique pieces: "▁a".."▁z", then "a".."z", then two-letter pieces.
        if i < 26:
            piece = "\u2581" + letters[i]
        elif i < 52:
            piece = letters[i - 26]
        else:
            j = i - 52
            piece = ("\u2581" if (j // 676) % 2 == 0 else "") + letters[(j // 26) % 26] + letters[j % 26]
            if j >= 2 * 676:
                piece = "t%d" % j
        toks.append(piece)
        types.append(1)
        i += 1
    toks, types = toks[:n_vocab], types[:n_vocab]
    scores = [0.0 if t != 1 else -float(k) for k, t in enumerate(types)]
    return toks, scores, types


# English words of the "words" vocabulary: whole-word pieces, so that test
# text tokenizes into words and a random model's greedy output is a fixed
# string of readable words.
WORDS = """
the a an and or but was is are were be to of in on at for with from by as it
he she they we you i his her their my your our this that these there here
once upon time day night morning little big small old new good bad happy sad
red blue green yellow girl boy man woman mom dad baby dog cat bird fish horse
ball tree park house home car boat book toy food water sun rain snow wind
cold hot warm run ran play played saw see look looked went go come came said
say like liked love loved want wanted help helped find found make made take
took give gave eat ate sleep jump jumped friend friends family school city
town river sea sky star moon game team win won lose lost score goal match
sports music movie song art science weather news money market price stock
business politics vote election health doctor travel positive negative
neutral great terrible awful excellent fine okay yes no not very so too also
then when because after before again all some many one two three first last
best worst text category categories answer summary question story
""".split()


def words_vocab(n_vocab=None, chat=False):
    """A SentencePiece vocabulary of whole English words (plus byte fallback).

    Tokens: <unk> <s> </s> (and <|im_start|> <|im_end|> when chat), the 256
    byte tokens, "▁", single characters (letters, digits, punctuation),
    "▁" + each letter, then every prefix "▁w", "▁wo", ... of each word in
    WORDS, so the merges build a known word whole.  Returns tokens, scores,
    types, and the ids of the whole-word tokens.  n_vocab pads with unused
    pieces; it must not be smaller than the vocabulary.
    """
    toks, types = ["<unk>", "<s>", "</s>"], [2, 3, 3]
    if chat:
        toks += ["<|im_start|>", "<|im_end|>"]
        types += [3, 3]
    toks += ["<0x%02X>" % i for i in range(256)]
    types += [6] * 256
    chars = ("abcdefghijklmnopqrstuvwxyz" "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
             "0123456789" ".,!?:;'\"-()")
    pieces = ["\u2581"] + list(chars) + ["\u2581" + c for c in chars[:62]]
    whole = []
    for w in dict.fromkeys(WORDS):
        for i in range(2, len(w) + 1):
            piece = "\u2581" + w[:i]
            if piece not in pieces:
                pieces.append(piece)
        whole.append("\u2581" + w)
    toks += pieces
    types += [1] * len(pieces)
    if n_vocab is not None:
        if n_vocab < len(toks):
            raise ValueError("the words vocabulary needs n_vocab >= %d" % len(toks))
        toks += ["<unused%d>" % i for i in range(n_vocab - len(toks))]
        types += [5] * (n_vocab - len(types))
    scores = [-float(k) if t == 1 else 0.0 for k, t in enumerate(types)]
    index = {t: k for k, t in enumerate(toks)}
    return toks, scores, types, sorted(index[w] for w in set(whole))


# A ChatML template, as SmolLM2 and Qwen files carry (lmgen recognises the family).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def mask_rows(data, row_bytes, keep):
    """Tensor bytes with every row not in keep set to zero (a zero logit)."""
    out = bytearray(len(data))
    for r in keep:
        out[r * row_bytes:(r + 1) * row_bytes] = data[r * row_bytes:(r + 1) * row_bytes]
    return bytes(out)


def llama_tiny(wtype="F32", version=3, alignment=None, seed=0, fill="random",
               output_type=None, vocab="letters", chat=False, **hp):
    """A complete small llama model (stories260K's keys and tensor names).

    Matrices get wtype, or F16 when their rows are not a multiple of its
    block (like ffn_down of stories260K); norms are F32; output.weight gets
    output_type when given (llama.cpp's Q4_0 file has a Q8_0 output).
    vocab "letters" is the synthetic 512-piece vocabulary; "words" is
    words_vocab() (n_vocab defaults to its size), and its output.weight is
    zero except the rows of whole words, so greedy decoding emits words and
    never an end-of-generation token.  chat adds the ChatML tokens and
    template.
    """
    h = dict(LLAMA_DEFAULTS)
    if vocab == "words":
        h["n_vocab"] = None
    h.update({k: v for k, v in hp.items() if v is not None})
    tid = type_id(wtype)
    tname = TYPES[tid][0]
    w = GGUFWriter(version=version, alignment=alignment, seed=seed)
    keep_rows = None
    if vocab == "words":
        toks, scores, types, keep_rows = words_vocab(h["n_vocab"], chat)
        h["n_vocab"] = len(toks)
    else:
        toks, scores, types = llama_vocab(h["n_vocab"])
    w.add_kv("tokenizer.ggml.tokens", "arr:str", toks)
    w.add_kv("tokenizer.ggml.scores", "arr:f32", scores)
    w.add_kv("tokenizer.ggml.token_type", "arr:i32", types)
    w.add_kv("tokenizer.ggml.model", "str", "llama")
    w.add_kv("general.architecture", "str", "llama")
    w.add_kv("general.name", "str", "llama-tiny")
    w.add_kv("tokenizer.ggml.unknown_token_id", "u32", 0)
    w.add_kv("tokenizer.ggml.bos_token_id", "u32", 1)
    w.add_kv("tokenizer.ggml.eos_token_id", "u32", 2)
    w.add_kv("tokenizer.ggml.seperator_token_id", "u32", 0xFFFFFFFF)
    w.add_kv("tokenizer.ggml.padding_token_id", "u32", 0xFFFFFFFF)
    if chat:
        w.add_kv("tokenizer.chat_template", "str", CHATML_TEMPLATE)
    w.add_kv("llama.context_length", "u32", h["n_ctx"])
    w.add_kv("llama.embedding_length", "u32", h["n_embd"])
    w.add_kv("llama.feed_forward_length", "u32", h["n_ff"])
    w.add_kv("llama.attention.head_count", "u32", h["n_head"])
    w.add_kv("llama.attention.head_count_kv", "u32", h["n_head_kv"])
    w.add_kv("llama.block_count", "u32", h["n_layer"])
    w.add_kv("llama.rope.dimension_count", "u32", h["n_embd"] // h["n_head"])
    w.add_kv("llama.attention.layer_norm_rms_epsilon", "f32", 1e-5)
    if tname != "F32":
        w.add_kv("general.quantization_version", "u32", 2)
        w.add_kv("general.file_type", "u32", FILE_TYPES.get(tname, 0))

    def pick(shape):
        """The chosen type for a matrix, F16 when its rows do not fit the blocks."""
        if len(shape) == 1:
            return 0
        return tid if shape[0] % TYPES[tid][1] == 0 else 1

    emb = [h["n_embd"], h["n_vocab"]]
    w.add_tensor("token_embd.weight", pick(emb), emb, fill)
    w.add_tensor("output_norm.weight", 0, [h["n_embd"]], fill)
    out = w.add_tensor("output.weight", type_id(output_type) if output_type else pick(emb), emb, fill)
    if keep_rows is not None:
        out["data"] = mask_rows(out["data"], tensor_nbytes(out["type"], [emb[0], 1]), keep_rows)
    for layer in range(h["n_layer"]):
        for suffix, shape_fn in LLAMA_LAYER:
            shape = shape_fn(h)
            w.add_tensor("blk.%d.%s" % (layer, suffix), pick(shape), shape, fill)
    return w


# Broken variants: name -> (what it breaks, function that breaks a writer).
def _brk_bad_magic(w): w.magic = b"GGUX"
def _brk_version1(w): w.version = 1
def _brk_version4(w): w.version = 4
def _brk_huge_n_tensors(w): w.n_tensors_override = 1 << 60
def _brk_huge_n_kv(w): w.n_kv_override = 1 << 60
def _brk_misaligned(w): w.tensors[0]["offset_delta"] = 1
def _brk_overlap(w): w.tensors[1]["offset_raw"] = 0


def _brk_str_past_eof(w):
    w.kvs.insert(0, ["general.bad", "str", None, struct.pack("<IQ", 8, 1 << 40) + b"abc"])
    w.tensors = []
    w.kvs = w.kvs[:1]


def _brk_arr_past_eof(w):
    w.kvs.insert(0, ["general.bad", "arr", None, struct.pack("<IIQ", 9, 4, 1 << 40)])
    w.tensors = []
    w.kvs = w.kvs[:1]


def _brk_bad_vtype(w):
    w.kvs.insert(0, ["general.bad", "x", None, struct.pack("<I", 13) + bytes(8)])


def _brk_bad_arr_type(w):
    w.kvs.insert(0, ["general.bad", "x", None, struct.pack("<IIQ", 9, 99, 1) + bytes(8)])


def _brk_bool_2(w):
    w.kvs.insert(0, ["general.bad", "x", None, struct.pack("<IB", 7, 2)])


def _brk_dup_tensor(w): w.tensors[1]["name"] = w.tensors[0]["name"]
def _brk_dup_key(w): w.kvs.append(list(w.kvs[-1]))
def _brk_n_dims_5(w): w.tensors[0]["ne_raw"] = w.tensors[0]["shape"] + [1] * (5 - len(w.tensors[0]["shape"]))
def _brk_zero_dim(w): w.tensors[0]["ne_raw"] = [0] + w.tensors[0]["shape"][1:]
def _brk_neg_dim(w): w.tensors[0]["ne_raw"] = [w.tensors[0]["shape"][0], -1]
def _brk_dim_overflow(w): w.tensors[0]["ne_raw"] = [1 << 32, 1 << 32, 1 << 32, 1 << 32]
def _brk_unknown_type(w): w.tensors[0]["type_raw"] = 99
def _brk_retired_type(w): w.tensors[0]["type_raw"] = 4


def _brk_not_block_multiple(w):
    t = w.tensors[0]
    t["type_raw"] = 2                                    # Q4_0, block of 32
    t["ne_raw"] = [48, max(1, len(t["data"]) // 27)]     # 48 is not a multiple of 32


def _brk_data_past_eof(w):
    w.pad_last = False
    w.truncate_at = None
    w.truncate_at = len(w.to_bytes()) - 1
def _brk_offset_past_eof(w): w.tensors[-1]["offset_raw"] = 1 << 40


def _brk_alignment_0(w):
    _drop_key(w, "general.alignment")
    w.add_kv("general.alignment", "u32", 0)
    w.data_alignment = 32


def _brk_alignment_3(w):
    _drop_key(w, "general.alignment")
    w.add_kv("general.alignment", "u32", 3)
    w.data_alignment = 32


def _brk_alignment_type(w):
    _drop_key(w, "general.alignment")
    w.add_kv("general.alignment", "str", "32")
    w.data_alignment = 32


def _brk_empty_name(w): w.tensors[0]["name"] = ""


def _drop_key(w, key):
    """Remove a key the writer added."""
    w.kvs = [kv for kv in w.kvs if kv[0] != key]


BREAKS = {
    "bad-magic": _brk_bad_magic,
    "version1": _brk_version1,
    "version4": _brk_version4,
    "huge-n-tensors": _brk_huge_n_tensors,
    "huge-n-kv": _brk_huge_n_kv,
    "str-past-eof": _brk_str_past_eof,
    "arr-past-eof": _brk_arr_past_eof,
    "bad-vtype": _brk_bad_vtype,
    "bad-arr-type": _brk_bad_arr_type,
    "bool-2": _brk_bool_2,
    "misaligned-offset": _brk_misaligned,
    "overlap": _brk_overlap,
    "dup-tensor": _brk_dup_tensor,
    "dup-key": _brk_dup_key,
    "n-dims-5": _brk_n_dims_5,
    "zero-dim": _brk_zero_dim,
    "neg-dim": _brk_neg_dim,
    "dim-overflow": _brk_dim_overflow,
    "unknown-type": _brk_unknown_type,
    "retired-type": _brk_retired_type,
    "not-block-multiple": _brk_not_block_multiple,
    "data-past-eof": _brk_data_past_eof,
    "offset-past-eof": _brk_offset_past_eof,
    "alignment-0": _brk_alignment_0,
    "alignment-3": _brk_alignment_3,
    "alignment-type": _brk_alignment_type,
    "empty-name": _brk_empty_name,
}
# "bool-2" (a bool byte other than 0/1) and "empty-name" are debatable rather
# than clearly invalid; tests decide what they expect from them.


def parse_kv(spec):
    """KEY=TYPE:VALUE; arrays as arr:TYPE:v1,v2 (strings split on commas)."""
    key, _, rest = spec.partition("=")
    vtype, _, val = rest.partition(":")
    vtype = norm_vtype(vtype)
    if vtype == "arr":
        sub, _, val = val.partition(":")
        sub = norm_vtype(sub)
        items = [] if val == "" else val.split(",")
        return key, "arr:" + sub, [_scalar(sub, x) for x in items]
    return key, vtype, _scalar(vtype, val)


def _scalar(vtype, text):
    """Parse one scalar value."""
    if vtype == "str":
        return text
    if vtype == "bool":
        return text.lower() in ("1", "true", "yes")
    if vtype in ("f32", "f64"):
        return float(text)
    return int(text, 0)


def parse_tensor(spec):
    """NAME:TYPE:D0xD1x..[:zero]"""
    parts = spec.split(":")
    fill = parts[3] if len(parts) > 3 else "random"
    return parts[0], type_id(parts[1]), [int(d) for d in parts[2].split("x")], fill


def build(args, breaks):
    """A writer for the parsed command line, with the given breaks applied."""
    fill = "zero" if args.zero else ("fast" if args.fast else "random")
    if args.llama_tiny:
        hp = {k: getattr(args, k) for k in LLAMA_DEFAULTS}
        w = llama_tiny(args.llama_tiny, args.version, args.alignment, args.seed, fill,
                       args.output_type, args.vocab, args.chat, **hp)
    else:
        w = GGUFWriter(args.version, args.alignment, args.seed)
    for spec in args.kv:
        w.add_kv(*parse_kv(spec))
    for spec in args.tensor:
        name, tid, shape, tfill = parse_tensor(spec)
        w.add_tensor(name, tid, shape, "zero" if args.zero else tfill)
    for b in breaks:
        while len(w.tensors) < 2:
            w.add_tensor("pad.%d" % len(w.tensors), 0, [32, 2], fill)
        if not w.kvs:
            w.add_kv("general.architecture", "str", "llama")
        BREAKS[b](w)
    return w


def main(argv=None):
    """Command line entry point."""
    ap = argparse.ArgumentParser(description="write a GGUF test file")
    ap.add_argument("out")
    ap.add_argument("--version", type=int, default=3)
    ap.add_argument("--alignment", type=int, default=None,
                    help="write general.alignment and lay the data out on it")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kv", action="append", default=[], help="KEY=TYPE:VALUE")
    ap.add_argument("--tensor", action="append", default=[], help="NAME:TYPE:D0xD1[:zero]")
    ap.add_argument("--zero", action="store_true", help="zero tensor data")
    ap.add_argument("--fast", action="store_true",
                    help="draw quantized tensors' random bytes in one call (large models)")
    ap.add_argument("--llama-tiny", metavar="WTYPE", default=None,
                    help="a complete small llama model with weights of this type")
    ap.add_argument("--output-type", default=None, help="llama-tiny: type of output.weight")
    ap.add_argument("--vocab", choices=["letters", "words"], default="letters",
                    help="llama-tiny: the synthetic letter-pair vocabulary, or whole English words")
    ap.add_argument("--chat", action="store_true",
                    help="llama-tiny: add the ChatML tokens and chat template")
    for k, v in LLAMA_DEFAULTS.items():
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=None,
                        help="llama-tiny %s (default %d)" % (k, v))
    ap.add_argument("--break", dest="brk", action="append", default=[],
                    choices=sorted(BREAKS), help="write a deliberately broken file")
    ap.add_argument("--list-breaks", action="store_true", help="print the --break names")
    ap.add_argument("--all-breaks", action="store_true",
                    help="OUT is a directory: write OUT/<break>.gguf for every break")
    args = ap.parse_args(argv)
    if args.list_breaks:
        print("\n".join(sorted(BREAKS)))
        return 0
    if args.all_breaks:
        for b in sorted(BREAKS):
            path = "%s/%s.gguf" % (args.out, b)
            n = build(args, [b]).write(path)
            print("%s: %d bytes" % (path, n))
        return 0
    w = build(args, args.brk)
    n = w.write(args.out)
    print("%s: %d bytes, %d kv, %d tensors" % (args.out, n, len(w.kvs), len(w.tensors)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
