#!/usr/bin/env python3
"""Collects benchmark results into docs/bench/results.json, one section per
benchmark, each stamped with the commit it measured and the date.

    summarize.py BENCH_LOG OUT_JSON [--commit C]
        the sections whose "JSON {...}" lines are in BENCH_LOG (transport,
        round_overhead, worker_step, system, tokenizer, gpt2_small)
    summarize.py --csv SECTION OUT_JSON [--commit C]
        one section from its CSV beside OUT_JSON (learning from
        default_recipe.csv, learning_screen from learning.csv, tickets,
        optimizer_state, tokenizers, bpe_tickets)

Sections not named are kept as they were, with their own commit. The commit
defaults to the checkout's HEAD (`git rev-parse HEAD`). bench/report.py turns
the file into docs/benchmarks.md.
"""
import collections
import csv
import datetime
import json
import math
import os
import statistics
import subprocess
import sys


def head():
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


# ---------------------------------------------------------------------------
# Sections from JSON lines.

def transport(rows):
    raw = [r for r in rows if r["bench"] == "transport"]
    sweep = [r for r in rows if r["bench"] == "transport_chunk_sweep"]
    if not raw:
        return None
    largest = max(raw, key=lambda r: r["bytes"])
    out = {"transport_ratio_vs_tcp": round(largest["ratio"], 3),
           "transport_gbps": round(largest["grpc_gbps"], 3),
           "tcp_gbps": round(largest["tcp_gbps"], 3), "rows": raw}
    if sweep:
        out["best_chunk_bytes"] = max(sweep, key=lambda r: r["grpc_gbps"])["chunk_bytes"]
        out["chunk_sweep"] = sweep
    return out


def round_overhead(rows):
    rows = [r for r in rows if r["bench"] == "round_overhead"]
    if not rows:
        return None
    # Rows before the benchmark named its recipe measured the old one; rows
    # before it named its threads ran on one.
    # Rows before the kernels had instruction sets ran the generic ones;
    # `kernels_chosen` marks a pass told which set to use (--kernels).
    for r in rows:
        r.setdefault("recipe", "old")
        r.setdefault("threads", 1)
        r.setdefault("kernels", "generic")
        r.setdefault("kernels_chosen", False)
    out = {"rows": rows}
    for recipe, threads, chosen, suffix in (
            ("default", 1, False, ""), ("old", 1, False, "_old_recipe"),
            ("default", 2, False, "_threads2"),
            ("default", 1, True, "_generic_kernels")):
        big = [r for r in rows if r["parameters"] >= 9e7 and r["recipe"] == recipe
               and r["threads"] == threads and r["kernels_chosen"] == chosen
               and "ratio" in r]
        if big:
            out["round_overhead_vs_memcpy" + suffix] = round(
                statistics.median(r["ratio"] for r in big), 3)
            out["round_overhead_vs_memcpy_worst" + suffix] = round(
                max(r["ratio"] for r in big), 3)
    return out


def worker_step(rows):
    rows = [r for r in rows if r["bench"] == "worker_step"]
    if not rows:
        return None
    cpp, py = {}, {}  # (keep, threads) -> the fastest run of each side
    for r in rows:
        side = cpp if r["impl"] == "cpp" else py
        key = (r["keep"], r.get("threads", 1))
        if key not in side or r["step_s"] < side[key]["step_s"]:
            side[key] = r
    out = {"fastest": {"cpp": list(cpp.values()), "python": list(py.values())}}
    # > 1: the C++ worker is faster than the same step in PyTorch.
    ratios = {k: round(py[k]["step_s"] / cpp[k]["step_s"], 3) for k in cpp if k in py}
    if ratios:
        out["cpp_vs_python_step_by_point"] = {
            f"keep{k[0]:g}_threads{k[1]}": v for k, v in sorted(ratios.items())}
        out["cpp_vs_python_step_min"] = min(ratios.values())
        if (1.0, 1) in ratios:
            out["cpp_vs_python_step"] = ratios[(1.0, 1)]
    return out


