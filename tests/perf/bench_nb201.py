"""Benchmark: NB201Benchmark vs NATS-Bench's own API on the same data, measured in the same run.

Run as ``NASREPRO_DATA=... python tests/perf/bench_nb201.py [--workdir DIR] [--write-readme]``.
Not a test. It converts the master CSV into NATS-Bench's ``NATS-tss-v1_0-3ffb9-simple`` folder layout
(once, in ``--workdir``), then measures every number in a fresh subprocess:

* cold load: wall time of import + ``NB201Benchmark.load()`` from a warm cache, vs import +
  ``nats_bench.create(folder, 'tss', fast_mode=True)``; peak RSS of each process;
* batched queries/s: ``query_many`` over 1M random API indices, vs a loop of ``get_more_info``;
* single-query latency: ``query(arch, 'cifar10')`` vs ``get_more_info(index, 'cifar10-valid', hp='200')``
  (first touch of an architecture, which reads its file, and repeated touch).

The converted files hold final-epoch values only (the master CSV has no learning curves), so they are
smaller than the real NATS-Bench files: the peer's per-architecture reads are, if anything, flattered.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGETS = {"load_s": 0.2, "load_rss_mb": 150.0, "load_speedup": 20.0, "batched_qps": 1e6, "single_speedup": 10.0}

_PEAK_RSS = """
def peak_rss_mb():
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak across fork+exec
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

_OURS_LOAD = """
import time, json
t0 = time.perf_counter()
import numpy
t_numpy = time.perf_counter()
from benchmarks.nb201 import NB201Benchmark
t_import = time.perf_counter()
bench = NB201Benchmark.load()
bench.query('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|', 'cifar10')
t1 = time.perf_counter()
print(json.dumps({"load_s": t1 - t0, "numpy_s": t_numpy - t0, "modules_s": t_import - t_numpy,
                  "call_s": t1 - t_import, "rss_mb": peak_rss_mb()}))
"""

_NUMPY_ONLY = """
import time, json
t0 = time.perf_counter()
import numpy
print(json.dumps({"load_s": time.perf_counter() - t0,
                  "rss_mb": peak_rss_mb()}))
"""

_NATS_LOAD = """
import time, json, sys
t0 = time.perf_counter()
import nats_bench
api = nats_bench.create(sys.argv[1], 'tss', fast_mode=sys.argv[2] == 'fast', verbose=False)
api.get_more_info(1234, 'cifar10-valid', hp='200', is_random=False)
t1 = time.perf_counter()
print(json.dumps({"load_s": t1 - t0, "rss_mb": peak_rss_mb()}))
"""

_OURS_QUERIES = """
import time, json
import numpy as np
from benchmarks.nb201 import NB201Benchmark
bench = NB201Benchmark.load()
rng = np.random.default_rng(0)
idx = rng.integers(15625, size=1_000_000)
bench.query_many(idx[:10], 'cifar10')
times = []
for _ in range(5):
    t0 = time.perf_counter(); bench.query_many(idx, 'cifar10'); times.append(time.perf_counter() - t0)
archs = [bench.arch_at(int(i)) for i in idx[:20000]]
t0 = time.perf_counter()
for a in archs:
    bench.query(a, 'cifar10')
single = (time.perf_counter() - t0) / len(archs)
strings = [a.id for a in archs[:5000]]
t0 = time.perf_counter()
for s in strings:
    bench.query(s, 'cifar10')
single_str = (time.perf_counter() - t0) / len(strings)
print(json.dumps({"batched_qps": len(idx) / min(times), "single_s": single, "single_str_s": single_str}))
"""

