#!/usr/bin/env python3
"""
bench_embed.py — embed() speed and retrieval quality, through SQL.

    test/bench/bench_embed.py --temp                 # a throwaway cluster (not as root)
    test/bench/bench_embed.py --dsn 'host=/tmp dbname=x'
    runuser -u postgres -- test/bench/bench_embed.py --temp   # as root

Prints:
  1. throughput: rows/s of ONE query `SELECT count(embed(description)) FROM
     packages` over the 1,000 descriptions of
     ../shared/data/debian_packages_test.csv, at lmgen.threads 1 and 2
     (one backend: parallel query off), for each --speed-model (default
     minilm);
  2. retrieval: for each of the 200 rows of summaries_public.csv, the
     synopsis embedded as a query and all 200 descriptions ranked by
     lmgen.cosine_similarity; recall@1 (own description ranked first) and
     MRR (mean of 1 / rank), for each --quality-model (default minilm and
     smollm2), with the seconds the embeddings took.
The machine, the load average before and after, and the command line are
printed with the figures (a shared machine gives noisy timings).  Python 3
standard library; the cluster and psql helpers are test/bench/quality.py's.
"""

import argparse
import csv
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quality import BenchError, Server, TempCluster, machine_info, parse_psql_timing, pg_bindir  # noqa: E402


def load_csv(path, cols):
    """Rows of a CSV file as tuples of the named columns."""
    with open(path, newline="", encoding="utf-8") as f:
        return [tuple(r[c] for c in cols) for r in csv.DictReader(f)]