def system(rows):
    rows = [r for r in rows if r["bench"] == "system"]
    if not rows:
        return None
    return {"overhead_share": round(statistics.mean(r["overhead_share"] for r in rows), 4),
            "overhead_share_without_eval_rounds": round(
                statistics.mean(r["overhead_share"] for r in rows if r["eval_s"] == 0), 4),
            "rows": rows}


def tokenizer(rows):
    speed = [r for r in rows if r["bench"] == "tokenizer"]
    prepare = [r for r in rows if r["bench"] == "tokenizer_prepare"]
    if not speed:
        return None
    stripped = [r for r in speed if r["text"] == "stripped"]
    return {"bpe_encode_mb_per_s": round(stripped[0]["mb_per_s"], 2) if stripped else None,
            "prepare_peak_rss_bytes": {str(r["copies"]): r["peak_rss_bytes"] for r in prepare},
            "rows": speed + prepare}


def gpt2_small(rows):
    idle = {r["label"]: r for r in rows if r["bench"] == "gpt2_small_idle"}
    breakdowns = {r["label"]: r for r in rows if r["bench"] == "gpt2_small_breakdown"}
    loss_check = [r for r in rows if r["bench"] == "gpt2_small_loss_check"]
    rows = [r for r in rows if r["bench"] == "gpt2_small"]
    if not rows:
        return None
    by = collections.defaultdict(list)
    for r in rows:
        by[r["label"]].append(r)
    summary = {}
    for label, all_rounds in by.items():
        rs = [r for r in all_rounds if r["round"] > 0]
        peaks = {r["round"]: r["worker_peak_bytes"] for r in all_rounds}
        later = [b for k, b in peaks.items() if k > 2]
        summary[label] = {
            "parameters": rs[0]["parameters"],
            "rounds": len(rs),
            "coordinator_peak_bytes": max(r["coordinator_peak_bytes"] for r in all_rounds),
            "worker_peak_bytes": max(r["worker_peak_bytes"] for r in all_rounds),
            "worker_peak_by_round": [peaks[k] for k in sorted(peaks)],
            "coordinator_peak_by_round": [r["coordinator_peak_bytes"] for r in
                                          sorted(all_rounds, key=lambda r: r["round"])],
            # The largest peak after round 2 over round 2's: > 0 is growth.
            "worker_growth_after_round_2_bytes": (max(later) - peaks[2]) if later and 2 in peaks else None,
            "worker_parameters": rs[0]["worker_parameters"],
            "bytes_to_worker": statistics.mean(r["bytes_to_worker"] for r in rs),
            "bytes_from_worker": statistics.mean(r["bytes_from_worker"] for r in rs),
            "step_s": statistics.median(r["step_s"] for r in rs),
            "coordinator_overhead_s": statistics.median(r["coordinator_overhead_s"] for r in rs),
            "merge_s": statistics.median(r["merge_s"] for r in rs),
            "eval_s": max(r.get("eval_s", 0.0) for r in all_rounds),
        }
        if label in idle:
            summary[label]["coordinator_idle_bytes"] = idle[label]["coordinator_rss_bytes"]
            summary[label]["worker_idle_bytes"] = idle[label]["worker_rss_bytes"]
        if label in breakdowns:
            summary[label]["coordinator_breakdown"] = {
                k: v for k, v in breakdowns[label].items()
                if k not in ("bench", "label", "coordinator_peak_bytes")}
    out = {"runs": summary, "rows": rows}
    model_bytes = 4 * rows[0]["parameters"]
    out["model_bytes_f32"] = model_bytes
    out["coordinator_peak_vs_model_bytes"] = round(
        max(s["coordinator_peak_bytes"] for s in summary.values()) / model_bytes, 3)
    out["coordinator_overhead_s_max"] = round(
        max(s["coordinator_overhead_s"] for s in summary.values()), 4)
    growth = [s["worker_growth_after_round_2_bytes"] for s in summary.values()
              if s["worker_growth_after_round_2_bytes"] is not None]
    if growth:
        out["worker_growth_after_round_2_gb"] = round(max(growth) / 1e9, 3)
    if "keep1-f32" in summary and "keep0.5-f32" in summary:
        out["worker_half_vs_full_memory"] = round(
            summary["keep0.5-f32"]["worker_peak_bytes"] / summary["keep1-f32"]["worker_peak_bytes"], 3)
    if "keep0.5-bf16" in summary:
        out["worker_half_bf16_gb"] = round(summary["keep0.5-bf16"]["worker_peak_bytes"] / 1e9, 3)
    if loss_check:
        # The Brown runs of a recipe with the binaries before and after a
        # change of the arithmetic (`change` says which), seeds each.
        out["brown_loss_check"] = loss_check
        by_change = collections.defaultdict(list)
        for r in loss_check:
            by_change[r["change"]].append(r)
        out["brown_loss_check_mean_delta"] = {
            change: round(statistics.mean(r["after"] for r in rs)
                          - statistics.mean(r["before"] for r in rs), 5)
            for change, rs in by_change.items()}
    return out