_NATS_QUERIES = """
import time, json, sys
import numpy as np
import nats_bench
api = nats_bench.create(sys.argv[1], 'tss', fast_mode=True, verbose=False)
idx = [int(i) for i in np.random.default_rng(0).integers(15625, size=2000)]
t0 = time.perf_counter()
for i in idx:
    api.get_more_info(i, 'cifar10-valid', hp='200', is_random=False)
cold = (time.perf_counter() - t0) / len(idx)
t0 = time.perf_counter()
for i in idx:
    api.get_more_info(i, 'cifar10-valid', hp='200', is_random=False)
warm = (time.perf_counter() - t0) / len(idx)
print(json.dumps({"single_cold_s": cold, "single_warm_s": warm, "batched_qps": 1.0 / warm}))
"""


def _run(code: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", _PEAK_RSS + code, *args], env=env, cwd=REPO, capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"subprocess failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _best(code: str, *args: str, repeats: int = 5) -> dict:
    """Each repeat in a fresh process; keep the fastest load (least disturbed by the machine)."""
    runs = [_run(code, *args) for _ in range(repeats)]
    return min(runs, key=lambda r: r["load_s"])


def _convert_chunk(job: tuple[str, list[int]]) -> int:
    folder, indices = job
    from benchmarks.formats import nb201_official as official
    from benchmarks.nb201 import NB201Benchmark

    bench = NB201Benchmark.load(source="master")
    for index in indices:
        states = official.states_from_benchmark(bench, index)
        official.write_nats_simple_arch(Path(folder), index, {str(ep): s for ep, s in states.items()})
    return len(indices)


def convert(workdir: Path) -> Path:
    """Master CSV -> NATS-tss simple folder (once; a marker file records completion)."""
    from benchmarks.formats import nb201_official as official
    from benchmarks.nb201 import SPACE_SIZE, NB201Benchmark

    folder = workdir / official.NATS_TSS_SIMPLE
    done = folder / ".converted"
    if done.is_file():
        return folder
    bench = NB201Benchmark.load(source="master")
    meta_archs = [bench.arch_at(i).id for i in range(SPACE_SIZE)]
    official.write_nats_simple(folder, meta_archs, [])  # the folder and its meta file
    jobs = [(str(folder), list(range(k, SPACE_SIZE, 64))) for k in range(64)]
    t0 = time.perf_counter()
    with Pool(os.cpu_count() or 1) as pool:
        written = sum(pool.map(_convert_chunk, jobs))
    done.write_text(f"{written} architectures in {time.perf_counter() - t0:.0f} s\n")
    return folder


def convert_full(folder: Path) -> Path:
    """The simple folder -> NATS-Bench's one-file layout (``fast_mode=False``), once."""
    import bz2
    import pickle

    path = folder.parent / "NATS-tss-v1_0-3ffb9.pickle.pbz2"
    if path.is_file():
        return path
    with bz2.open(folder / "meta.pickle.pbz2", "rb") as fh:
        meta_archs = pickle.load(fh)["meta_archs"]  # our own files, written above
    arch2infos = {}
    for index in range(len(meta_archs)):
        with bz2.open(folder / f"{index:06d}.pickle.pbz2", "rb") as fh:
            arch2infos[index] = pickle.load(fh)
    tmp = path.with_suffix(".tmp")
    with bz2.open(tmp, "wb") as fh:
        pickle.dump({"meta_archs": meta_archs, "arch2infos": arch2infos,
                     "evaluated_indexes": sorted(arch2infos)}, fh, protocol=4)
    tmp.rename(path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/nasrepro-bench-nb201"))
    parser.add_argument("--write-readme", action="store_true", help="record the table in tests/perf/README.md")
    parser.add_argument("--full-file", action="store_true",
                        help="also measure nats_bench.create(..., fast_mode=False) on the one-file layout "
                             "(several GB of memory, minutes)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    args.workdir.mkdir(parents=True, exist_ok=True)
    folder = convert(args.workdir)
    _run(_OURS_LOAD)  # warm our cache

    ours_load, nats_load = _best(_OURS_LOAD), _best(_NATS_LOAD, str(folder), "fast")
    numpy_only = _best(_NUMPY_ONLY)
    nats_full = _run(_NATS_LOAD, str(convert_full(folder)), "full") if args.full_file else None
    ours_q, nats_q = _run(_OURS_QUERIES), _run(_NATS_QUERIES, str(folder))
    rows = [
        ("cold load (imports + load + 1 query) vs `fast_mode=True` (reads the meta file only), s",
         ours_load["load_s"], nats_load["load_s"],
         f"<= {TARGETS['load_s']} s, >= {TARGETS['load_speedup']:.0f}x faster",
         nats_load["load_s"] / ours_load["load_s"]),
        ("&nbsp;&nbsp;of which `import numpy`, s", ours_load["numpy_s"], None, "", None),
        ("&nbsp;&nbsp;of which importing nasrepro modules, s", ours_load["modules_s"], None, "", None),
        ("&nbsp;&nbsp;of which `load()` + 1 query, s", ours_load["call_s"], None, "", None),
        ("`import numpy` alone in a fresh process (floor), s", numpy_only["load_s"], None, "", None),
        ("peak RSS after load, MB", ours_load["rss_mb"], nats_load["rss_mb"], f"<= {TARGETS['load_rss_mb']:.0f} MB",
         None),
        ("batched queries/s (1M random indices)", ours_q["batched_qps"], nats_q["batched_qps"],
         ">= 1e6 /s", ours_q["batched_qps"] / nats_q["batched_qps"]),
        ("single query (NB201Arch), us", ours_q["single_s"] * 1e6, nats_q["single_warm_s"] * 1e6,
         f">= {TARGETS['single_speedup']:.0f}x faster than warm get_more_info",
         nats_q["single_warm_s"] / ours_q["single_s"]),
        ("single query (string), us", ours_q["single_str_s"] * 1e6, nats_q["single_warm_s"] * 1e6, "",
         nats_q["single_warm_s"] / ours_q["single_str_s"]),
        ("get_more_info first touch (reads a file), us", None, nats_q["single_cold_s"] * 1e6, "", None),
    ]
    if nats_full is not None:
        rows[1:1] = [("cold load vs `fast_mode=False` (reads the one-file benchmark), s", ours_load["load_s"],
                      nats_full["load_s"], f">= {TARGETS['load_speedup']:.0f}x faster",
                      nats_full["load_s"] / ours_load["load_s"]),
                     ("peak RSS vs `fast_mode=False`, MB", ours_load["rss_mb"], nats_full["rss_mb"], "", None)]
    checks = {
        "load_s": ours_load["load_s"] <= TARGETS["load_s"],
        "load_rss_mb": ours_load["rss_mb"] <= TARGETS["load_rss_mb"],
        "load_speedup (fast_mode=True)": nats_load["load_s"] / ours_load["load_s"] >= TARGETS["load_speedup"],
        "batched_qps": ours_q["batched_qps"] >= TARGETS["batched_qps"],
        "single_speedup": nats_q["single_warm_s"] / ours_q["single_s"] >= TARGETS["single_speedup"],
    }
    if nats_full is not None:
        checks["load_speedup (fast_mode=False)"] = nats_full["load_s"] / ours_load["load_s"] >= TARGETS["load_speedup"]
    fmt = lambda v: "-" if v is None else (f"{v:,.0f}" if v >= 1000 else f"{v:.3g}")  # noqa: E731
    lines = ["| measurement | nasrepro | nats_bench 1.8 | target | ratio |", "|---|---:|---:|---|---:|"]
    lines += [f"| {name} | {fmt(a)} | {fmt(b)} | {t} | {'-' if r is None else f'{r:.1f}x'} |"
              for name, a, b, t, r in rows]
    lines.append("")
    lines.append("targets met: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in checks.items()))
    table = "\n".join(lines)
    print(table)
    if args.write_readme:
        machine = f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()})"
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        readme = REPO / "tests" / "perf" / "README.md"
        head = readme.read_text().split("<!-- results -->")[0] if readme.is_file() else ""
        readme.write_text(f"{head}<!-- results -->\n## Latest run: {stamp}, {machine}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
