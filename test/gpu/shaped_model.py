#!/usr/bin/env python3
"""
shaped_model.py — a model file with the shape of a real one and random weights.

The GPU machine has no network and takes at most 64 MiB of files along, so
the shipped models (SmolLM2-135M Q4_1, ~94 MB; Gemma 3 270M Q4_K_M, ~250 MB)
cannot travel there.  What travels is a small description of each (its
architecture keys, and every tensor's name, shape, storage type and the
magnitude of its values), and this script writes from it a GGUF the engine
loads like the real file: the same keys, tensors, shapes and types, so the
same kernels, the same bytes read per token and the same speed, with random
weights.  Greedy tokens of such a model mean nothing, but CPU and GPU must
still agree on them.

    python3 test/gpu/shaped_model.py --describe MODEL.gguf > shapes/X.json
    python3 test/gpu/shaped_model.py shapes/X.json OUT.gguf [--seed N]
        [--layers N] [--vocab N]          # a reduced model for tests
        [--float]                         # quantized tensors stored as F32
        [--tokenizer TOK.gguf]            # with a real tokenizer (SQL on the GPU)
    python3 test/gpu/shaped_model.py --extract-tokenizer MODEL.gguf TOK.gguf
    python3 test/gpu/shaped_model.py --check shapes/X.json OUT.gguf

Description: every key except tokenizer.* (the engine's forward pass needs
no tokenizer; the device programs feed token ids) and arrays of more than 64
elements; per tensor the type, the shape (ggml order) and, from up to 64
blocks spread over the real tensor, the mean and root mean square of the
dequantized values.

Data: quantized blocks get uniform random quants and scales drawn per block
from a 256-entry table (lognormal spread around one base scale), with the
base scale set so the expected RMS of the values equals the real tensor's;
the minimum fields of Q4_1/Q5_1/Q4_K/Q5_K are tied to the scales so values
centre on zero.  Float tensors draw each value from a 256-entry table of
normal quantiles with the real mean and RMS (norm weights stay near theirs).
Everything is done on whole byte columns (random bytes mapped through
bytes.translate, written with strided slice assignment), so a 250 MB model
takes seconds; the same seed gives the same file.
"""

import argparse
import json
import math
import os
import random
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gguf_writer import TYPES, TYPE_IDS, GGUFWriter, tensor_nbytes  # noqa: E402

# GGUF value type ids -> writer names (gguf_writer.VTYPES, inverted).
VTYPE_NAMES = {0: "u8", 1: "i8", 2: "u16", 3: "i16", 4: "u32", 5: "i32", 6: "f32",
               7: "bool", 8: "str", 9: "arr", 10: "u64", 11: "i64", 12: "f64"}
SCALAR_FMT = {"u8": "<B", "i8": "<b", "u16": "<H", "i16": "<h", "u32": "<I", "i32": "<i",
              "f32": "<f", "bool": "<?", "u64": "<Q", "i64": "<q", "f64": "<d"}

# Longest array kept in a description.
MAX_ARRAY = 64

# Blocks per tensor read by --describe and --check.
SAMPLE_BLOCKS = 64