def compute_dtype(rows):
    """bfloat16 against float32 steps on the CPU (bench/compute_dtype.sh)."""
    rows = [r for r in rows if r["bench"] == "compute_dtype"]
    if not rows:
        return None
    best = {}  # (impl, dtype, keep, threads) -> the fastest run
    for r in rows:
        key = (r["impl"], r["compute_dtype"], r["keep"], r["threads"])
        if key not in best or r["step_s"] < best[key]["step_s"]:
            best[key] = r
    points = sorted({(k[2], k[3]) for k in best}, key=lambda p: (-p[0], p[1]))
    table = []
    for keep, threads in points:
        f32 = best.get(("cpp", "float32", keep, threads))
        bf16 = best.get(("cpp", "bfloat16", keep, threads))
        torch_bf16 = best.get(("python", "bfloat16", keep, threads))
        table.append({
            "keep": keep, "threads": threads,
            "cpp_f32_step_s": f32 and f32["step_s"], "cpp_bf16_step_s": bf16 and bf16["step_s"],
            "pytorch_autocast_step_s": torch_bf16 and torch_bf16["step_s"],
            # time over time, the name saying which is on top
            "bf16_vs_f32_step": f32 and bf16 and round(bf16["step_s"] / f32["step_s"], 3),
            "bf16_vs_pytorch_autocast_step":
                torch_bf16 and bf16 and round(bf16["step_s"] / torch_bf16["step_s"], 3)})
    out = {"points": table, "rows": rows}
    for key in ("bf16_vs_f32_step", "bf16_vs_pytorch_autocast_step"):
        values = [p[key] for p in table if p[key] is not None]
        if values:
            out[key] = max(values)  # the worst point
    return out


# Peak dense bfloat16 FLOP/s of the GPUs the MFU is taken against.
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}


def gpu(rows):
    """bench/gpu.sh on a GPU machine: steps, the daemons, PyTorch's loop."""
    rows = [r for r in rows if r["bench"].startswith("gpu_")]
    if not any(r["bench"] in ("gpu_step", "gpu_daemons") for r in rows):
        return None
    name = next((r["gpu"] for r in rows if r.get("gpu")), "")
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    for r in rows:
        if r["bench"] in ("gpu_step", "gpu_daemons") and r.get("tokens_per_s"):
            keep = r["keep"]
            # 6 x the subnetwork's parameters, plus the attention scores and
            # their products, scaled by the heads kept, per token.
            flops = 6 * r["parameters"] + 12 * r["n_layer"] * r["n_embd"] * r["context"] * keep
            r["flops_per_token"] = flops
            r["mfu"] = round(flops * r["tokens_per_s"] / peak, 4) if peak else None
    out = {"rows": rows, "gpu": name, "peak_bf16_flops": peak}

    # Ratios against PyTorch's loop of the same run of bench/gpu.sh (rows may
    # come from several runs, each marked with its "run").
    def find(bench, run, **match):
        return next((r for r in rows if r["bench"] == bench and r.get("run") == run
                     and all(r.get(k) == v for k, v in match.items())), None)

    for run in sorted({r.get("run") for r in rows}, key=str):
        torch_loop = find("gpu_step", run, impl="python", keep=1.0)
        daemon = find("gpu_daemons", run, label="keep1")
        step = find("gpu_step", run, impl="cpp", keep=1.0)
        if torch_loop and daemon:
            out["gpu_worker_vs_pytorch"] = round(
                daemon["tokens_per_s"] / torch_loop["tokens_per_s"], 3)
        if torch_loop and step:
            out["gpu_step_vs_pytorch"] = round(
                step["tokens_per_s"] / torch_loop["tokens_per_s"], 3)
    for r in rows:
        if r["bench"] == "gpu_build":
            out["build_s"] = r["seconds"]
        if r["bench"] == "gpu_total":
            out["total_s"] = r["seconds"]
        if r["bench"] == "gpu_tests":
            out["cuda_tests_passed"], out["cuda_tests_failed"] = r["passed"], r["failed"]
    return out


