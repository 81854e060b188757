#!/usr/bin/env python3
"""Figures and tables of the benchmarks (matplotlib, from Debian's
python3-matplotlib).

    plot.py learning docs/bench/learning.csv docs/bench
    plot.py tickets docs/bench/tickets.csv docs/bench
    plot.py optimizer_state docs/bench/optimizer_state.csv ROUNDS.csv docs/bench
    plot.py shaped docs/bench/shaped.jsonl docs/bench
"""
import collections
import csv
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def mean_std(values):
    m = sum(values) / len(values)
    s = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, s


STYLE = {  # label -> (colour, line style)
    "twist-2w": ("tab:blue", "-"), "twist-2w-3of4": ("tab:cyan", "-"),
    "twist-2w-L10": ("tab:blue", ":"), "twist-4w": ("tab:purple", "-"),
    "twist-4w-2of4": ("tab:pink", "-"), "twist-2w-nesterov": ("tab:olive", "-"),
    "twist-2w-correction": ("tab:brown", "-"), "twist-2w-bf16": ("tab:gray", "--"),
    "local_sgd-2w": ("tab:orange", "-"), "local_sgd-4w": ("tab:red", "-"),
    "single-RL": ("black", "-"), "single-2RL": ("black", "--"), "single-4RL": ("black", ":"),
}