class Reader:
    """A GGUF file's keys, tensor infos and data offset (whole file in memory)."""

    def __init__(self, path, whole_arrays=False):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.whole_arrays = whole_arrays
        self.pos = 0
        if self.buf[:4] != b"GGUF":
            raise ValueError("%s is not a GGUF file" % path)
        self.version, n_tensors, n_kv = struct.unpack_from("<IQQ", self.buf, 4)
        self.pos = 24
        self.kvs = []
        for _ in range(n_kv):
            key = self.string()
            vt = VTYPE_NAMES[self.u32()]
            self.kvs.append(self.value(key, vt))
        self.tensors = []
        for _ in range(n_tensors):
            name = self.string()
            nd = self.u32()
            shape = list(struct.unpack_from("<%dq" % nd, self.buf, self.pos))
            self.pos += 8 * nd
            tid = self.u32()
            off = struct.unpack_from("<Q", self.buf, self.pos)[0]
            self.pos += 8
            self.tensors.append({"name": name, "type": TYPES[tid][0], "shape": shape, "offset": off})
        align = dict((k[0], k[2]) for k in self.kvs).get("general.alignment", 32)
        self.data_start = (self.pos + align - 1) // align * align

    def u32(self):
        """The next u32."""
        v = struct.unpack_from("<I", self.buf, self.pos)[0]
        self.pos += 4
        return v

    def string(self):
        """The next string."""
        n = struct.unpack_from("<Q", self.buf, self.pos)[0]
        s = self.buf[self.pos + 8:self.pos + 8 + n].decode("utf-8", "replace")
        self.pos += 8 + n
        return s

    def scalar(self, vt):
        """The next value of scalar type vt."""
        if vt == "str":
            return self.string()
        v = struct.unpack_from(SCALAR_FMT[vt], self.buf, self.pos)[0]
        self.pos += struct.calcsize(SCALAR_FMT[vt])
        return v

    def value(self, key, vt):
        """[key, vtype, value] of the next value; long arrays are skipped (value None)."""
        if vt != "arr":
            return [key, vt, self.scalar(vt)]
        sub = VTYPE_NAMES[self.u32()]
        n = struct.unpack_from("<Q", self.buf, self.pos)[0]
        self.pos += 8
        if sub == "arr":
            raise ValueError("key %s: nested arrays are not described" % key)
        if sub != "str" and n > MAX_ARRAY and not self.whole_arrays:
            self.pos += n * struct.calcsize(SCALAR_FMT[sub])
            return [key, "arr:" + sub, None, n]
        vals = [self.scalar(sub) for _ in range(n)]
        return [key, "arr:" + sub, vals if n <= MAX_ARRAY or self.whole_arrays else None, n]

    def tensor_bytes(self, t):
        """The bytes of tensor t."""
        start = self.data_start + t["offset"]
        return self.buf[start:start + tensor_nbytes(TYPE_IDS[t["type"]], t["shape"])]


def f16(b, o):
    """The fp16 at byte o of b, as a float."""
    return struct.unpack_from("<e", b, o)[0]


def k_scale_min(sc, j):
    """Sub-block j's 6-bit scale and minimum in a Q4_K/Q5_K scales[12] field."""
    if j < 4:
        return sc[j] & 63, sc[j + 4] & 63
    return (sc[j + 4] & 15) | ((sc[j - 4] >> 6) << 4), (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4)