def unequal_workers(rows):
    rows = {r["label"]: r for r in rows if r["bench"] == "unequal_workers"}
    if "equal" not in rows:
        return None
    base = rows["equal"]["median_round_s"]
    out = {"runs": {k: {x: v for x, v in r.items() if x != "rounds"} for k, r in rows.items()},
           "rounds": {k: r["rounds"] for k, r in rows.items()}}
    for label, key in (("half-learned", "unequal_round_ratio_units"),
                       ("half-steps", "unequal_round_ratio"),
                       ("half-equal", "unequal_round_ratio_equal_quota")):
        if label in rows:
            out[key] = round(rows[label]["median_round_s"] / base, 3)
            out[key + "_rejected"] = rows[label]["rejected_updates"]
    # The learned deals' losses over seeds: half-learned and half-steps are
    # seed 3, half-learned-seedN and half-steps-seedN seed N.
    for prefix, key in (("half-learned", "half_learned"), ("half-steps", "half_steps")):
        by_seed = {int(k.rsplit("seed", 1)[1]) if "seed" in k else 3: r["final_val_loss"]
                   for k, r in rows.items() if k.startswith(prefix)}
        if by_seed:
            out[key + "_final_val_loss_by_seed"] = {str(k): v for k, v in sorted(by_seed.items())}
            out[key + "_final_val_loss_mean"] = round(statistics.mean(by_seed.values()), 5)
    return out


LOG_SECTIONS = {"transport": transport, "round_overhead": round_overhead,
                "worker_step": worker_step, "system": system, "tokenizer": tokenizer,
                "gpt2_small": gpt2_small, "compute_dtype": compute_dtype, "gpu": gpu,
                "unequal_workers": unequal_workers}


# ---------------------------------------------------------------------------
# Sections from CSV files.

def learning_screen(path):
    """bench/learning.sh: validation loss of twist-2w and local_sgd-2w at the
    bytes twist-2w moved in its whole run (mean over seeds), and final
    losses."""
    rows = [r for r in csv.DictReader(open(path)) if r["val_loss"]]
    by = collections.defaultdict(lambda: collections.defaultdict(list))
    for r in rows:
        by[r["label"]][int(r["round"])].append((float(r["bytes"]), float(r["val_loss"])))

    def curve(label):  # [(mean bytes, mean val)] by round
        return [(statistics.mean(b for b, _ in v), statistics.mean(l for _, l in v))
                for _, v in sorted(by[label].items())]

    def loss_at(points, budget):  # linear in bytes between evaluations
        for (b0, l0), (b1, l1) in zip(points, points[1:]):
            if b0 <= budget <= b1:
                return l0 + (l1 - l0) * (budget - b0) / (b1 - b0) if b1 > b0 else l1
        return None

    out = {"final_val_loss": {label: round(curve(label)[-1][1], 4) for label in sorted(by)}}
    if "twist-2w" in by and "local_sgd-2w" in by:
        twist = curve("twist-2w")
        budget = twist[-1][0]
        baseline = loss_at(curve("local_sgd-2w"), budget)
        out["loss_at_equal_bytes"] = {
            "bytes": budget, "twist-2w": round(twist[-1][1], 4),
            "local_sgd-2w": None if baseline is None else round(baseline, 4)}
    return out