def learning(path, out):
    rows = list(csv.DictReader(open(path)))
    # label -> round -> list of (val, bytes, worker_s, steps, flops) over seeds
    series = collections.defaultdict(lambda: collections.defaultdict(list))
    for r in rows:
        if r["val_loss"]:
            series[r["label"]][int(r["round"])].append(
                (float(r["val_loss"]), float(r["bytes"]), float(r["worker_seconds"]),
                 int(r["steps_per_worker"]), float(r["flops"])))
    labels = [l for l in STYLE if l in series] + [l for l in series if l not in STYLE]
    figures = [
        ("learning_val_vs_steps.png", "steps per worker (rounds x local steps)", 3, False, True),
        ("learning_val_vs_bytes.png", "bytes communicated (coordinator <-> workers)", 1, True, False),
        ("learning_val_vs_compute.png", "worker compute (training FLOPs, all workers)", 4, True,
         True),
    ]
    for name, xlabel, column, logx, with_single in figures:
        fig, ax = plt.subplots(figsize=(8, 5))
        for label in labels:
            if not with_single and label.startswith("single"):
                continue  # a single worker sends nothing
            points = sorted(series[label].items())
            xs = [mean_std([p[column] for p in v])[0] for _, v in points]
            ms = [mean_std([p[0] for p in v]) for _, v in points]
            if logx:
                keep = [i for i, x in enumerate(xs) if x > 0]  # log axis: from round 1
                xs, ms = [xs[i] for i in keep], [ms[i] for i in keep]
            colour, style = STYLE.get(label, (None, "-"))
            ax.plot(xs, [m for m, _ in ms], style, color=colour, label=label, linewidth=1.5)
            ax.fill_between(xs, [m - s for m, s in ms], [m + s for m, s in ms], color=colour,
                            alpha=0.15)
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation loss (nats per byte)")
        ax.set_ylim(top=3.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
        ax.set_title("Brown Corpus, 4 layers x 4 heads x 128, mean and spread over 3 seeds")
        fig.tight_layout()
        fig.savefig(os.path.join(out, name), dpi=110)
        plt.close(fig)
    # Final figures per label, as a Markdown table.
    print("| run | seeds | final val loss (mean ± sd) | MB moved | TFLOPs | worker-seconds "
          "| steps per worker |")
    print("|---|---|---|---|---|---|---|")
    for label in labels:
        last = max(series[label])
        v = series[label][last]
        m, s = mean_std([p[0] for p in v])
        print(f"| {label} | {len(v)} | {m:.4f} ± {s:.4f} | {mean_std([p[1] for p in v])[0] / 1e6:.0f} "
              f"| {mean_std([p[4] for p in v])[0] / 1e12:.1f} | {mean_std([p[2] for p in v])[0]:.0f} "
              f"| {v[0][3]} |")


def tickets(path, out):
    rows = list(csv.DictReader(open(path)))
    full = {r["model"]: float(r["val_loss"]) for r in rows if r["kind"] == "full"}
    by = collections.defaultdict(list)
    for r in rows:
        if r["kind"] != "full":
            by[(r["model"], r["kind"], r["scaling"])].append(r)
    colours = {"twist-2w": "tab:blue", "local_sgd-2w": "tab:orange", "single-RL": "black"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, scaling in zip(axes, ("scaled", "correction")):
        for (model, kind, sc), pts in sorted(by.items()):
            if sc != scaling:
                continue
            pts = sorted(pts, key=lambda r: float(r["keep"]))
            xs = [1.0] + [float(r["keep"]) for r in reversed(pts)]
            ys = [full[model]] + [float(r["val_loss"]) for r in reversed(pts)]
            ax.plot(xs, ys, "-o" if kind == "best" else "--x", color=colours.get(model),
                    label=f"{model}, {kind}")
        ax.set_xlabel("fraction of each layer's heads and FFN columns kept")
        ax.set_title("scaled by k/m" if scaling == "scaled" else "shift-corrected biases")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation loss (nats per byte)")
    axes[1].legend(fontsize=8)
    fig.suptitle("Subnetworks of trained models, no fine-tuning (best: by a calibration score)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "tickets.png"), dpi=110)
    print("| model | scaling | keep | random (mean ± sd) | best of samples | parameters | CPU speedup |")
    print("|---|---|---|---|---|---|---|")
    for (model, kind, scaling), pts in sorted(by.items()):
        if kind != "random":
            continue
        for r in sorted(pts, key=lambda r: -float(r["keep"])):
            best = [b for b in by[(model, "best", scaling)] if b["keep"] == r["keep"]][0]
            print(f"| {model} | {scaling} | {r['keep']} | {float(r['val_loss']):.4f} ± "
                  f"{float(r['val_loss_sd']):.4f} | {float(best['val_loss']):.4f} | "
                  f"{r['parameters']} | {float(r['speedup']):.2f}x |")
    for model, loss in sorted(full.items()):
        print(f"| {model} | full model | 1 | {loss:.4f} | | | 1.00x |")


def optimizer_state(summary_path, rounds_path, out):
    """Validation loss against steps per worker and against bytes moved, seed
    1 of every run of bench/optimizer_state.sh, and a markdown table of the
    final scores (mean and spread over the seeds run)."""
    rounds = list(csv.DictReader(open(rounds_path)))
    series = collections.defaultdict(list)  # label -> [(steps, bytes, val)]
    for r in rounds:
        if r["seed"] == "1" and r["val_loss"]:
            series[r["label"]].append(
                (int(r["steps_per_worker"]), float(r["bytes"]), float(r["val_loss"])))
    for name, column, xlabel, logx in (
            ("optimizer_state_val_vs_steps.png", 0, "steps per worker", False),
            ("optimizer_state_val_vs_bytes.png", 1, "bytes moved (coordinator <-> workers)", True)):
        fig, ax = plt.subplots(figsize=(8, 5))
        for label, points in sorted(series.items()):
            points.sort()
            xs = [p[column] for p in points if p[column] > 0 or not logx]
            ys = [p[2] for p in points if p[column] > 0 or not logx]
            style = "--" if "coordinator" in label else (":" if "fresh" in label else "-")
            ax.plot(xs, ys, style, label=label, linewidth=1)
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation loss (nats per byte)")
        ax.set_ylim(top=2.6)
        ax.legend(fontsize=6, ncol=2)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(out, name), dpi=120)
        plt.close(fig)
    by_label = collections.defaultdict(list)
    for r in csv.DictReader(open(summary_path)):
        by_label[r["label"]].append(r)
    print("| run | seeds | final val loss | MB moved | wall s (seed 1) |")
    print("|---|---|---|---|---|")
    for label, rs in by_label.items():
        m, sd = mean_std([float(r["final_val_loss"]) for r in rs])
        mb = (float(rs[0]["bytes_sent"]) + float(rs[0]["bytes_received"])) / 1e6
        print(f"| {label} | {len(rs)} | {m:.4f} ± {sd:.4f} | {mb:.0f} | {float(rs[0]['wall_seconds']):.0f} |")


def shaped(path, out):
    """bench/shaped_cluster.sh: validation loss against wall time and against
    rounds, one line per compression mode, dashed with overlapping rounds."""
    import json
    rows = [json.loads(line) for line in open(path) if line.strip()]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    colours = {"none": "tab:blue", "int8": "tab:orange", "int4": "tab:green", "topk": "tab:red"}
    for overlap in [False, True]:
        for mode in ["none", "int8", "int4", "topk"]:
            points = [r for r in rows if r["compression"] == mode and r.get("overlap", False) == overlap
                      and r["val_loss"] is not None]
            if not points:
                continue
            label = f"{mode}, {points[0]['overlap_steps']} steps ahead" if overlap else mode
            for ax, x in zip(axes, ["wall_s", "round"]):
                ax.plot([p[x] for p in points], [p["val_loss"] for p in points], marker="o",
                        color=colours[mode], linestyle="--" if overlap else "-",
                        markersize=2, linewidth=1, label=label)
    rate = rows[0]["rate"] if rows else ""
    axes[0].set_xlabel(f"wall seconds (coordinator link {rate} each way)")
    axes[1].set_xlabel("round (50 local steps each)")
    for ax in axes:
        ax.set_ylabel("validation loss (nats per byte)")
        ax.set_ylim(top=2.6)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "shaped_loss_vs_time.png"), dpi=120)
    plt.close(fig)


