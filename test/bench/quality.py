#!/usr/bin/env python3
"""Quality benchmark for lmgen's SQL functions summarize() and classify().

Design note.  This is a program that prints numbers, not a test.  It talks to
PostgreSQL only through `psql` subprocesses (standard library only, no
driver), so what it measures is exactly what a user's query gets:

  1. It connects with the usual libpq environment (PGHOST, PGPORT, ...), with
     --dsn, or with --temp, which initdb's a throwaway cluster in a temporary
     directory (shared_preload_libraries = 'lmgen', unix socket only), runs
     CREATE EXTENSION lmgen and removes the cluster at the end.  initdb
     refuses to run as root, so as root --temp re-runs this program as the
     `postgres` user (LMGEN_BENCH_USER to choose another).
  2. Each task loads its CSV (columns found from the header) into a table
     with psql's \\copy, then runs ONE query over the table, e.g.
     `SELECT id, summarize(description) FROM t`, so the server does all the
     model work; psql's \\timing gives the query's wall time (a warm-up call
     before it loads the model, so load time is not counted).  Results come
     back through `\\g (format=csv) file` and are scored here.
  3. Summaries are scored with ROUGE-L F1 (longest common subsequence over
     lowercased word tokens, beta = 1) against the reference synopsis,
     averaged over rows, beside the description's first sentence as a
     baseline; --dev N takes a fixed sample of the training file instead of
     the public file, to tune on (--dev-set test: of the test file's rows
     not in the public file).  --summary-examples gives headlines
     examples => (description, synopsis) rows of the training file, less
     every row whose package or description equals a measured row's, and
     prints what the nearest pool row's synopsis alone would score.  Classification is scored with accuracy,
     macro-F1 over the label set and the most frequent confusions; its modes
     are zero-shot, descriptions, and 4 examples from the training file
     (retrieved as lmgen.classify_retrieval says, or forced to word overlap
     or embedding), on the test file or, for tuning, on a development subset
     of the training file (--classify-set dev) left out of the examples.

--dry-run replaces the model calls with stub SQL (left(description, 60) as
the summary, the first label as the class) so that every other part can be
exercised without the functions; --self-test checks the metrics and the CSV
handling against hand-computed cases and needs no server at all.
"""

import argparse
import collections
import csv
import io
import os
import pwd
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DATA = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data")
SUMMARY_FILE = "summaries_public.csv"
CLASSIFY_FILE = "debian_packages_test.csv"
TRAIN_FILE = "debian_packages_train.csv"
BENCH_SCHEMA = "lmgen_bench"

# Column names accepted for each role, in order of preference.
TEXT_COLUMNS = ("description", "body", "text")
REF_COLUMNS = ("synopsis", "summary", "reference")
LABEL_COLUMNS = ("section", "label", "category", "class")
NAME_COLUMNS = ("package", "name", "title")

# Readable forms of Debian section names (--label-style words).
SECTION_WORDS = {
    "admin": "system administration",
    "cli-mono": "Mono and CLI",
    "comm": "communication",
    "database": "databases",
    "debug": "debugging symbols",
    "devel": "software development",
    "doc": "documentation",
    "editors": "text editors",
    "education": "education",
    "electronics": "electronics",
    "embedded": "embedded systems",
    "fonts": "fonts",
    "games": "games",
    "gnome": "GNOME desktop",
    "gnu-r": "GNU R statistics",
    "gnustep": "GNUstep",
    "golang": "Go programming language",
    "graphics": "graphics",
    "hamradio": "amateur radio",
    "haskell": "Haskell programming language",
    "httpd": "web servers",
    "interpreters": "interpreters",
    "introspection": "GObject introspection",
    "java": "Java",
    "javascript": "JavaScript",
    "kde": "KDE desktop",
    "kernel": "operating system kernel",
    "libdevel": "library development files",
    "libs": "libraries",
    "lisp": "Lisp",
    "localization": "localization",
    "mail": "email",
    "math": "mathematics",
    "metapackages": "metapackages",
    "misc": "miscellaneous",
    "net": "networking",
    "news": "Usenet news",
    "ocaml": "OCaml",
    "oldlibs": "obsolete libraries",
    "otherosfs": "other operating systems and file systems",
    "perl": "Perl",
    "php": "PHP",
    "python": "Python",
    "ruby": "Ruby",
    "rust": "Rust programming language",
    "science": "science",
    "shells": "command shells",
    "sound": "sound and audio",
    "tex": "TeX typesetting",
    "text": "text processing",
    "utils": "utilities",
    "vcs": "version control",
    "video": "video",
    "web": "web",
    "x11": "X Window System",
    "xfce": "Xfce desktop",
    "zope": "Zope",
}


# One-line descriptions of the 16 Debian sections of the test file (--classify-modes
# descriptions), written from Debian policy's section list, not from the data.
SECTION_DESCRIPTIONS = {
    "admin": "system administration: managing users, disks, backups, services, monitoring",
    "database": "database servers, clients and tools",
    "editors": "text editors and word processors",
    "electronics": "electronic circuit design, simulation and hardware programming",
    "fonts": "font files and font tools",
    "games": "games, toys and entertainment programs",
    "graphics": "image viewing, editing, drawing and 3D graphics",
    "hamradio": "software for amateur (ham) radio operators",
    "mail": "email clients, servers, filters and mailing lists",
    "math": "mathematics: computer algebra, numerical computing, calculators",
    "net": "networking: daemons, clients, protocols, network tools",
    "science": "scientific software: physics, chemistry, biology, astronomy, data analysis",
    "sound": "audio players, recorders, editors, music and sound servers",
    "text": "text processing: formatting, conversion, search, dictionaries, spelling",
    "video": "video players, editors, encoders and streaming",
    "web": "web browsers, web servers, proxies and web applications",
}

# Words after which an English phrase is not finished: a summary ending on one
# of them (or on , ; : - / & or an open bracket) ends mid-phrase.  The same list
# as src/engine/summary_text.c.
DANGLING_WORDS = set("""a an the and or but nor of to in on at by for with from into onto as via than
that which who whose whom where when while if because so such this these those its their his her our
your my is are was were be been being has have had can could will would should may might must do does
did various several many some each every other both either including like about over under between
through per after before since until during without within against among across behind beyond upon
toward towards around unlike whether though although unless""".split())

# Packages of debian_packages_train.csv whose (description, synopsis) pairs are
# the headline examples of src/summary.c (HEADLINE_EXAMPLES): --dev leaves them
# out of its sample.
FEWSHOT_PACKAGES = ("blur-effect", "httpfs2", "miceamaze")

# Function words left out of the faithfulness figure (content words only).
STOP_WORDS = DANGLING_WORDS | set("""it they we you i he she them us not no also s""".split())


class BenchError(Exception):
    """A failure the user can act on: printed as one line, exit status 1."""


# ---------------------------------------------------------------- metrics --

# Lowercased word tokens of a text (runs of letters, digits and underscores).
def word_tokens(text):
    return re.findall(r"\w+", (text or "").lower())


# Length of the longest common subsequence of two token lists.
def lcs_length(a, b):
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[len(b)]