def learning(path):
    """bench/default_recipe.sh: the default recipe at 2, 4 and 8 workers
    against the plain loop (final scores, mean over seeds 3-5, minus the plain
    loop's on the same seeds), DiLoCo and the recipe the defaults replaced on
    the same workers, bytes moved, the grid the defaults were chosen on (means
    over seeds 1-2), and, from the per-round curves of seed 3, the loss at the
    plain loop's wall time and the time each run takes to reach the plain
    loop's final loss."""
    by = collections.defaultdict(dict)  # label -> seed -> row
    for r in csv.DictReader(open(path)):
        by[r["label"]][int(r["seed"])] = r
    plain = by.get("pytorch-loop", {})

    def final(r):
        return float(r["final_val_loss"])

    runs = {}
    for label, seeds in sorted(by.items()):
        losses = [final(r) for _, r in sorted(seeds.items())]
        r = next(iter(seeds.values()))
        runs[label] = {
            "seeds": sorted(seeds), "final_val_loss": round(statistics.mean(losses), 5),
            "final_val_loss_sd": round(statistics.stdev(losses), 5) if len(losses) > 1 else 0.0,
            "workers": int(r["workers"]), "threads": int(r["threads"]),
            "deal": r["deal"], "local_steps": int(r["local_steps"]),
            "megabytes_moved": round((float(r["bytes_sent"]) + float(r["bytes_received"])) / 1e6, 1),
            # The first seed's: seed 3 of the scored runs ran on a quiet machine.
            "wall_seconds_first_seed": round(float(seeds[min(seeds)]["wall_seconds"]), 1)}
    out = {"runs": runs}

    def vs_plain(label):  # paired over the seeds both have
        seeds = sorted(set(by.get(label, {})) & set(plain))
        if not seeds:
            return None
        return round(statistics.mean(final(by[label][s]) - final(plain[s]) for s in seeds), 5)

    for key, label in (("default_twist_2w_vs_plain", "default-2w"),
                       ("default_twist_4w_vs_plain", "default-4w"),
                       ("default_twist_8w_vs_plain", "default-8w"),
                       ("disjoint_twist_4w_vs_plain", "quarters-4w"),
                       ("disjoint_twist_8w_vs_plain", "eighths-8w"),
                       ("old_default_twist_2w_vs_plain", "old-default-2w"),
                       ("old_default_twist_4w_vs_plain", "old-default-4w"),
                       ("diloco_2w_vs_plain", "diloco-2w"),
                       ("diloco_4w_vs_plain", "diloco-4w"),
                       ("first_pass_twist_2w_vs_plain", "score-2w-lr0.7-m0.7"),
                       ("first_pass_twist_4w_vs_plain", "score-4w-lr0.7-m0.7"),
                       ("first_pass_twist_8w_vs_plain", "score-8w-lr0.7-m0.7")):
        d = vs_plain(label)
        if d is not None:
            out[key] = d
            out[key + "_seeds"] = sorted(set(by[label]) & set(plain))
    grid = {label[len("grid-"):]: v["final_val_loss"] for label, v in runs.items()
            if label.startswith("grid-")}
    if grid:
        out["grid_mean_seeds_1_2"] = grid
    rounds_path = os.path.join(os.path.dirname(path), "..", "..", "runs", "bench",
                               "default_recipe", "rounds.csv")
    if os.path.exists(rounds_path) and "pytorch-loop" in by:
        curves = collections.defaultdict(list)  # label -> [(seconds, val)]
        for r in csv.DictReader(open(rounds_path)):
            if r["seed"] == "3" and r["val_loss"] and r.get("elapsed_seconds"):
                curves[r["label"]].append((float(r["elapsed_seconds"]), float(r["val_loss"])))
        target = sorted(curves.get("pytorch-loop", []))
        if target:
            plain_s, plain_loss = target[-1]
            timing = {}
            for label, points in sorted(curves.items()):
                if label.startswith("grid-") or "-lr0.7-m0.7" in label:
                    continue
                points.sort()

                def loss_at(s):  # linear between evaluations; a finished run keeps its last
                    if s >= points[-1][0]:
                        return points[-1][1]
                    for (t0, l0), (t1, l1) in zip(points, points[1:]):
                        if t0 <= s <= t1:
                            return l0 + (l1 - l0) * (s - t0) / (t1 - t0) if t1 > t0 else l1
                    return None

                at = loss_at(plain_s)
                reach = next((t for t, l in points if l <= plain_loss), None)
                timing[label] = {
                    "loss_at_plain_seconds": None if at is None else round(at, 4),
                    "loss_at_seconds": {str(s): None if loss_at(s) is None else round(loss_at(s), 4)
                                        for s in (60, 90, 120)},
                    "seconds_to_plain_final_loss": None if reach is None else round(reach, 1),
                    "final_curve_loss": round(points[-1][1], 4),
                    "seconds": round(points[-1][0], 1)}
            out["wall_time_seed3"] = {"plain_seconds": round(plain_s, 1),
                                      "plain_curve_final_loss": round(plain_loss, 4),
                                      "runs": timing}
    return out