def default_recipe(summary_path, rounds_path, out):
    """Validation loss against wall time and against bytes moved, seed 3 of
    every run of bench/default_recipe.sh but the grid and the first pass's
    recipe (learning rate 0.7), the plain loop included (its bytes are zero:
    a horizontal line at its final loss on the bytes plot); the disjoint
    splits (quarters-4w, eighths-8w) dash-dotted."""
    series = collections.defaultdict(list)  # label -> [(seconds, bytes, val)]
    for r in csv.DictReader(open(rounds_path)):
        if r["seed"] == "3" and r["val_loss"] and r.get("elapsed_seconds") \
                and not r["label"].startswith("grid-") and "-lr0.7-m0.7" not in r["label"]:
            series[r["label"]].append(
                (float(r["elapsed_seconds"]), float(r["bytes"]), float(r["val_loss"])))
    plain = sorted(series.pop("pytorch-loop", []))
    for name, column, xlabel, logx in (
            ("default_recipe_val_vs_time.png", 0, "wall seconds on 2 cores", False),
            ("default_recipe_val_vs_bytes.png", 1, "bytes moved (coordinator <-> workers)", True)):
        fig, ax = plt.subplots(figsize=(8, 5))
        for label, points in sorted(series.items()):
            points.sort()
            keep = [p for p in points if p[column] > 0 or not logx]
            style = (":" if label.startswith("old-") else "--" if label.startswith("diloco")
                     else "-." if label.startswith(("quarters", "eighths")) else "-")
            ax.plot([p[column] for p in keep], [p[2] for p in keep], style, label=label, linewidth=1)
        if plain:
            if logx:
                ax.axhline(plain[-1][2], color="black", linewidth=0.8, label="pytorch-loop (final)")
            else:
                ax.plot([p[0] for p in plain], [p[2] for p in plain], "k-o", markersize=3,
                        label="pytorch-loop", linewidth=1)
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation loss (nats per byte, 8 batches)")
        ax.set_ylim(1.7, 2.6)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(out, name), dpi=120)
        plt.close(fig)


if __name__ == "__main__":
    {"learning": learning, "tickets": tickets, "default_recipe": default_recipe,
     "optimizer_state": optimizer_state, "shaped": shaped}[sys.argv[1]](*sys.argv[2:])