# ROUGE-L F1 (beta = 1) of a candidate against a reference; 0 when either is empty.
def rouge_l_f1(candidate, reference):
    c, r = word_tokens(candidate), word_tokens(reference)
    if not c or not r:
        return 0.0
    lcs = lcs_length(c, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(c), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


# Whether a summary ends mid-phrase (the rule of src/engine/summary_text.c).
def ends_mid_phrase(text):
    s = (text or "").rstrip()
    if not s:
        return False
    if s[-1] in ",;:-/&([\u2013\u2014":
        return True
    if s.count("(") > s.count(")") or s.count("[") > s.count("]") or s.count('"') % 2:
        return True
    if s[-1] in ".!?)":
        return False
    # the last word without the punctuation around it ("COIN-OR" is one word, not "or")
    word = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", s.split()[-1])
    return word.lower() in DANGLING_WORDS


# The description's first sentence with hard-wrapped lines joined: through the
# first '.', '!' or '?' that follows two words or more and is followed by
# whitespace or the end, else its first paragraph (the baseline summary; the
# rule of lm_text_first_sentence in src/engine/summary_text.c).
def first_sentence(text):
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*(?:\.\s*)?\n|\n\s*\.\s*(?:\n|$)", text or "")]
    first = next((p for p in paras if p), "")
    for m in re.finditer(r"[.!?](?=\s|$)", first):
        if len(first[: m.start()].split()) >= 2:
            return first[: m.end()]
    return first


# Share of a summary's content words (not function words) that occur in the
# source, or None when it has none.
def faithfulness(summary, source):
    src = set(word_tokens(source))
    content = [w for w in word_tokens(summary) if w not in STOP_WORDS]
    if not content:
        return None
    return sum(1 for w in content if w in src) / len(content)


# Accuracy, macro-F1 over `labels`, and per-label (precision, recall, f1, support).
def classification_scores(gold, pred, labels):
    if not gold:
        return 0.0, 0.0, {}
    correct = sum(1 for g, p in zip(gold, pred) if g == p)
    per_label = {}
    for lab in labels:
        tp = sum(1 for g, p in zip(gold, pred) if g == lab and p == lab)
        fp = sum(1 for g, p in zip(gold, pred) if g != lab and p == lab)
        fn = sum(1 for g, p in zip(gold, pred) if g == lab and p != lab)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_label[lab] = (prec, rec, f1, tp + fn)
    # Macro average over the labels that occur in the gold set or the predictions.
    used = [lab for lab in labels if per_label[lab][3] or lab in pred]
    macro = sum(per_label[lab][2] for lab in used) / len(used) if used else 0.0
    return correct / len(gold), macro, per_label


# The n most frequent (gold, predicted, count) confusions, ties by name.
def top_confusions(gold, pred, n=5):
    counts = collections.Counter((g, p) for g, p in zip(gold, pred) if g != p)
    return [(g, p, c) for (g, p), c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


# ------------------------------------------------------------------- data --

# Index of the first header column named like one of `candidates` (case-insensitive).
def find_column(header, candidates, what, path):
    lowered = [h.strip().lower() for h in header]
    for cand in candidates:
        if cand in lowered:
            return lowered.index(cand)
    raise BenchError("%s: no %s column (looked for %s; header is %s)"
                     % (path, what, "/".join(candidates), ",".join(header)))


# Rows of a CSV file as dicts with keys name, text, ref and label (those found).
def read_dataset(path, need_ref=False, need_label=False):
    if not os.path.isfile(path):
        raise BenchError("%s: no such file (use --data DIR)" % path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise BenchError("%s: empty file" % path)
        cols = {"text": find_column(header, TEXT_COLUMNS, "text", path)}
        if need_ref:
            cols["ref"] = find_column(header, REF_COLUMNS, "reference summary", path)
        if need_label:
            cols["label"] = find_column(header, LABEL_COLUMNS, "label", path)
        try:
            cols["name"] = find_column(header, NAME_COLUMNS, "name", path)
        except BenchError:
            pass
        rows = []
        for lineno, rec in enumerate(reader, 2):
            if not rec:
                continue
            if len(rec) != len(header):
                raise BenchError("%s: record %d has %d fields, header has %d"
                                 % (path, lineno, len(rec), len(header)))
            rows.append({k: rec[i] for k, i in cols.items()})
    return [dict(r, id=i) for i, r in enumerate(rows, 1)]


# First `limit` rows, taken round-robin across labels so every label shows up.
def stratified(rows, limit):
    if limit is None or limit >= len(rows):
        return list(rows)
    by_label = collections.OrderedDict()
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    out, depth = [], 0
    while len(out) < limit:
        for group in by_label.values():
            if depth < len(group) and len(out) < limit:
                out.append(group[depth])
        depth += 1
    return sorted(out, key=lambda r: r["id"])


# CSV text (no header) of the columns (id, name, text, ref, label) for \copy.
def rows_to_copy_csv(rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for r in rows:
        w.writerow([r["id"], r.get("name", ""), r["text"], r.get("ref", ""), r.get("label", "")])
    return buf.getvalue()


# The label text handed to classify() for a raw section name.
def label_text(section, style):
    return SECTION_WORDS.get(section, section) if style == "words" else section


# A SQL string literal.
def sql_literal(s):
    return "'" + s.replace("'", "''") + "'"


# A SQL text[] constructor for a list of strings.
def sql_array(items):
    return "ARRAY[" + ", ".join(sql_literal(s) for s in items) + "]::text[]"


# Milliseconds from the last "Time: N ms" line psql's \timing printed.
def parse_psql_timing(stdout, which=-1):
    found = re.findall(r"^Time: ([0-9]+(?:\.[0-9]+)?) ms", stdout, re.M)
    if len(found) < -which:
        raise BenchError("psql printed no \\timing line; output was: %r" % stdout[-500:])
    return float(found[which])


# ----------------------------------------------------------------- server --

class Server:
    """How to reach a server with psql (and, with --temp, the cluster itself)."""

    def __init__(self, psql, conn_args, env, workdir):
        self.psql = psql            # path of the psql binary
        self.conn_args = conn_args  # psql options that select the server and database
        self.env = env              # environment for psql (libpq variables)
        self.workdir = workdir      # private temporary directory for files
        self.cluster = None         # TempCluster when --temp, else None

    # Run a psql script; returns stdout.  Raises BenchError with psql's message on failure.
    def run_script(self, script, extra=(), timeout=None):
        cmd = [self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1"] + list(extra) + self.conn_args
        try:
            p = subprocess.run(cmd, input=script, capture_output=True, text=True,
                               env=self.env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError("psql timed out after %s s" % timeout)
        if p.returncode != 0:
            msg = "psql failed (exit %d): %s" % (p.returncode, p.stderr.strip()[-2000:])
            if self.cluster is not None:
                msg += "\n" + self.cluster.log_tail()
            raise BenchError(msg)
        return p.stdout

    # Rows of one query as lists of strings (unaligned, tab-free CSV output).
    def query(self, sql):
        out = self.run_script(sql + "\n", extra=["--csv", "-t"])
        return list(csv.reader(io.StringIO(out)))


class TempCluster:
    """A throwaway cluster in a temporary directory, reached by unix socket only."""

    def __init__(self, bindir, base, threads):
        self.bindir = bindir                    # PostgreSQL binaries (pg_config --bindir)
        self.base = base                        # temporary directory owning everything
        self.datadir = os.path.join(base, "db")  # the cluster's data directory
        self.sockdir = base                     # unix socket directory
        self.log = os.path.join(base, "server.log")  # server log
        self.threads = threads                  # lmgen.threads to configure, or None
        self.started = False                    # whether pg_ctl start succeeded

    # initdb, configure lmgen preload and start; raises BenchError with the log on failure.
    def start(self):
        user = pwd.getpwuid(os.geteuid()).pw_name
        run_checked([os.path.join(self.bindir, "initdb"), "-D", self.datadir, "-A", "trust",
                     "-U", user, "-E", "UTF8", "--locale=C", "--no-sync"], "initdb")
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# lmgen quality benchmark\n"
                    "listen_addresses = ''\n"
                    "unix_socket_directories = '%s'\n"
                    "shared_preload_libraries = 'lmgen'\n"
                    "fsync = off\n"
                    "max_connections = 20\n" % self.sockdir)
        p = subprocess.run([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir,
                            "-l", self.log, "-w", "-t", "60", "start"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise BenchError("pg_ctl start failed: %s\n%s" % (p.stderr.strip(), self.log_tail()))
        self.started = True

    # psql connection options for the cluster's postgres database.
    def conn_args(self):
        return ["-h", self.sockdir, "-d", "postgres",
                "-U", pwd.getpwuid(os.geteuid()).pw_name]

    # Stop the server (fast, then immediate) and remove the directory.
    def stop(self):
        if self.started:
            pg_ctl = os.path.join(self.bindir, "pg_ctl")
            p = subprocess.run([pg_ctl, "-D", self.datadir, "-m", "fast", "-w", "-t", "30", "stop"],
                               capture_output=True, text=True)
            if p.returncode != 0:
                subprocess.run([pg_ctl, "-D", self.datadir, "-m", "immediate", "stop"],
                               capture_output=True, text=True)
            self.started = False
        shutil.rmtree(self.base, ignore_errors=True)

    # Last lines of the server log, for error messages.
    def log_tail(self, n=20):
        try:
            with open(self.log, errors="replace") as f:
                return "server log:\n" + "".join(f.readlines()[-n:])
        except OSError:
            return "(no server log)"


# Run a command; raise BenchError with its output when it fails.
def run_checked(cmd, what):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise BenchError("%s: %s" % (what, e))
    if p.returncode != 0:
        raise BenchError("%s failed (exit %d): %s" % (what, p.returncode,
                                                     (p.stderr or p.stdout).strip()[-2000:]))
    return p.stdout


# PostgreSQL's binary directory, from pg_config (or psql's directory).
def pg_bindir():
    if shutil.which("pg_config"):
        try:
            d = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
            if d and os.path.isfile(os.path.join(d, "psql")):
                return d
        except OSError:
            pass
    psql = shutil.which("psql")
    if not psql:
        raise BenchError("psql not found (install the PostgreSQL client or put it on PATH)")
    return os.path.dirname(os.path.realpath(psql))


# Whether any user can reach a file: every directory above it searchable by others.
def world_reachable(path):
    real = os.path.realpath(path)
    try:
        if not os.stat(real).st_mode & 0o005:
            return False
        d = os.path.dirname(real)
        while True:
            if not os.stat(d).st_mode & 0o001:
                return False
            if d == os.path.dirname(d):
                return True
            d = os.path.dirname(d)
    except OSError:
        return False


# As root, --temp re-runs this program as an unprivileged user; returns its exit status.
def rerun_unprivileged(argv):
    user = os.environ.get("LMGEN_BENCH_USER", "postgres")
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise BenchError("initdb cannot run as root and there is no user %r: run this program "
                         "as a non-root user, or set LMGEN_BENCH_USER" % user)
    me = os.path.abspath(__file__)
    if not world_reachable(me):
        raise BenchError("%s is not readable by user %s: copy test/bench/quality.py somewhere it can "
                         "read, or run it as a non-root user" % (me, user))
    python = next((p for p in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3")
                   if p and world_reachable(p)), None)
    if python is None:
        raise BenchError("no python3 that user %s can run: run this program as a non-root user" % user)
    inner = [python, me] + argv
    pw = pwd.getpwnam(user)
    print("running as root: re-running as user %s (initdb refuses root)" % user, flush=True)
    env = dict(os.environ, LMGEN_BENCH_REEXEC="1", HOME=pw.pw_dir, USER=user, LOGNAME=user)
    child = subprocess.Popen(inner, cwd="/tmp", env=env, user=pw.pw_uid, group=pw.pw_gid,
                             extra_groups=os.getgrouplist(user, pw.pw_gid))

    # Pass SIGTERM / SIGHUP on, so the child still removes its cluster.
    def forward(signum, frame):
        child.send_signal(signum)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            continue  # the child got the terminal's SIGINT too and cleans up


# ------------------------------------------------------------------ tasks --

# SQL text of a summarize() call on `arg` (a column or literal), or the dry-run stub.
def summarize_expr(arg, args, max_tokens=None, examples=None):
    if args.dry_run:
        return "left(%s, 60)" % arg
    parts = [arg]
    if max_tokens is None:
        max_tokens = args.max_tokens
    if max_tokens is not None:
        parts.append("max_tokens => %d" % max_tokens)
    if args.model:
        parts.append("model => %s" % sql_literal(args.model))
    if args.max_words is not None:
        parts.append("max_words => %d" % args.max_words)
    if getattr(args, "style", None):
        parts.append("style => %s" % sql_literal(args.style))
    if examples:
        parts.append("examples => %s" % sql_literal(examples))
    return "summarize(%s)" % ", ".join(parts)


# SQL text of a classify() call on `arg` with a label array, or the dry-run stub.
def classify_expr(arg, labels_sql, args, extra=""):
    if args.dry_run:
        return "(%s)[1]" % labels_sql
    if args.model:
        extra = ", model => %s%s" % (sql_literal(args.model), extra)
    return "classify(%s, %s%s)" % (arg, labels_sql, extra)


# Session settings every task script starts with.
def session_prelude(args, info):
    lines = ["SET client_min_messages = warning;"]
    if info.get("lmgen_loaded") and args.overflow:
        lines.append("SET lmgen.context_overflow = %s;" % sql_literal(args.overflow))
    if args.threads is not None and info.get("superuser") and info.get("lmgen_loaded"):
        lines.append("SET lmgen.threads = %d;" % args.threads)
    for s in args.set or []:
        if "=" not in s:
            raise BenchError("--set wants NAME=VALUE, got %r" % s)
        name, value = s.split("=", 1)
        lines.append("SET %s = %s;" % (name.strip(), sql_literal(value.strip())))
    return "\n".join(lines) + "\n"


# Load rows into BENCH_SCHEMA.<table>, run `SELECT id, <expr> FROM it` once, timed.
# Returns (results by id, query seconds).
def run_task(server, args, info, table, rows, expr, warmup_expr, tag):
    incsv = os.path.join(server.workdir, tag + "_in.csv")
    outcsv = os.path.join(server.workdir, tag + "_out.csv")
    with open(incsv, "w", encoding="utf-8", newline="") as f:
        f.write(rows_to_copy_csv(rows))
    script = session_prelude(args, info)
    if info["own_schema"]:
        qt = "%s.%s" % (BENCH_SCHEMA, table)
        script += "CREATE SCHEMA IF NOT EXISTS %s;\nDROP TABLE IF EXISTS %s;\n" % (BENCH_SCHEMA, qt)
        script += "CREATE TABLE %s" % qt
    else:
        qt = "pg_temp.%s" % table
        script += "CREATE TEMP TABLE %s" % table
    script += " (id integer PRIMARY KEY, name text, description text, reference text, label text);\n"
    script += "\\copy %s FROM %s WITH (FORMAT csv)\n" % (qt, sql_literal(incsv))
    script += "ANALYZE %s;\n" % qt
    script += "\\timing on\n"
    if warmup_expr and not args.no_warmup:
        script += "SELECT %s AS warmup \\g /dev/null\n" % warmup_expr
    script += "SELECT id, %s AS result FROM %s \\g (format=csv) %s\n" % (expr, qt, sql_literal(outcsv))
    script += "\\timing off\n"
    if not args.keep_tables and info["own_schema"]:
        script += "DROP TABLE %s;\n" % qt
    print("  running: SELECT id, %s FROM %s  (%d rows)" % (shorten(expr, 90), qt, len(rows)), flush=True)
    t0 = time.monotonic()
    out = server.run_script(script, timeout=args.timeout)
    wall = time.monotonic() - t0
    try:
        secs = parse_psql_timing(out) / 1000.0
        if warmup_expr and not args.no_warmup:
            print("  warm-up call (model load%s): %.2f s"
                  % (", examples read, and embedded by embedding retrieval" if "examples =>" in warmup_expr else "",
                     parse_psql_timing(out, -2) / 1000.0))
    except BenchError:
        secs = wall
    with open(outcsv, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["id", "result"]:
            raise BenchError("unexpected result header %r" % (header,))
        results = {int(rec[0]): rec[1] for rec in reader}
    if len(results) != len(rows):
        raise BenchError("query returned %d rows, expected %d" % (len(results), len(rows)))
    return results, secs


# One-line form of a text, cut to n characters.
def shorten(text, n):
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 3] + "..."


# The development sample of --dev: n rows drawn with a fixed seed from the
# training file's rows whose package is not in the public file and whose
# description is as long as the public file's (200..1300 characters), less
# any headline example drawn.  --dev-set test draws them from the test
# file's rows instead (the public file's 200 packages are test rows, the
# other 800 are not): for headlines with examples from the training file,
# whose rows lie as far from those as from the public file's (the nearest
# training row's synopsis scores ROUGE-L 0.19 there, 0.18 on the public
# file, 0.26 on training rows, which have close siblings in their own file).
def dev_sample(args, n):
    public = {r.get("name") for r in read_dataset(os.path.join(args.data, SUMMARY_FILE), need_ref=True)}
    source = CLASSIFY_FILE if getattr(args, "dev_set", "train") == "test" else TRAIN_FILE
    rows = [r for r in read_dataset(os.path.join(args.data, source), need_ref=True)
            if r.get("name") not in public and 200 <= len(r["text"]) <= 1300]
    rows = random.Random(13).sample(rows, min(n, len(rows)))
    rows = [r for r in rows if r.get("name") not in FEWSHOT_PACKAGES]
    return [dict(r, id=i) for i, r in enumerate(rows, 1)]


# The summarization task: returns a dict of figures.
def task_summarize(server, args, info):
    if args.dev:
        path = "%s (--dev sample)" % os.path.join(args.data, CLASSIFY_FILE if args.dev_set == "test" else TRAIN_FILE)
        rows = dev_sample(args, args.dev)
    else:
        path = os.path.join(args.data, SUMMARY_FILE)
        rows = read_dataset(path, need_ref=True)
    if args.limit is not None:
        rows = rows[: args.limit]
    print("\n== summarization: %s, %d rows" % (path, len(rows)), flush=True)
    examples = None
    pool = None
    if args.summary_examples and getattr(args, "style", None) == "headline":
        examples, pool = load_summary_examples(server, args, info, rows)
    expr = summarize_expr("description", args, examples=examples)
    warm = summarize_expr(sql_literal("PostgreSQL is a relational database system."), args, max_tokens=2,
                          examples=examples)
    results, secs = run_task(server, args, info, "summaries", rows, expr, warm, "summarize")
    scored = []
    for r in rows:
        s = results.get(r["id"], "")
        scored.append((rouge_l_f1(s, r["ref"]), r, s))
    n = len(scored)
    mean_f1 = sum(x[0] for x in scored) / n if n else 0.0
    mean_len = sum(len(word_tokens(x[2])) for x in scored) / n if n else 0.0
    ref_len = sum(len(word_tokens(x[1]["ref"])) for x in scored) / n if n else 0.0
    empty = sum(1 for x in scored if not x[2].strip())
    faith = [f for f in (faithfulness(x[2], x[1]["text"]) for x in scored) if f is not None]
    mean_faith = sum(faith) / len(faith) if faith else 0.0
    mid = sum(1 for x in scored if ends_mid_phrase(x[2])) / n if n else 0.0
    print("  rows %d   ROUGE-L F1 %.4f   %.3f rows/s (%.2f s)   summary %.1f words (reference %.1f)   empty %d"
          % (n, mean_f1, n / secs if secs else 0.0, secs, mean_len, ref_len, empty))
    print("  faithfulness (content words found in the source) %.4f   ending mid-phrase %.4f" % (mean_faith, mid))
    base = sum(rouge_l_f1(first_sentence(x[1]["text"]), x[1]["ref"]) for x in scored) / n if n else 0.0
    print("  baseline: the description's first sentence scores ROUGE-L F1 %.4f on these rows" % base)
    if pool:
        near = nearest_synopsis_baseline(pool, [x[1] for x in scored])
        print("  baseline: the synopsis of the pool row sharing most words (Jaccard), as the headline itself, "
              "scores ROUGE-L F1 %.4f" % near)
    by_score = sorted(scored, key=lambda x: (-x[0], x[1]["id"]))
    picks = []
    if by_score:
        for name, x in (("best", by_score[0]), ("median", by_score[len(by_score) // 2]),
                        ("worst", by_score[-1])):
            if all(x is not p[1] for p in picks):
                picks.append((name, x))
    for name, (f1, r, s) in picks:
        print("  example (%s, id %d, %s, ROUGE-L %.3f)" % (name, r["id"], r.get("name", "?"), f1))
        print("    description: %s" % shorten(r["text"], 160))
        print("    synopsis:    %s" % shorten(r["ref"], 160))
        print("    summary:     %s" % shorten(s, 240))
    if args.show_examples:
        print("  first %d summaries beside their sources:" % args.show_examples)
        for f1, r, s in scored[: args.show_examples]:
            print("    | %s | %s | %s |" % (shorten(r["text"], 200), r["ref"], s))
    return {"rows": n, "rouge_l_f1": mean_f1, "rows_per_s": n / secs if secs else 0.0,
            "seconds": secs, "summary_words": mean_len, "reference_words": ref_len,
            "empty": empty, "faithfulness": mean_faith, "mid_phrase": mid, "first_sentence": base}


# The zero-shot classification task for one label style: returns a dict of figures.
def task_classify(server, args, info, style, mode="zero"):
    path, all_rows = classify_rows(args)
    sections = sorted({r["label"] for r in all_rows})
    rows = stratified(all_rows, args.limit) if args.sample == "stratified" else all_rows[: args.limit]
    texts = [label_text(s, style) for s in sections]
    if len(set(texts)) != len(texts):
        raise BenchError("label style %s maps two sections to the same text" % style)
    back = dict(zip(texts, sections))
    print("\n== classification (%s labels): %s, %d of %d rows, %s sample"
          % (style, path, len(rows), len(all_rows), args.sample), flush=True)
    print("  %d sections: %s" % (len(sections), ", ".join(sections)))
    if style != "raw":
        print("  label texts: %s" % ", ".join("%s=%r" % (s, t) for s, t in zip(sections, texts)))
    labels_sql = sql_array(texts)
    extra = ""
    if mode == "descriptions":
        extra = ", descriptions => %s" % sql_array([SECTION_DESCRIPTIONS.get(s, s) for s in sections])
    elif mode.startswith("examples"):
        extra = ", examples => %s" % sql_literal(load_examples(server, args, info, sections, style, rows))
    print("  mode: %s" % mode)
    expr = classify_expr("description", labels_sql, args, extra)
    warm = classify_expr(sql_literal("A game about racing penguins."), labels_sql, args, extra)
    saved_set = args.set
    if mode in ("examples-overlap", "examples-embedding"):
        args.set = (args.set or []) + ["lmgen.classify_retrieval=" + mode.split("-")[1]]
    try:
        results, secs = run_task(server, args, info, "packages", rows, expr, warm, "classify_" + style)
    finally:
        args.set = saved_set
    gold = [r["label"] for r in rows]
    pred = [back.get(results.get(r["id"], ""), "(other: %s)" % shorten(results.get(r["id"], ""), 20))
            for r in rows]
    invalid = sum(1 for p in pred if p not in sections)
    acc, macro, per_label = classification_scores(gold, pred, sections)
    conf = top_confusions(gold, pred, 5)
    majority = collections.Counter(gold).most_common(1)[0] if gold else ("-", 0)
    n = len(rows)
    print("  rows %d   accuracy %.4f   macro-F1 %.4f   %.3f rows/s (%.2f s)   not a label %d"
          % (n, acc, macro, n / secs if secs else 0.0, secs, invalid))
    print("  majority-class baseline (%s): accuracy %.4f" % (majority[0], majority[1] / n if n else 0))
    print("  per label (precision/recall/F1, support):")
    for lab in sections:
        p, r, f, sup = per_label[lab]
        if sup or lab in pred:
            print("    %-12s %.2f / %.2f / %.2f  (%d)" % (lab, p, r, f, sup))
    print("  top confusions (gold -> predicted: count):")
    for g, p, c in conf:
        print("    %s -> %s: %d" % (g, p, c))
    pred_counts = collections.Counter(pred).most_common(5)
    print("  most predicted: %s" % ", ".join("%s %d" % kv for kv in pred_counts))
    return {"rows": n, "accuracy": acc, "macro_f1": macro, "rows_per_s": n / secs if secs else 0.0,
            "seconds": secs, "invalid": invalid, "confusions": conf, "sections": sections}


# The rows classification is measured on: the test file, or (--classify-set dev)
# the training file, whose first rows per section (the stratified sample) are
# then the development subset and are left out of the examples.
def classify_rows(args):
    path = os.path.join(args.data, TRAIN_FILE if args.classify_set == "dev" else CLASSIFY_FILE)
    return path, read_dataset(path, need_label=True)


# Load a stratified sample of the training file (--examples-pool rows, 0: all)
# as the examples table, without the rows being classified; returns the
# examples query.
def load_examples(server, args, info, sections, style, measured):
    path = os.path.join(args.data, TRAIN_FILE)
    rows = [r for r in read_dataset(path, need_label=True) if r["label"] in sections]
    if args.classify_set == "dev":
        held = {r["id"] for r in measured}
        rows = [r for r in rows if r["id"] not in held]
    rows = stratified(rows, args.examples_pool or None)
    for r in rows:
        r["label"] = label_text(r["label"], style)
    qt = load_rows_table(server, args, info, rows, "examples")
    print("  examples: %d rows of %s (stratified) in %s, 4 most similar per row" % (len(rows), path, qt))
    return "SELECT description, label FROM %s ORDER BY id" % qt


# Copy rows (id, name, text, reference, label) into a fresh table named
# <schema>.<name> (or public.lmgen_bench_<name>); returns the table's name.
def load_rows_table(server, args, info, rows, name):
    incsv = os.path.join(server.workdir, "%s_in.csv" % name)
    with open(incsv, "w", encoding="utf-8", newline="") as f:
        f.write(rows_to_copy_csv(rows))
    qt = "%s.%s" % (BENCH_SCHEMA, name) if info["own_schema"] else "public.lmgen_bench_%s" % name
    script = session_prelude(args, info)
    if info["own_schema"]:
        script += "CREATE SCHEMA IF NOT EXISTS %s;\n" % BENCH_SCHEMA
    script += "DROP TABLE IF EXISTS %s;\n" % qt
    script += "CREATE TABLE %s (id integer PRIMARY KEY, name text, description text, reference text, label text);\n" % qt
    script += "\\copy %s FROM %s WITH (FORMAT csv)\n" % (qt, sql_literal(incsv))
    server.run_script(script)
    return qt


# Load the training file's (description, synopsis) rows as the pool of
# summarize(..., examples => ...) for headlines, less every row whose package
# name or description (whitespace collapsed) equals one of the rows measured
# (the public file's packages are not in the training file, but development
# rows drawn from it are, and retrieving a row's own synopsis would score the
# lookup, not the model).  Returns the examples query and the pool.
def load_summary_examples(server, args, info, measured):
    path = os.path.join(args.data, TRAIN_FILE)
    names = {r.get("name") for r in measured}
    texts = {" ".join(r["text"].split()) for r in measured}
    all_rows = read_dataset(path, need_ref=True)
    rows = [r for r in all_rows if r.get("name") not in names and " ".join(r["text"].split()) not in texts]
    for r in rows:
        r.setdefault("label", "")
    qt = load_rows_table(server, args, info, rows, "summary_examples")
    print("  headline examples: %d of the %d rows of %s (%d left out: the package or description of a row "
          "measured), 4 most similar per row" % (len(rows), len(all_rows), path, len(all_rows) - len(rows)))
    return "SELECT description, reference FROM %s ORDER BY id" % qt, rows


# Lowercased words of 3+ letters or digits of a text, as a set (the word-overlap retrieval's words).
def word_set(text):
    return {w for w in re.findall(r"[a-z0-9\x80-\U0010ffff]+", text.lower()) if len(w) >= 3}


# Mean ROUGE-L of taking, for each row, the synopsis of the pool row whose
# words overlap the row's most (Jaccard): how much a nearest neighbour alone
# would score, beside what the model makes of the examples.
def nearest_synopsis_baseline(pool, rows):
    sets = [word_set(p["text"]) for p in pool]
    total = 0.0
    for r in rows:
        w = word_set(r["text"])
        best, best_sim = None, -1.0
        for p, ps in zip(pool, sets):
            u = len(w | ps)
            sim = len(w & ps) / u if u else 0.0
            if sim > best_sim:
                best, best_sim = p, sim
        total += rouge_l_f1(best["ref"], r["ref"]) if best else 0.0
    return total / len(rows) if rows else 0.0


# Facts about the server and the extension, tolerant of a missing extension.
def server_info(server, args):
    row = server.query(
        "SELECT current_setting('server_version'),"
        " (SELECT extversion FROM pg_extension WHERE extname = 'lmgen'),"
        " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),"
        " (SELECT count(*) FROM pg_proc WHERE proname = 'summarize'),"
        " (SELECT count(*) FROM pg_proc WHERE proname = 'classify'),"
        " current_setting('lmgen.threads', true),"
        " to_regproc('lmgen.default_model') IS NOT NULL,"
        " has_database_privilege(current_database(), 'CREATE')"
        "  OR coalesce((SELECT has_schema_privilege(oid, 'CREATE') FROM pg_namespace"
        "              WHERE nspname = '" + BENCH_SCHEMA + "'), false)")[0]
    info = {"server_version": row[0], "lmgen_version": row[1] or "(not installed)",
            "superuser": row[2] == "t", "has_summarize": int(row[3]) > 0,
            "has_classify": int(row[4]) > 0, "threads": row[5] or "-",
            "lmgen_loaded": bool(row[5]), "own_schema": row[7] == "t"}
    info["model"] = args.model or "-"
    if not args.model and row[6] == "t":
        m = server.query("SELECT coalesce(lmgen.default_model(), '(none)')")
        info["model"] = "%s (default)" % m[0][0]
    if args.dry_run:
        info["model"] += "; dry run: stub SQL, no model call"
    return info


# CPU model name and core counts from lscpu.
def machine_info():
    facts = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            facts[k.strip()] = v.strip()
    except OSError:
        pass
    name = facts.get("Model name", "unknown CPU")
    cpus = facts.get("CPU(s)", str(os.cpu_count()))
    try:
        cores = int(facts["Core(s) per socket"]) * int(facts.get("Socket(s)", "1"))
    except (KeyError, ValueError):
        cores = "?"
    return "%s, %s CPUs (%s cores)" % (name, cpus, cores)


# The final plain table: one line per figure.
def print_table(title_rows, figures):
    print("\n== results")
    width = max(len(k) for k, _ in title_rows + figures)
    for k, v in title_rows:
        print("%-*s  %s" % (width, k, v))
    print("-" * (width + 40))
    for k, v in figures:
        print("%-*s  %s" % (width, k, v))


# ------------------------------------------------------------- self-test --

# Check the metrics, CSV handling and helpers against hand-computed cases.
def self_test():
    failures = []

    def check(cond, what):
        print("%s: %s" % ("ok" if cond else "FAILED", what))
        if not cond:
            failures.append(what)

    close = lambda a, b: abs(a - b) < 1e-9
    check(word_tokens("Hello, World! It's 3D.") == ["hello", "world", "it", "s", "3d"],
          "word tokens are lowercased runs of word characters, punctuation dropped")
    check(lcs_length(list("ABCBDAB"), list("BDCABA")) == 4, "LCS of ABCBDAB/BDCABA is 4 (CLRS example)")
    check(lcs_length([], ["a"]) == 0, "LCS with an empty sequence is 0")
    check(close(rouge_l_f1("the cat on the mat", "the cat sat on the mat"), 10 / 11),
          "ROUGE-L F1 of a 5-word candidate inside a 6-word reference is 2*5/(5+6) = 10/11")
    check(close(rouge_l_f1("a b c d", "b d a c"), 0.5),
          "ROUGE-L F1 of 'a b c d' vs 'b d a c' is 0.5 (LCS 2 of 4 and 4)")
    check(close(rouge_l_f1("A B C B D A B", "b d c a b a"), 8 / 13),
          "ROUGE-L F1 is case-insensitive: 2*4/(7+6) = 8/13")
    check(close(rouge_l_f1("Hello, world!", "hello world"), 1.0), "identical words score 1.0")
    check(rouge_l_f1("alpha beta", "gamma delta") == 0.0, "disjoint words score 0")
    check(rouge_l_f1("", "gamma delta") == 0.0 and rouge_l_f1("x", "") == 0.0,
          "an empty candidate or reference scores 0")
    check(close(rouge_l_f1("police killed the gunman", "police kill the gunman"), 0.75),
          "ROUGE-L F1 of the Lin (2004) example S2 is 3/4")

    check(ends_mid_phrase("convert .cell to various") and ends_mid_phrase("tools, libraries,")
          and ends_mid_phrase("a tool (for images") and ends_mid_phrase("A tool for"),
          "a dangling word, comma or open bracket at the end is mid-phrase")
    check(first_sentence("Spglib is a C\nlibrary. More.") == "Spglib is a C library."
          and first_sentence("No stop here\n .\nnext para. x") == "No stop here"
          and first_sentence("e.g. this one. Then") == "e.g. this one.",
          "first sentence: lines joined, ends at . after two words, else at the paragraph's end")
    check(not ends_mid_phrase("part of COIN-OR") and ends_mid_phrase("tools for (the"),
          "a hyphenated word is one word (as in summary_text.c); punctuation around a word is ignored")
    check(not ends_mid_phrase("a tool for images") and not ends_mid_phrase("It is what it is.")
          and not ends_mid_phrase(""), "a complete phrase, a sentence end or nothing is not mid-phrase")
    check(close(faithfulness("racing game for penguins", "a racing game with Tux"), 2 / 3),
          "faithfulness: 2 of the 3 content words (racing, game, penguins) occur in the source")
    check(faithfulness("the of and", "x") is None, "faithfulness of a summary without content words is None")
    check(set(SECTION_DESCRIPTIONS) <= set(SECTION_WORDS), "every described section is a known section")

    acc, macro, per = classification_scores(list("aabb"), list("abbb"), ["a", "b", "c"])
    check(close(acc, 0.75), "accuracy of a,a,b,b vs a,b,b,b is 3/4")
    check(close(per["a"][2], 2 / 3) and close(per["b"][2], 0.8),
          "per-label F1: a = 2/3 (P 1, R 1/2), b = 0.8 (P 2/3, R 1)")
    check(close(macro, (2 / 3 + 0.8) / 2), "macro-F1 averages labels present (c unused is left out)")
    acc, macro, _ = classification_scores(["a", "b"], ["c", "b"], ["a", "b", "c"])
    check(close(macro, (0 + 1 + 0) / 3), "a predicted-but-absent label counts in macro-F1 with F1 0")
    check(top_confusions(list("aaab"), list("bbcb"), 5) == [("a", "b", 2), ("a", "c", 1)],
          "top confusions are counted and sorted by frequency")

    tmp = tempfile.mkdtemp(prefix="lmgen-bench-selftest.")
    try:
        p = os.path.join(tmp, "d.csv")
        with open(p, "w", newline="", encoding="utf-8") as f:
            f.write('package,Section,synopsis,description\n'
                    'p1,net,"short, with comma","line one\nline two with ""quotes""\n\n."\n'
                    'p2,games,plain,caf\u00e9 \\N \\. tab\there\n')
        rows = read_dataset(p, need_ref=True, need_label=True)
        check(len(rows) == 2 and rows[0]["text"] == 'line one\nline two with "quotes"\n\n.'
              and rows[0]["ref"] == "short, with comma" and rows[1]["label"] == "games"
              and rows[0]["id"] == 1 and rows[1]["name"] == "p2",
              "CSV reader finds columns by header (any case) and keeps multi-line quoted fields")
        back = list(csv.reader(io.StringIO(rows_to_copy_csv(rows))))
        check(back[0][2] == rows[0]["text"] and back[1][2] == "caf\u00e9 \\N \\. tab\there",
              "the \\copy CSV round-trips newlines, quotes, backslashes, tabs and UTF-8")
        try:
            with open(p, "w") as f:
                f.write("a,b\n1,2\n")
            read_dataset(p, need_ref=True)
            check(False, "a file without the needed column is refused")
        except BenchError as e:
            check("no text column" in str(e), "a file without the needed column is refused: %s" % e)
    finally:
        shutil.rmtree(tmp)

    rows = [{"id": i, "label": lab} for i, lab in enumerate("aaaaabbc", 1)]
    s = stratified(rows, 4)
    check(sorted(r["label"] for r in s) == ["a", "a", "b", "c"],
          "stratified sampling takes labels round-robin (a, b, c, then a)")
    check(sql_array(["it's", "x"]) == "ARRAY['it''s', 'x']::text[]", "SQL array literal quotes quotes")
    words = [label_text(sec, "words") for sec in SECTION_WORDS]
    check(len(set(words)) == len(words), "readable section names are all distinct")
    check(label_text("libdevel", "words") == "library development files"
          and label_text("libdevel", "raw") == "libdevel" and label_text("zzz", "words") == "zzz",
          "label styles: words maps known sections, raw and unknown pass through")
    check(parse_psql_timing("x\nTime: 12.5 ms\nTime: 1500.250 ms (00:01.500)\n") == 1500.25,
          "the last psql \\timing line is parsed")
    print("self-test: %d failed" % len(failures))
    return 1 if failures else 0


# ------------------------------------------------------------------- main --

# Command-line options.
def parse_args(argv):
    ap = argparse.ArgumentParser(description="Quality benchmark for lmgen summarize() and classify().")
    ap.add_argument("--dsn", help="libpq connection string (default: PGHOST, PGPORT, PGDATABASE, PGUSER)")
    ap.add_argument("--temp", action="store_true",
                    help="start a throwaway cluster with lmgen preloaded, remove it at the end")
    ap.add_argument("--model", help="model name passed to the functions (default: the default model)")
    ap.add_argument("--limit", type=int, help="rows per task (default: all)")
    ap.add_argument("--threads", type=int, help="lmgen.threads (superuser-only setting)")
    ap.add_argument("--max-tokens", type=int, help="max_tokens passed to summarize() (default: its default)")
    ap.add_argument("--max-words", type=int, help="max_words passed to summarize() (default: its default)")
    ap.add_argument("--styles", default="sentence",
                    help="comma-separated summarize() styles to run: sentence, headline, bullets (default: %(default)s)")
    ap.add_argument("--models", help="comma-separated model names: every task runs for each, and the issue's "
                    "table compares them (default: --model or the default model)")
    ap.add_argument("--classify-modes", default="zero",
                    help="comma-separated: zero (labels only), descriptions (one per label), "
                    "examples (4 retrieved from the training file, lmgen.classify_retrieval as set), "
                    "examples-overlap, examples-embedding (the same, retrieval by word overlap or by "
                    "embedding) (default: %(default)s)")
    ap.add_argument("--classify-set", choices=("test", "dev"), default="test",
                    help="rows classified: the test file, or a development subset of the training "
                    "file (left out of the examples) for tuning (default: %(default)s)")
    ap.add_argument("--classify-limit", type=int, help="rows for classification (default: --limit)")
    ap.add_argument("--examples-pool", type=int, default=1600,
                    help="training rows loaded as the examples table (stratified; 0: all; default: %(default)s)")
    ap.add_argument("--summary-examples", action="store_true",
                    help="headlines with examples => (description, synopsis) rows of the training file, less "
                         "the rows measured (their package or description)")
    ap.add_argument("--dev-set", choices=("train", "test"), default="train",
                    help="file --dev draws from: the training file, or the test file's rows not in the public file")
    ap.add_argument("--dev", type=int, metavar="N",
                    help="summarize N rows drawn (fixed seed) from the training file instead of the public file: "
                    "the development sample, for tuning without looking at the public file")
    ap.add_argument("--show-examples", type=int, default=0, help="print the first N summaries beside their sources")
    ap.add_argument("--data", default=DEFAULT_DATA, help="directory of the CSV files (default: %(default)s)")
    ap.add_argument("--task", choices=("all", "summarize", "classify"), default="all")
    ap.add_argument("--label-style", choices=("raw", "words", "both"), default="raw",
                    help="label text given to classify(): section names, readable words, or both runs")
    ap.add_argument("--sample", choices=("stratified", "first"), default="stratified",
                    help="which rows --limit keeps for classification (default: round-robin over sections)")
    ap.add_argument("--overflow", choices=("error", "truncate"), default="truncate",
                    help="lmgen.context_overflow for the run (default: %(default)s; a few descriptions are long)")
    ap.add_argument("--set", action="append", metavar="NAME=VALUE", help="extra SET for the session (repeatable)")
    ap.add_argument("--timeout", type=float, help="seconds before a task's psql is killed")
    ap.add_argument("--no-warmup", action="store_true", help="do not call the function once before timing")
    ap.add_argument("--keep-tables", action="store_true", help=f"leave the {BENCH_SCHEMA} tables behind")
    ap.add_argument("--dry-run", action="store_true",
                    help="stub SQL instead of the model calls: exercises everything else")
    ap.add_argument("--self-test", action="store_true", help="check metrics and CSV handling, no server")
    args = ap.parse_args(argv)
    args.skip = set()
    if args.limit is not None and args.limit < 1:
        ap.error("--limit must be at least 1")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be at least 1")
    if args.temp and args.dsn:
        ap.error("--temp and --dsn exclude each other")
    return args


# Terminate cleanly (so the temp cluster is removed) on SIGTERM / SIGHUP.
def on_signal(signum, frame):
    raise SystemExit(128 + signum)


# Connect (or start a cluster), run the tasks, print the table.
def main(argv):
    args = parse_args(argv)
    if args.self_test:
        return self_test()
    if args.temp and os.geteuid() == 0 and not os.environ.get("LMGEN_BENCH_REEXEC"):
        return rerun_unprivileged(argv)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    started = time.time()
    bindir = pg_bindir()
    workdir = tempfile.mkdtemp(prefix="lmgen-bench.")
    cluster = None
    try:
        env = dict(os.environ)
        if args.temp:
            for k in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE", "PGOPTIONS"):
                env.pop(k, None)
            cluster = TempCluster(bindir, os.path.join(workdir, "cluster"), args.threads)
            os.mkdir(cluster.base)
            print("starting a temporary cluster in %s" % cluster.base, flush=True)
            cluster.start()
            conn = cluster.conn_args()
        else:
            conn = ["-d", args.dsn] if args.dsn else []
        server = Server(os.path.join(bindir, "psql"), conn, env, workdir)
        server.cluster = cluster
        if args.temp:
            try:
                server.run_script("CREATE EXTENSION lmgen;\n")
                if args.threads is not None:
                    server.run_script("ALTER SYSTEM SET lmgen.threads = %d;\nSELECT pg_reload_conf();\n"
                                      % args.threads)
            except BenchError as e:
                raise BenchError("%s\n%s" % (e, cluster.log_tail()))
        info = server_info(server, args)
        if args.threads is not None and not args.temp and not info["superuser"]:
            print("warning: lmgen.threads is superuser-only; not set (server value %s)" % info["threads"])
        if not info["own_schema"]:
            print("note: no CREATE privilege for schema %s: using temporary tables "
                  "(they rule out parallel query)" % BENCH_SCHEMA)
        if not args.dry_run:
            missing = [f for f, ok in (("summarize", info["has_summarize"]),
                                       ("classify", info["has_classify"]))
                       if ok is False and args.task in ("all", f)]
            if missing and (args.task != "all" or len(missing) == 2):
                raise BenchError("this server has no %s() (lmgen %s); install the build that has them, "
                                 "or use --dry-run" % (" or ".join(missing), info["lmgen_version"]))
            for f in missing:
                print("note: this server has no %s(); skipping that task" % f)
                args.skip.add(f)
        if args.threads is not None and info["superuser"] and info["lmgen_loaded"]:
            info["threads"] = str(args.threads)
        print("server %s, lmgen %s, model %s, lmgen.threads %s"
              % (info["server_version"], info["lmgen_version"], info["model"], info["threads"]))

        figures = []
        table = []              # the table: (model, figure, value, rows/s)
        models = [m.strip() for m in args.models.split(",")] if args.models else [args.model]
        climit = args.classify_limit if args.classify_limit is not None else args.limit
        for model in models:
            args.model = model
            mtag = model or "default"
            if args.task in ("all", "summarize") and "summarize" not in args.skip:
                for style in [x.strip() for x in args.styles.split(",") if x.strip()]:
                    args.style = style if style != "sentence" else None
                    print("\n-- model %s, style %s" % (mtag, style), flush=True)
                    s = task_summarize(server, args, info)
                    tag = "summarize[%s, %s]" % (mtag, style)
                    figures += [(tag + ": rows", "%d" % s["rows"]),
                                (tag + ": ROUGE-L F1 (mean)", "%.4f" % s["rouge_l_f1"]),
                                (tag + ": rows/s", "%.3f  (%.2f s query)" % (s["rows_per_s"], s["seconds"])),
                                (tag + ": summary words (mean)", "%.1f  (reference %.1f)"
                                 % (s["summary_words"], s["reference_words"])),
                                (tag + ": faithfulness", "%.4f" % s["faithfulness"]),
                                (tag + ": ending mid-phrase", "%.4f" % s["mid_phrase"]),
                                (tag + ": first-sentence baseline ROUGE-L F1", "%.4f" % s["first_sentence"]),
                                (tag + ": empty summaries", "%d" % s["empty"])]
                    rate = "%.3f" % s["rows_per_s"]
                    table += [(mtag, "summarize %s: ROUGE-L F1 (%d rows)" % (style, s["rows"]), "%.3f" % s["rouge_l_f1"], rate),
                              (mtag, "summarize %s: mean words" % style, "%.1f" % s["summary_words"], rate),
                              (mtag, "summarize %s: faithfulness" % style, "%.3f" % s["faithfulness"], rate),
                              (mtag, "summarize %s: ending mid-phrase" % style, "%.3f" % s["mid_phrase"], rate)]
            if args.task in ("all", "classify") and "classify" not in args.skip:
                saved_limit, args.limit = args.limit, climit
                styles = ("raw", "words") if args.label_style == "both" else (args.label_style,)
                for style in styles:
                    for mode in [x.strip() for x in args.classify_modes.split(",") if x.strip()]:
                        print("\n-- model %s" % mtag, flush=True)
                        c = task_classify(server, args, info, style, mode)
                        tag = "classify[%s, %s, %s]" % (mtag, style, mode)
                        figures += [(tag + ": rows", "%d" % c["rows"]),
                                    (tag + ": accuracy", "%.4f" % c["accuracy"]),
                                    (tag + ": macro-F1", "%.4f" % c["macro_f1"]),
                                    (tag + ": rows/s", "%.3f  (%.2f s query)" % (c["rows_per_s"], c["seconds"])),
                                    (tag + ": answers not a label", "%d" % c["invalid"]),
                                    (tag + ": top confusions", "; ".join("%s->%s %d" % x for x in c["confusions"])
                                     or "-")]
                        table += [(mtag, "classify %s (%s labels): accuracy / macro-F1 (%d rows)" % (mode, style, c["rows"]),
                                   "%.3f / %.3f" % (c["accuracy"], c["macro_f1"]), "%.3f" % c["rows_per_s"])]
                args.limit = saved_limit
        if not args.keep_tables and info["own_schema"]:
            server.run_script("DROP SCHEMA IF EXISTS %s CASCADE;\n" % BENCH_SCHEMA)
        head = [("command", shlex.join([sys.argv[0]] + argv)),
                ("machine", machine_info()),
                ("server", "PostgreSQL %s, lmgen %s%s" % (info["server_version"], info["lmgen_version"],
                                                          ", temporary cluster" if args.temp else "")),
                ("model", info["model"]),
                ("lmgen.threads", info["threads"]),
                ("lmgen.context_overflow", args.overflow),
                ("total wall time", "%.1f s" % (time.time() - started))]
        print_table(head, figures)
        if table:
            print("\n== the issue's table (markdown)")
            print("| model | figure | value | rows/s |")
            print("|---|---|---|---|")
            for row in table:
                print("| %s | %s | %s | %s |" % row)
        return 0
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print("quality.py: %s" % e, file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("quality.py: interrupted", file=sys.stderr)
        sys.exit(130)