def copy_table(server, table, columns, rows):
    """Create a table and fill it with \\copy from a CSV file in the work directory."""
    path = os.path.join(server.workdir, table + ".csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        for i, r in enumerate(rows, 1):
            w.writerow((i,) + tuple(r))
    os.chmod(path, 0o644)
    server.run_script("DROP TABLE IF EXISTS %s;\nCREATE TABLE %s (id int, %s);\n"
                      "\\copy %s FROM '%s' WITH (FORMAT csv)\n"
                      % (table, table, ", ".join(c + " text" for c in columns), table, path))


def load_average():
    """The 1, 5 and 15 minute load averages."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def timed(server, sql):
    """Seconds one statement takes on the server (psql's \\timing)."""
    out = server.run_script("SET max_parallel_workers_per_gather = 0;\n\\timing on\n" + sql + "\n")
    return parse_psql_timing(out) / 1000.0


def throughput(server, model, threads, n):
    """Rows/s of embedding the package descriptions with model at threads threads."""
    server.run_script("ALTER SYSTEM SET lmgen.threads = %d;\nSELECT pg_reload_conf();\n" % threads)
    time.sleep(0.5)
    server.run_script("SELECT embed('warm up', %s);\n" % model_arg(model))
    s = timed(server, "SELECT count(embed(description, %s)) FROM bench_packages;" % model_arg(model))
    return n / s, s


def model_arg(model):
    """The model argument of embed(): a quoted name."""
    return "'" + model.replace("'", "''") + "'"


def retrieval(server, model):
    """recall@1, MRR and embedding seconds of synopsis -> description retrieval."""
    s = timed(server, "DROP TABLE IF EXISTS bench_vectors;\n"
              "CREATE TABLE bench_vectors AS SELECT id, embed(synopsis, %s) AS q, embed(description, %s) AS d "
              "FROM bench_summaries;" % (model_arg(model), model_arg(model)))
    rows = server.query(
        "WITH s AS (SELECT a.id AS qid, b.id AS did, lmgen.cosine_similarity(a.q, b.d) AS sim "
        "           FROM bench_vectors a CROSS JOIN bench_vectors b), "
        "r AS (SELECT qid, did, rank() OVER (PARTITION BY qid ORDER BY sim DESC) AS rk FROM s) "
        "SELECT count(*), avg((rk = 1)::int), avg(1.0 / rk) FROM r WHERE qid = did;")
    n, r1, mrr = rows[0]
    return int(n), float(r1), float(mrr), s


def on_signal(signum, frame):
    """Turn a termination signal into an exception, so the cluster is removed."""
    raise BenchError("stopped by signal %d" % signum)


def main(argv):
    """Run the benchmark; returns the exit status."""
    ap = argparse.ArgumentParser(description="embed() throughput and retrieval quality")
    ap.add_argument("--temp", action="store_true", help="start a throwaway cluster (not as root)")
    ap.add_argument("--dsn", default=None, help="connection string of a server with the extension")
    ap.add_argument("--data", default=os.path.join(os.environ.get("LMGEN_SHARED") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared"), "data"),
        help="directory of the CSV files (default $LMGEN_SHARED/data or ../shared/data)")
    ap.add_argument("--threads", default="1,2", help="lmgen.threads values for the throughput runs")
    ap.add_argument("--speed-model", action="append", default=None,
                    help="model for throughput (repeatable; default minilm; none: skip)")
    ap.add_argument("--quality-model", action="append", default=None,
                    help="model for retrieval (repeatable; default minilm and smollm2; none: skip)")
    ap.add_argument("--limit", type=int, default=1000, help="package descriptions to embed")
    args = ap.parse_args(argv)
    speed_models = [m for m in args.speed_model or ["minilm"] if m != "none"]
    quality_models = [m for m in args.quality_model or ["minilm", "smollm2"] if m != "none"]
    # SIGTERM / SIGHUP end the run through the cleanup below (the cluster is stopped)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    if args.temp and os.geteuid() == 0:
        raise BenchError("initdb refuses root: run as a non-root user, e.g. runuser -u postgres -- %s"
                         % shlex.join([sys.argv[0]] + argv))
    packages = load_csv(os.path.join(args.data, "debian_packages_test.csv"), ["description"])[:args.limit]
    summaries = load_csv(os.path.join(args.data, "summaries_public.csv"), ["synopsis", "description"])
    started = time.time()
    load_before = load_average()
    bindir = pg_bindir()
    workdir = tempfile.mkdtemp(prefix="lmgen-bench-embed.")
    os.chmod(workdir, 0o755)
    cluster = None
    try:
        env = dict(os.environ)
        if args.temp:
            cluster = TempCluster(bindir, os.path.join(workdir, "cluster"), None)
            os.mkdir(cluster.base)
            cluster.start()
            conn = cluster.conn_args()
        else:
            conn = ["-d", args.dsn] if args.dsn else []
        server = Server(os.path.join(bindir, "psql"), conn, env, workdir)
        server.cluster = cluster
        if args.temp:
            server.run_script("CREATE EXTENSION lmgen;\n")
        copy_table(server, "bench_packages", ["description"], packages)
        copy_table(server, "bench_summaries", ["synopsis", "description"], summaries)
        print("lmgen embed() benchmark — %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        print("machine: %s; load average before: %s" % (machine_info(), load_before))
        print("models: %s" % "; ".join(
            "%s %s" % (r[0], r[1]) for r in server.query(
                "SELECT name, architecture || ' ' || coalesce(quantization, '?') FROM lmgen.models ORDER BY name")))
        print("\n== throughput: SELECT count(embed(description, model)) FROM %d Debian package descriptions"
              % len(packages))
        for model in speed_models:
            for t in [int(x) for x in args.threads.split(",")]:
                rps, s = throughput(server, model, t, len(packages))
                print("%-8s lmgen.threads=%d: %7.1f rows/s  (%.1f s)  load average now %s"
                      % (model, t, rps, s, load_average()), flush=True)
        if quality_models:
            print("\n== retrieval: %d synopses -> %d descriptions, ranked by lmgen.cosine_similarity"
                  % (len(summaries), len(summaries)))
        server.run_script("ALTER SYSTEM SET lmgen.threads = 2;\nSELECT pg_reload_conf();\n")
        for model in quality_models:
            n, r1, mrr, s = retrieval(server, model)
            print("%-8s recall@1 %.3f  MRR %.3f  (%d queries; embedding all %d texts took %.1f s)"
                  % (model, r1, mrr, n, 2 * n, s), flush=True)
        server.run_script("DROP TABLE IF EXISTS bench_vectors, bench_packages, bench_summaries;\n")
        print("\ncommand: %s" % shlex.join([sys.argv[0]] + argv))
        print("load average after: %s; total %.0f s" % (load_average(), time.time() - started))
        return 0
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print("bench_embed.py: %s" % e, file=sys.stderr)
        sys.exit(1)