def tickets(path):
    out = {}
    for r in csv.DictReader(open(path)):
        key = "full" if r["kind"] == "full" else f"{r['kind']}_{r['scaling']}_keep{r['keep']}"
        out.setdefault(r["model"], {})[key] = round(float(r["val_loss"]), 4)
    return {"val_loss": out}


def optimizer_state(path):
    by = collections.defaultdict(list)
    for r in csv.DictReader(open(path)):
        by[r["label"]].append(r)
    runs = {}
    for label, rs in by.items():
        losses = [float(r["final_val_loss"]) for r in rs]
        runs[label] = {
            "seeds": len(rs), "final_val_loss": round(statistics.mean(losses), 4),
            "final_val_loss_sd": round(statistics.stdev(losses), 4) if len(losses) > 1 else 0.0,
            "megabytes_moved": round((float(rs[0]["bytes_sent"]) + float(rs[0]["bytes_received"])) / 1e6, 1),
            "workers": int(rs[0]["workers"]), "threads": int(rs[0]["threads"]),
            "wall_seconds_seed1": float(rs[0]["wall_seconds"]) if rs[0]["wall_seconds"] else None}
    out = {"runs": runs}
    plain = runs.get("pytorch-loop")
    twist = {k: v for k, v in runs.items() if k.startswith("twist-2w")}
    if plain and twist:
        best = min(twist, key=lambda k: twist[k]["final_val_loss"])
        out["best_twist_2w"] = best
        out["best_twist_2w_vs_plain_loss"] = round(
            twist[best]["final_val_loss"] - plain["final_val_loss"], 4)
    return out


def tokenizers(path):
    rows = list(csv.DictReader(open(path)))
    return {"runs": {r["tokenizer"]: {k: (float(v) if k != "tokenizer" else v) for k, v in r.items()}
                     for r in rows}}


def bpe_tickets(path):
    rows = list(csv.DictReader(open(path)))
    ppl = lambda r: math.exp(float(r["val_loss"]))  # noqa: E731
    out = {"val_loss": {}}
    for r in rows:
        key = "full" if r["kind"] == "full" else f"{r['kind']}_{r['scaling']}_keep{r['keep']}"
        out["val_loss"].setdefault(r["model"], {})[key] = round(float(r["val_loss"]), 4)
    for keep in ("0.5", "0.25"):
        ticket = [r for r in rows if r["model"] == "bpe-twist" and r["kind"] == "random"
                  and r["keep"] == keep]
        pruned = [r for r in rows if r["model"] == "bpe-plain" and r["kind"].startswith("pruned")
                  and r["keep"] == keep]
        if not ticket or not pruned:
            continue
        best_ticket = min(ticket, key=ppl)
        best_pruned = min(pruned, key=ppl)
        suffix = "" if keep == "0.5" else "_keep0.25"
        out[f"bpe_ticket_vs_pruning_ppl_ratio{suffix}"] = round(ppl(best_ticket) / ppl(best_pruned), 3)
        out[f"ticket{suffix}"] = {"scaling": best_ticket["scaling"], "ppl": round(ppl(best_ticket), 2)}
        out[f"best_pruning{suffix}"] = {"criterion": best_pruned["kind"],
                                        "scaling": best_pruned["scaling"],
                                        "ppl": round(ppl(best_pruned), 2)}
    return out