def dequant_block(tname, b):
    """The values of one block (ggml's reference layouts); floats for F32/F16/BF16 'blocks' of one value."""
    if tname == "F32":
        return [struct.unpack_from("<f", b)[0]]
    if tname == "F16":
        return [f16(b, 0)]
    if tname == "BF16":
        return [struct.unpack("<f", b"\0\0" + b[:2])[0]]
    if tname in ("Q4_0", "Q4_1"):
        d = f16(b, 0)
        m, qs, base = (f16(b, 2), b[4:20], 0) if tname == "Q4_1" else (0.0, b[2:18], 8)
        return [d * ((q & 15) - base) + m for q in qs] + [d * ((q >> 4) - base) + m for q in qs]
    if tname in ("Q5_0", "Q5_1"):
        d = f16(b, 0)
        if tname == "Q5_1":
            m, qh, qs, base = f16(b, 2), struct.unpack_from("<I", b, 4)[0], b[8:24], 0
        else:
            m, qh, qs, base = 0.0, struct.unpack_from("<I", b, 2)[0], b[6:22], 16
        lo = [d * (((q & 15) | (((qh >> j) & 1) << 4)) - base) + m for j, q in enumerate(qs)]
        hi = [d * (((q >> 4) | (((qh >> (j + 16)) & 1) << 4)) - base) + m for j, q in enumerate(qs)]
        return lo + hi
    if tname == "Q8_0":
        d = f16(b, 0)
        return [d * q for q in struct.unpack_from("<32b", b, 2)]
    if tname in ("Q4_K", "Q5_K"):
        d, dmin, sc = f16(b, 0), f16(b, 2), b[4:16]
        qh, qs = (b[16:48], b[48:176]) if tname == "Q5_K" else (None, b[16:144])
        out = []
        for g in range(4):
            for half in range(2):
                s, mn = k_scale_min(sc, 2 * g + half)
                for i in range(32):
                    q = (qs[32 * g + i] >> (4 * half)) & 15
                    if qh is not None:
                        q |= ((qh[i] >> (2 * g + half)) & 1) << 4
                    out.append(d * s * q - dmin * mn)
        return out
    if tname == "Q6_K":
        ql, qh, sc, d = b[0:128], b[128:192], struct.unpack_from("<16b", b, 192), f16(b, 208)
        out = [0.0] * 256
        for n in range(2):
            for l in range(32):
                i = 128 * n + l
                L, H = ql[64 * n:], qh[32 * n:]
                q1 = ((L[l] & 15) | (((H[l] >> 0) & 3) << 4)) - 32
                q2 = ((L[l + 32] & 15) | (((H[l] >> 2) & 3) << 4)) - 32
                q3 = ((L[l] >> 4) | (((H[l] >> 4) & 3) << 4)) - 32
                q4 = ((L[l + 32] >> 4) | (((H[l] >> 6) & 3) << 4)) - 32
                s = sc[8 * n + l // 16:]
                out[i], out[i + 32], out[i + 64], out[i + 96] = (d * s[0] * q1, d * s[2] * q2,
                                                                  d * s[4] * q3, d * s[6] * q4)
        return out
    raise ValueError("type %s is not supported by shaped_model.py" % tname)


def sample_stats(tname, data, n_blocks=SAMPLE_BLOCKS):
    """Mean and RMS of the values of up to n_blocks blocks spread over a tensor's bytes."""
    _, bs, ts, _ = TYPES[TYPE_IDS[tname]]
    total = len(data) // ts
    if tname in ("F32", "F16", "BF16"):
        n_blocks = n_blocks * 32     # one value per 'block'
    step = max(1, total // n_blocks)
    vals = []
    for k in range(0, total, step):
        vals += dequant_block(tname, data[k * ts:(k + 1) * ts])
    mean = sum(vals) / len(vals)
    rms = math.sqrt(sum(v * v for v in vals) / len(vals))
    return mean, rms


def describe(path):
    """The description of a model file (a dict, written as JSON)."""
    r = Reader(path)
    keys, dropped = [], []
    for kv in r.kvs:
        key, vt, val = kv[0], kv[1], kv[2]
        if key.startswith("tokenizer.") or (vt.startswith("arr") and val is None):
            dropped.append(key)
            continue
        keys.append([key, vt, val])
    tensors = []
    for t in r.tensors:
        mean, rms = sample_stats(t["type"], r.tensor_bytes(t))
        tensors.append({"name": t["name"], "type": t["type"], "shape": t["shape"],
                        "mean": float("%.6g" % mean), "rms": float("%.6g" % rms)})
    return {"source": os.path.basename(os.path.realpath(path)), "file_bytes": len(r.buf),
            "dropped_keys": dropped, "keys": keys, "tensors": tensors}


# ---- writing -------------------------------------------------------------

def normal_quantiles(n=256):
    """n standard normal quantiles at (i + 0.5) / n, in a fixed shuffled order."""
    qs = []
    for i in range(n):
        p = (i + 0.5) / n
        # inverse of the normal CDF by bisection on math.erf (n is small)
        lo, hi = -8.0, 8.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
                lo = mid
            else:
                hi = mid
        qs.append((lo + hi) / 2)
    random.Random(12345).shuffle(qs)
    return qs


NORMAL = normal_quantiles()

# Spread of the per-block scale around the base scale (lognormal sigma).
SCALE_SIGMA = 0.3

# Per-block scale factors exp(sigma * z) and the mean of their squares.
SCALE_FACTORS = [math.exp(SCALE_SIGMA * z) for z in NORMAL]
SCALE_MS = sum(f * f for f in SCALE_FACTORS) / len(SCALE_FACTORS)


def f16_tables(values):
    """Two translate tables (low byte, high byte) mapping a key byte to fp16 values[key]."""
    raw = [struct.pack("<e", v) for v in values]
    return bytes(b[0] for b in raw), bytes(b[1] for b in raw)


def put_f16(raw, off, ts, key, values):
    """Write fp16 values[key byte] at byte off of every block."""
    lo, hi = f16_tables(values)
    raw[off::ts] = key.translate(lo)
    raw[off + 1::ts] = key.translate(hi)


def k_scale_tables(rng, q_mean, ratio):
    """Q4_K/Q5_K scales[12] as 12 translate tables over 4 key bytes (one per sub-block pair j, j+4).

    Each key picks scales sc in [16, 63] for sub-blocks j and j + 4 and minimums
    m = round(sc * q_mean / ratio) (dmin = ratio * d, so values centre on zero).
    Returns the tables (byte position -> (key index, table)) and the mean of
    E[(sc q - ratio m)^2] / E over uniform q, per unit d^2, for calibration.
    """
    tabs = {}
    combos = []
    for j in range(4):
        t_a, t_b, t_c = bytearray(256), bytearray(256), bytearray(256)
        for r in range(256):
            s0, s1 = rng.randint(16, 63), rng.randint(16, 63)
            m0, m1 = min(63, round(s0 * q_mean / ratio)), min(63, round(s1 * q_mean / ratio))
            t_a[r] = (s0 & 63) | ((s1 >> 4) << 6)
            t_b[r] = (m0 & 63) | ((m1 >> 4) << 6)
            t_c[r] = (s1 & 15) | ((m1 & 15) << 4)
            combos += [(s0, m0), (s1, m1)]
        tabs[j], tabs[j + 4], tabs[j + 8] = (j, bytes(t_a)), (j, bytes(t_b)), (j, bytes(t_c))
    return tabs, combos


def k_quant_ms(combos, ratio, q_levels):
    """Mean of (sc q - ratio m)^2 over the combos and uniform q in [0, q_levels)."""
    eq = (q_levels - 1) / 2
    eq2 = sum(q * q for q in range(q_levels)) / q_levels
    return sum(s * s * eq2 - 2 * s * ratio * m * eq + ratio * ratio * m * m for s, m in combos) / len(combos)


def quant_data(tname, shape, rms, rng):
    """Bytes of a quantized tensor whose values have about the given RMS."""
    tid = TYPE_IDS[tname]
    _, bs, ts, _ = TYPES[tid]
    nbytes = tensor_nbytes(tid, shape)
    nb = nbytes // ts
    raw = bytearray(rng.randbytes(nbytes))
    key = bytes(rng.randbytes(nb))
    rms = rms if rms > 0 else 1e-3
    if tname in ("Q4_0", "Q5_0", "Q8_0"):
        k = {"Q4_0": 21.5, "Q5_0": 85.5, "Q8_0": 5461.5}[tname]
        d0 = rms / math.sqrt(k * SCALE_MS)
        put_f16(raw, 0, ts, key, [d0 * f for f in SCALE_FACTORS])
    elif tname in ("Q4_1", "Q5_1"):
        levels = 16 if tname == "Q4_1" else 32
        d0 = rms / math.sqrt((levels * levels - 1) / 12 * SCALE_MS)
        ds = [d0 * f for f in SCALE_FACTORS]
        put_f16(raw, 0, ts, key, ds)
        put_f16(raw, 2, ts, key, [-(levels - 1) / 2 * d for d in ds])
    elif tname in ("Q4_K", "Q5_K"):
        levels = 16 if tname == "Q4_K" else 32
        ratio = levels / 2.0
        tabs, combos = k_scale_tables(rng, (levels - 1) / 2, ratio)
        d0 = rms / math.sqrt(k_quant_ms(combos, ratio, levels) * SCALE_MS)
        ds = [d0 * f for f in SCALE_FACTORS]
        put_f16(raw, 0, ts, key, ds)
        put_f16(raw, 2, ts, key, [ratio * d for d in ds])
        keys = [bytes(rng.randbytes(nb)) for _ in range(4)]
        for pos, (j, tab) in tabs.items():
            raw[4 + pos::ts] = keys[j].translate(tab)
    elif tname == "Q6_K":
        tab = bytes(rng.randint(16, 127) for _ in range(256))
        ms = sum(s * s for s in tab) / 256
        d0 = rms / math.sqrt(341.5 * ms * SCALE_MS)
        for i in range(16):
            raw[192 + i::ts] = bytes(raw[192 + i::ts]).translate(tab)
        put_f16(raw, 208, ts, key, [d0 * f for f in SCALE_FACTORS])
    else:
        raise ValueError("type %s is not supported by shaped_model.py" % tname)
    return bytes(raw)


def float_data(tname, shape, mean, rms, rng):
    """Bytes of an F32/F16/BF16 tensor: values from normal quantiles with this mean and RMS."""
    n = 1
    for d in shape:
        n *= d
    std = math.sqrt(max(rms * rms - mean * mean, 0.0))
    vals = [mean + std * z for z in NORMAL]
    if tname == "F32":
        packed = [struct.pack("<f", v) for v in vals]
    elif tname == "F16":
        packed = [struct.pack("<e", v) for v in vals]
    else:
        packed = [struct.pack("<f", v)[2:] for v in vals]
    es = len(packed[0])
    key = bytes(rng.randbytes(n))
    raw = bytearray(n * es)
    for b in range(es):
        raw[b::es] = key.translate(bytes(p[b] for p in packed))
    return bytes(raw)


def float_description(desc):
    """The description with every quantized tensor stored as F32 (same shapes and value statistics)."""
    return dict(desc, tensors=[dict(t, type="F32") if t["type"] not in ("F32", "F16", "BF16") else t
                               for t in desc["tensors"]])


def reduce_description(desc, layers, vocab):
    """The description cut to the first `layers` blocks and a vocabulary of `vocab` tokens."""
    arch = dict((k[0], k[2]) for k in desc["keys"]).get("general.architecture", "llama")
    keys = []
    for key, vt, val in desc["keys"]:
        if layers is not None and key == arch + ".block_count":
            val = min(val, layers)
        if vocab is not None and key == arch + ".vocab_size":
            val = vocab
        keys.append([key, vt, val])
    tensors = []
    for t in desc["tensors"]:
        t = dict(t)
        if layers is not None and t["name"].startswith("blk.") and int(t["name"].split(".")[1]) >= layers:
            continue
        if vocab is not None and t["name"] in ("token_embd.weight", "output.weight"):
            t["shape"] = [t["shape"][0], vocab]
        tensors.append(t)
    return dict(desc, keys=keys, tensors=tensors)


def tokenizer_keys(path):
    """Every tokenizer.* key of a GGUF file, arrays whole: [key, vtype, value]."""
    return [kv[:3] for kv in Reader(path, whole_arrays=True).kvs if kv[0].startswith("tokenizer.")]


def write_tokenizer(model, out):
    """A GGUF of model's tokenizer keys and no tensors (a few MB: it travels where the model cannot)."""
    w = GGUFWriter(version=3, alignment=None, seed=0)
    for key, vt, val in tokenizer_keys(model):
        w.add_kv(key, vt, val)
    return w.write(out)


def shaped_writer(desc, seed, tokenizer=None):
    """A GGUFWriter holding the shaped model of a description (with the tokenizer keys of file `tokenizer`)."""
    rng = random.Random(seed)
    align = dict((k[0], k[2]) for k in desc["keys"]).get("general.alignment")
    w = GGUFWriter(version=3, alignment=None, seed=seed)
    for key, vt, val in desc["keys"]:
        w.add_kv(key, vt, val)
    if tokenizer:
        for key, vt, val in tokenizer_keys(tokenizer):
            w.add_kv(key, vt, val)
    w.add_kv("lmgen.shaped_from", "str", desc["source"])
    w.add_kv("lmgen.shaped_seed", "u32", seed)
    if align is not None:
        w.alignment = align
    for t in desc["tensors"]:
        if t["type"] in ("F32", "F16", "BF16"):
            data = float_data(t["type"], t["shape"], t["mean"], t["rms"], rng)
        else:
            data = quant_data(t["type"], t["shape"], t["rms"], rng)
        w.add_tensor(t["name"], t["type"], t["shape"], data=data)
    return w


def check(desc, path):
    """Compare a shaped file with its description: keys, tensors, and RMS within 25%; problems listed."""
    r = Reader(path)
    problems = []
    have = dict((t["name"], t) for t in r.tensors)
    if len(r.tensors) != len(desc["tensors"]):
        problems.append("%d tensors, description has %d" % (len(r.tensors), len(desc["tensors"])))
    kv = dict((k[0], k[2]) for k in r.kvs)
    for key, vt, val in desc["keys"]:
        if kv.get(key) != val and not (isinstance(val, float) and abs(kv.get(key, 0) - val) < 1e-6 * abs(val)):
            problems.append("key %s is %r, description has %r" % (key, kv.get(key), val))
    worst = 0.0
    for t in desc["tensors"]:
        h = have.get(t["name"])
        if h is None or h["type"] != t["type"] or h["shape"] != t["shape"]:
            problems.append("tensor %s: %s, description has %s %s" % (
                t["name"], h and (h["type"], h["shape"]), t["type"], t["shape"]))
            continue
        mean, rms = sample_stats(h["type"], r.tensor_bytes(h))
        if not (math.isfinite(rms) and t["rms"] > 0):
            problems.append("tensor %s: rms %r" % (t["name"], rms))
            continue
        ratio = rms / t["rms"]
        worst = max(worst, abs(math.log(ratio)))
        if not 0.75 < ratio < 1.25:
            problems.append("tensor %s (%s): rms %.4g, real %.4g" % (t["name"], t["type"], rms, t["rms"]))
    return problems, math.exp(worst)


def main(argv=None):
    """Command line entry point."""
    ap = argparse.ArgumentParser(description="describe a GGUF model, or write a shaped one from a description")
    ap.add_argument("args", nargs="+", help="DESC.json OUT.gguf, or with --describe MODEL.gguf")
    ap.add_argument("--describe", action="store_true", help="print the description of MODEL.gguf")
    ap.add_argument("--check", action="store_true", help="compare OUT.gguf with DESC.json")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--layers", type=int, default=None, help="keep only the first N blocks")
    ap.add_argument("--vocab", type=int, default=None, help="cut the vocabulary to N tokens")
    ap.add_argument("--tokenizer", metavar="FILE.gguf",
                    help="copy the tokenizer keys of FILE (a model, or a file --extract-tokenizer wrote)")
    ap.add_argument("--extract-tokenizer", action="store_true",
                    help="MODEL.gguf OUT.gguf: write only MODEL's tokenizer keys")
    ap.add_argument("--float", action="store_true",
                    help="store quantized tensors as F32 (the CPU then multiplies without quantizing activations)")
    a = ap.parse_args(argv)
    if a.describe:
        json.dump(describe(a.args[0]), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    if len(a.args) != 2:
        ap.error("need DESC.json and OUT.gguf")
    if a.extract_tokenizer:
        n = write_tokenizer(a.args[0], a.args[1])
        print("%s: %d bytes, the tokenizer of %s" % (a.args[1], n, a.args[0]))
        return 0
    with open(a.args[0]) as f:
        desc = json.load(f)
    if a.layers is not None or a.vocab is not None:
        desc = reduce_description(desc, a.layers, a.vocab)
    if a.float:
        desc = float_description(desc)
    if a.check:
        problems, worst = check(desc, a.args[1])
        for p in problems:
            print("shaped_model: " + p)
        print("shaped_model: %s: %s (tensor RMS within x%.3f of the real)" % (
            a.args[1], "FAILED" if problems else "matches its description", worst))
        return 1 if problems else 0
    n = shaped_writer(desc, a.seed, a.tokenizer).write(a.args[1])
    print("%s: %d bytes, shaped like %s (seed %d)" % (a.args[1], n, desc["source"], a.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
