#!/usr/bin/env python3
"""Collects the benchmarks' JSON lines into docs/bench/results.json and
prints the summary tables. The learning and golden-ticket figures come from
learning.csv and tickets.csv beside OUT_JSON, when they exist.

    summarize.py BENCH_LOG OUT_JSON
"""
import collections
import csv
import json
import os
import statistics
import sys


def learning_summary(path):
    """Validation loss of twist-2w and local_sgd-2w at the bytes twist-2w
    moved in its whole run (mean over seeds), and final losses."""
    rows = [r for r in csv.DictReader(open(path)) if r["val_loss"]]
    # label -> round -> [(bytes, val)] over seeds
    by = collections.defaultdict(lambda: collections.defaultdict(list))
    for r in rows:
        by[r["label"]][int(r["round"])].append((float(r["bytes"]), float(r["val_loss"])))
    if "twist-2w" not in by or "local_sgd-2w" not in by:
        return {}

    def curve(label):  # [(mean bytes, mean val)] by round
        return [(statistics.mean(b for b, _ in v), statistics.mean(l for _, l in v))
                for _, v in sorted(by[label].items())]

    def loss_at(points, budget):  # linear in bytes between evaluations
        for (b0, l0), (b1, l1) in zip(points, points[1:]):
            if b0 <= budget <= b1:
                return l0 + (l1 - l0) * (budget - b0) / (b1 - b0) if b1 > b0 else l1
        return None

    twist = curve("twist-2w")
    budget = twist[-1][0]
    baseline = loss_at(curve("local_sgd-2w"), budget)  # None: never reached
    out = {"loss_at_equal_bytes": {
        "bytes": budget, "twist-2w": round(twist[-1][1], 4),
        "local_sgd-2w": None if baseline is None else round(baseline, 4)}}
    out["final_val_loss"] = {label: round(curve(label)[-1][1], 4) for label in sorted(by)}
    return out


def ticket_summary(path):
    """Half-width subnetworks (keep 1/2, scaled) of the TwIST-trained model
    against the same pruning of the baselines: mean random and best loss."""
    rows = list(csv.DictReader(open(path)))
    out = {}
    for r in rows:
        if r["kind"] in ("random", "best"):
            out.setdefault(r["model"], {})[f"{r['kind']}_{r['scaling']}_keep{r['keep']}"] = \
                round(float(r["val_loss"]), 4)
        elif r["kind"] == "full":
            out.setdefault(r["model"], {})["full"] = round(float(r["val_loss"]), 4)
    return {"ticket_vs_pruning": out} if out else {}


def main():
    rows = [json.loads(line[5:]) for line in open(sys.argv[1]) if line.startswith("JSON ")]
    by = {}
    for r in rows:
        by.setdefault(r["bench"], []).append(r)
    out = {"details": by}
    transport = by.get("transport", [])
    if transport:
        largest = max(transport, key=lambda r: r["bytes"])
        out["transport_ratio_vs_tcp"] = round(largest["ratio"], 3)
        out["transport_gbps"] = round(largest["grpc_gbps"], 3)
        out["tcp_gbps"] = round(largest["tcp_gbps"], 3)
    sweep = by.get("transport_chunk_sweep", [])
    if sweep:
        best = max(sweep, key=lambda r: r["grpc_gbps"])
        out["best_chunk_bytes"] = best["chunk_bytes"]
    overhead = by.get("round_overhead", [])
    if overhead:
        big = [r for r in overhead if r["parameters"] >= 9e7] or overhead
        out["round_overhead_vs_memcpy"] = round(statistics.median(r["ratio"] for r in big), 3)
        out["round_overhead_vs_memcpy_worst"] = round(max(r["ratio"] for r in big), 3)
    steps = by.get("worker_step", [])
    cpp, py = {}, {}  # keep -> the fastest run of each side
    for r in steps:
        side = cpp if r["impl"] == "cpp" else py
        if r["keep"] not in side or r["step_s"] < side[r["keep"]]["step_s"]:
            side[r["keep"]] = r
    if 1.0 in cpp and 1.0 in py:
        # > 1: the C++ worker is faster than the same step in PyTorch.
        out["cpp_vs_python_step"] = round(py[1.0]["step_s"] / cpp[1.0]["step_s"], 3)
        out["cpp_vs_python_step_by_keep"] = {
            str(k): round(py[k]["step_s"] / cpp[k]["step_s"], 3) for k in cpp if k in py}
    system = by.get("system", [])
    if system:
        out["overhead_share"] = round(statistics.mean(r["overhead_share"] for r in system), 4)
        out["overhead_share_without_eval_rounds"] = round(
            statistics.mean(r["overhead_share"] for r in system if r["eval_s"] == 0), 4)
    folder = os.path.dirname(os.path.abspath(sys.argv[2]))
    if os.path.exists(os.path.join(folder, "learning.csv")):
        out.update(learning_summary(os.path.join(folder, "learning.csv")))
    if os.path.exists(os.path.join(folder, "tickets.csv")):
        out.update(ticket_summary(os.path.join(folder, "tickets.csv")))
    json.dump(out, open(sys.argv[2], "w"), indent=1, sort_keys=True)

    print("\n== transport (gRPC round trip vs raw TCP, loopback)")
    for r in transport:
        print(f"  {r['bytes'] / 1e6:7.0f} MB: gRPC {r['grpc_gbps']:.2f} GB/s "
              f"(down {r['down_gbps']:.2f}, up {r['up_gbps']:.2f}), TCP {r['tcp_gbps']:.2f} GB/s,"
              f" ratio {r['ratio']:.2f} (typed stubs {r.get('typed_ratio', 0):.2f})")
    print("\n== round overhead (partition + extract + merge) vs memcpy of the bytes moved")
    for r in overhead:
        print(f"  {r['model']:>5} x {r['workers']:2d} workers: {r['partition_s'] + r['extract_s'] + r['merge_s']:.4f} s,"
              f" memcpy {r['memcpy_s']:.4f} s, ratio {r['ratio']:.2f}")
    print("\n== worker training step (1 thread)")
    for k in sorted(cpp, reverse=True):
        p = py.get(k)
        print(f"  keep {k:4.2f}: C++ {cpp[k]['step_s'] * 1e3:6.1f} ms "
              f"({cpp[k]['tokens_per_s']:.0f} tok/s, peak RSS {cpp[k]['peak_rss_bytes'] / 2**20:.0f} MiB)"
              + (f"; PyTorch {p['step_s'] * 1e3:6.1f} ms (peak RSS {p['peak_rss_bytes'] / 2**20:.0f} MiB)"
                 if p else ""))
    print("\n== system: share of each round not spent computing (2 workers, 20 local steps)")
    for r in system:
        print(f"  round {r['round']:2d}: {r['duration_s']:.2f} s, compute {r['compute_s']:.2f} s, "
              f"transfer {r['transfer_s'] * 1e3:.1f} ms, merge {r['merge_s'] * 1e3:.1f} ms, "
              f"eval {r['eval_s'] * 1e3:.0f} ms -> overhead {100 * r['overhead_share']:.1f}%")
    print("\n" + json.dumps({k: v for k, v in out.items() if k != "details"}, indent=1))


if __name__ == "__main__":
    main()