def compute_dtype_loss(path):
    """bench/compute_dtype.sh loss: bfloat16 against float32 compute, same seeds."""
    rows = list(csv.DictReader(open(path)))
    by = collections.defaultdict(dict)  # seed -> dtype -> loss
    for r in rows:
        by[r["seed"]][r["label"].rsplit("-", 1)[1]] = float(r["final_val_loss"])
    diffs = [d["bfloat16"] - d["float32"] for d in by.values() if len(d) == 2]
    out = {"rows": rows}
    if diffs:
        # validation nats/byte, bfloat16 minus float32: the mean over seeds
        out["bf16_vs_f32_loss_delta"] = round(statistics.mean(diffs), 4)
        out["seeds"] = len(diffs)
    return out


def communication(path):
    """bench/compression.sh: each compression mode's loss against none's at the
    same seed (quality), and a GPT-2-small worker's bytes per round (gpt2)."""
    rows = list(csv.DictReader(open(path)))
    loss = {(r["label"], r["seed"]): float(r["final_val_loss"]) for r in rows}
    sent = {(r["label"], r["seed"]): int(r["bytes_received"]) for r in rows}
    dealt = {(r["label"], r["seed"]): int(r["bytes_sent"]) for r in rows}
    out = {"rows": rows, "modes": {}}
    for mode in ["none", "int8", "int4", "topk"]:
        label = "compression-" + mode
        seeds = sorted(s for (l, s) in loss if l == label and ("compression-none", s) in loss)
        if not seeds:
            continue
        deltas = [loss[(label, s)] - loss[("compression-none", s)] for s in seeds]
        out["modes"][mode] = {
            "loss_delta": round(statistics.mean(deltas), 4),
            "loss_deltas": [round(d, 4) for d in deltas],
            "bytes_from_workers_vs_none": round(statistics.mean(
                sent[(label, s)] / sent[("compression-none", s)] for s in seeds), 4),
            "bytes_to_workers_vs_none": round(statistics.mean(
                dealt[(label, s)] / dealt[("compression-none", s)] for s in seeds), 4),
            "seeds": len(seeds)}
        if mode != "none":
            # validation nats/byte minus none's at equal steps, mean over seeds
            out[f"{mode}_loss_delta"] = out["modes"][mode]["loss_delta"]
    codec = os.path.join(os.path.dirname(path), "communication_codec.jsonl")
    if os.path.exists(codec):
        rows_ = [json.loads(line) for line in open(codec) if line.strip()]
        out["codec_rows"] = [r for r in rows_ if r["bench"] == "codec"]
        out["deal_rows"] = [r for r in rows_ if r["bench"] == "deal"]
    gpt2 = os.path.join(os.path.dirname(path), "communication_gpt2.jsonl")
    if os.path.exists(gpt2):
        rounds = [json.loads(line) for line in open(gpt2) if line.strip()]
        out["gpt2_rounds"] = rounds
        for r in rounds:
            if r["round"] == 5:
                mb = (r["bytes_to_worker"] + r["bytes_from_worker"]) / 1e6
                key = ("gpt2_small_mb_per_round" if r["compression"] == "topk"
                       else "gpt2_small_mb_per_round_uncompressed")
                out[key] = round(mb, 1)
    shaped = os.path.join(os.path.dirname(path), "shaped.jsonl")
    if os.path.exists(shaped):
        out.update(shaped_cluster([json.loads(line) for line in open(shaped) if line.strip()]))
    return out


def shaped_cluster(rows):
    """bench/shaped_cluster.sh: per mode (compression, and `_overlap` for the
    runs with overlap_steps), the median over rounds of the round's time over
    its slowest worker's compute, the median idle fraction, bytes, the final
    validation loss and the wall time."""
    modes = {}
    for mode, overlap in [(m, o) for o in [False, True] for m in ["none", "int8", "int4", "topk"]]:
        key = mode + ("_overlap" if overlap else "")
        run = [r for r in rows if r["compression"] == mode and r.get("overlap", False) == overlap]
        rs = [r for r in run if r["round"] > 0]
        if not rs:
            continue
        vals = [r for r in run if r["val_loss"] is not None]
        modes[key] = {
            "rate": rs[0]["rate"], "overlap": overlap,
            "overlap_steps": rs[0].get("overlap_steps", 0), "rounds": len(rs),
            "round_vs_compute": round(statistics.median(
                r["duration_s"] / r["slowest_compute_s"] for r in rs), 3),
            "median_round_s": round(statistics.median(r["duration_s"] for r in rs), 3),
            "median_slowest_compute_s": round(statistics.median(r["slowest_compute_s"] for r in rs), 3),
            "worker_idle_fraction": round(statistics.median(
                f for r in rs for f in r["idle_fraction"]), 3),
            "mb_moved": round(sum(r["bytes_sent"] + r["bytes_received"] for r in rs) / 1e6, 1),
            "final_val_loss": vals[-1]["val_loss"], "wall_s": round(rs[-1]["wall_s"], 1)}
    if not modes:
        return {}
    out = {"shaped": modes}
    if "none" in modes:
        # today's behaviour: no compression, no overlap
        out["shaped_round_vs_compute_none"] = modes["none"]["round_vs_compute"]
        out["worker_idle_fraction_none"] = modes["none"]["worker_idle_fraction"]
    for suffix, among in [("", [m for m in modes if modes[m]["overlap"]]),
                          ("_no_overlap", [m for m in modes if not modes[m]["overlap"]])]:
        if not among:
            continue
        best = min(among, key=lambda m: modes[m]["round_vs_compute"])
        out["shaped_best_mode" + suffix] = best
        out["shaped_round_vs_compute_best" + suffix] = modes[best]["round_vs_compute"]
        out["worker_idle_fraction_best" + suffix] = modes[best]["worker_idle_fraction"]
    return out


CSV_SECTIONS = {"compute_dtype_loss": compute_dtype_loss, "learning": learning,
                "learning_screen": learning_screen, "tickets": tickets, "optimizer_state": optimizer_state,
                "tokenizers": tokenizers, "bpe_tickets": bpe_tickets,
                "communication": communication}

# Sections whose CSV is not named after them.
CSV_FILES = {"learning": "default_recipe.csv", "learning_screen": "learning.csv"}


def main():
    args = sys.argv[1:]
    commit = None
    if "--commit" in args:
        i = args.index("--commit")
        commit = args[i + 1]
        del args[i:i + 2]
    commit = commit or head()
    # A commit other than HEAD: data measured earlier, dated by that commit.
    date = datetime.date.today().isoformat() if commit == head() else subprocess.run(
        ["git", "show", "-s", "--format=%cs", commit], capture_output=True, text=True,
        check=True).stdout.strip()
    stamp = {"commit": commit, "date": date}
    if args[0] == "--csv":
        name, out_path = args[1], args[2]
        sections = {name: CSV_SECTIONS[name](
            os.path.join(os.path.dirname(os.path.abspath(out_path)), CSV_FILES.get(name, f"{name}.csv")))}
    else:
        log, out_path = args
        rows = [json.loads(line[5:]) for line in open(log) if line.startswith("JSON ")]
        sections = {name: f(rows) for name, f in LOG_SECTIONS.items()}
        sections = {k: v for k, v in sections.items() if v is not None}
    results = json.load(open(out_path)) if os.path.exists(out_path) else {}
    if "sections" not in results:  # the flat layout of older runs: start over
        results = {"sections": {}}
    for name, section in sections.items():
        results["sections"][name] = {**stamp, **section}
    json.dump(results, open(out_path, "w"), indent=1, sort_keys=True)
    for name, section in sections.items():
        print(f"== {name} ({commit[:10]})")
        print(json.dumps({k: v for k, v in section.items() if k not in ("rows", "chunk_sweep")},
                         indent=1, sort_keys=True)[:3000])


if __name__ == "__main__":
    main()
