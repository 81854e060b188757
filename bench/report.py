#!/usr/bin/env python3
"""Writes docs/benchmarks.md from docs/bench/results.json: every figure on the
page comes from the file, and every section names the commit it measured.

    report.py docs/bench/results.json docs/benchmarks.md
"""
import math
import sys


def fmt(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def mb(b):
    return f"{b / 1e6:,.0f}"


def gb(b):
    return f"{b / 1e9:.2f}"


def stamp(s):
    """The commit and date a section measured, and its note (which rows were
    measured at other commits), if it has one."""
    out = f"*Measured at commit `{s['commit'][:10]}` on {s['date']}.*\n"
    return out + (f"\n{s['note']}\n" if s.get("note") else "")


def transport(s):
    out = ["## Transport", "", stamp(s), """`bench/transport_bench.cc` streams one float32 tensor coordinator to worker and
back through gRPC on loopback, assembling it into a preallocated tensor as the
worker does, and moves the same bytes through a plain socket pair in the same
run. *raw* is the daemons' path (`WorkerTransfer`: slices that point into the
tensor, decoded in place, one copy into the target); *typed* is generated
stubs on the same messages. Median of 5 transfers each way; 1 MiB chunks.
""", "| MB | raw TCP GB/s | raw gRPC GB/s (down / up) | raw / TCP | typed / TCP |",
           "|---|---|---|---|---|"]
    for r in s["rows"]:
        out.append(f"| {r['bytes'] / 1e6:.0f} | {r['tcp_gbps']:.2f} | {r['grpc_gbps']:.2f} "
                   f"({r['down_gbps']:.2f} / {r['up_gbps']:.2f}) | {r['ratio']:.2f} | "
                   f"{r.get('typed_ratio', 0):.2f} |")
    if s.get("chunk_sweep"):
        sweep = ", ".join(f"{r['chunk_bytes'] // 1024} KiB {r['grpc_gbps']:.2f}"
                          for r in s["chunk_sweep"])
        out += ["", f"Chunk size (raw path, {s['chunk_sweep'][0]['bytes'] / 1e6:.0f} MB, GB/s): "
                f"{sweep}."]
    return out


def round_overhead(s):
    out = ["## Round overhead on the coordinator", "", stamp(s), """`bench/round_overhead_bench.cc`: a steady-state round's partition, extraction
of every worker's slices, the finiteness check of every update as it is
received, and the merge, for GPT shapes of 1M to 300M parameters and 2 to 16
workers, against a `memcpy` of the bytes that move (every worker's slices out
and back, in pieces of at most 256 MB) in the same process, median of 3, and the minor page faults of one
round (the buffers are pooled and reused from round to round). Each row names
its recipe: `default` deals and merges as a spec that names neither (the
rolling deal, Nesterov's outer step with its velocity), `old` as one that
names the random deal and plain merging; and its threads: both recipes on one,
the default one again with the merge's tensors on 2 (the memcpy stays on one);
and the instruction set of its slicing and merging kernels (the widest the CPU
runs; the default recipe again with the generic kernels, as on a CPU without
AVX2; rows from before the kernels had several say generic).
A configuration whose round tensors would not fit in 80% of the machine's
available memory is skipped, and its row says what it needs; the medians
leave it out.
""", "| model | workers | recipe | threads | kernels | MB moved | partition | extract | check | merge | memcpy | ratio | page faults / round |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        if "ratio" not in r:  # too large for the machine's memory
            out.append(f"| {r['model']} | {r['workers']} | {r['recipe']} | "
                       f"{r['threads']} | {r.get('kernels', 'generic')} | skipped: needs about "
                       f"{r['skipped_needs_bytes'] / 1e9:.1f} GB, "
                       f"{r['available_bytes'] / 1e9:.1f} GB available | | | | | | | |")
            continue
        out.append(f"| {r['model']} | {r['workers']} | {r.get('recipe', 'old')} | "
                   f"{r.get('threads', 1)} | {r.get('kernels', 'generic')} | "
                   f"{mb(r['bytes_moved'])} | "
                   f"{r['partition_s'] * 1e3:.1f} ms | {r['extract_s'] * 1e3:.1f} ms | "
                   f"{r.get('check_s', 0) * 1e3:.1f} ms | {r['merge_s'] * 1e3:.1f} ms | "
                   f"{r['memcpy_s'] * 1e3:.1f} ms | {r['ratio']:.2f} | "
                   f"{r.get('page_faults_per_round', '-')} |")
    out.append("")
    for suffix, name in (("", "the default recipe"), ("_old_recipe", "the old recipe"),
                         ("_threads2", "the default recipe, merging on 2 threads"),
                         ("_generic_kernels", "the default recipe, generic kernels")):
        if "round_overhead_vs_memcpy" + suffix in s:
            out.append(f"Median ratio at 100M-300M parameters, {name}: "
                       f"**{s['round_overhead_vs_memcpy' + suffix]:.2f}** "
                       f"(worst {s['round_overhead_vs_memcpy_worst' + suffix]:.2f}).")
    out += ["", "The target is 2."]
    return out


def worker_step(s):
    out = ["## Worker compute", "", stamp(s), """`bench/worker_step_bench.cc` (C++, the worker's `TrainLocalSteps`) against
`bench/python_step.py` (Debian's `python3-torch`, the model of
`tests/reference_gpt.py`, the same shapes, AdamW, gradient clipping), on the
same number of threads. The model of the 2000-step Brown setting (4 layers,
width 128, batch 12 x 64); subnetworks keep that fraction of every layer's
heads and FFN columns. Three alternating runs of 40 steps each; the fastest
of each side.
""", "| keep | threads | parameters | C++ step | tokens/s | peak RSS | PyTorch step | peak RSS | PyTorch / C++ |",
           "|---|---|---|---|---|---|---|---|---|"]
    py = {(r["keep"], r.get("threads", 1)): r for r in s["fastest"]["python"]}
    for c in sorted(s["fastest"]["cpp"], key=lambda r: (r.get("threads", 1), -r["keep"])):
        p = py.get((c["keep"], c.get("threads", 1)))
        out.append(f"| {c['keep']:g} | {c.get('threads', 1)} | {c['parameters']:,} | {c['step_s'] * 1e3:.1f} ms | "
                   f"{c['tokens_per_s']:,.0f} | {c['peak_rss_bytes'] / 2**20:.0f} MiB | "
                   + (f"{p['step_s'] * 1e3:.1f} ms | {p['peak_rss_bytes'] / 2**20:.0f} MiB | "
                      f"{p['step_s'] / c['step_s']:.2f} |" if p else "- | - | - |"))
    return out


def system(s):
    out = ["## System efficiency", "", stamp(s), """`bench/system_bench.sh`: the quickstart job with the real daemons (a
coordinator and 2 workers, one thread each, on loopback), 20 local steps a
round. Per round, the slowest worker's compute, and the rest of its time from
assignment to update (transfers and waiting) as the coordinator measured it
that round; the overhead share is the part of the round's wall time that is
not that worker's compute.
""", "| round | wall | compute | transfer and wait | merge | evaluation | overhead |",
           "|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        out.append(f"| {r['round']} | {r['duration_s']:.2f} s | {r['compute_s']:.2f} s | "
                   f"{r['transfer_s'] * 1e3:.1f} ms | {r['merge_s'] * 1e3:.1f} ms | "
                   f"{r['eval_s'] * 1e3:.0f} ms | {100 * r['overhead_share']:.1f}% |")
    out += ["", f"Mean overhead share: **{100 * s['overhead_share']:.1f}%** "
            f"({100 * s['overhead_share_without_eval_rounds']:.1f}% in rounds without evaluation)."]
    return out


def tokenizer(s):
    out = ["## GPT-2 tokenizer", "", stamp(s), """`bench/tokenizer_bench.cc`: GPT-2 byte-pair encoding of the Brown Corpus on
one core, the text loaded into memory first (each file one document, as
`prepare --tokenizer=gpt2` reads it), a fresh tokenizer (empty cache) each
run, median of 5 runs; and the peak resident memory of a whole `prepare
--tokenizer=gpt2 --strip_tags` in a child process, of the corpus and of four
copies of it (streaming: the peak does not grow with the input).
""", "| text | MB | tokens | bytes per token | MB/s |", "|---|---|---|---|---|"]
    for r in s["rows"]:
        if r["bench"] == "tokenizer":
            out.append(f"| {'Brown, tags stripped' if r['text'] == 'stripped' else 'Brown, raw files'}"
                       f" | {r['bytes'] / 1e6:.2f} | {r['tokens']:,} | {r['bytes_per_token']:.2f} | "
                       f"**{r['mb_per_s']:.1f}** |")
    out.append("")
    for r in s["rows"]:
        if r["bench"] == "tokenizer_prepare":
            out.append(f"- prepare of the corpus x{r['copies']}: {r['seconds']:.1f} s, peak RSS "
                       f"{r['peak_rss_bytes'] / 1e6:.0f} MB")
    return out


def learning(s):
    out = ["## The default recipe at 2, 4 and 8 workers (byte-level Brown Corpus)", "", stamp(s),
           """`bench/default_recipe.sh`: the 2000-step Brown setting of `bench/optimizer_state.sh`
(4 layers x 4 heads x 128 wide, context 64, batch 12, 2000 local steps per
worker in 40 rounds of 50), one thread per worker, every run on the same 2
cores; every final model scored on the same 200 validation batches. The
defaults (rolling deal, Nesterov outer step with learning rate 1 and
momentum 0.7, each worker holding half of every layer) were chosen on the
grid below (seeds 1-2) and are scored on seeds 3-5 against the plain PyTorch
loop on the same seeds (one thread: its fastest setting on this machine).
`disjoint` (quarters-4w, eighths-8w) is the same recipe with the disjoint
split the default was before, each of n workers holding 1/n of every layer;
the grid's 4-worker rows and `first_pass` (the recipe chosen before the
second pass at 4 workers, learning rate 0.7, momentum 0.7) ran with it, and
`old_default` (random deal, plain merging) too. DiLoCo is `local_sgd` with
worker-resident state and the same outer step. Figures:
`docs/bench/default_recipe_val_vs_{time,bytes}.png`.
""", "| key | nats/byte | seeds |", "|---|---|---|"]
    for key in ("default_twist_2w_vs_plain", "default_twist_4w_vs_plain", "default_twist_8w_vs_plain",
                "disjoint_twist_4w_vs_plain", "disjoint_twist_8w_vs_plain",
                "first_pass_twist_2w_vs_plain", "first_pass_twist_4w_vs_plain",
                "first_pass_twist_8w_vs_plain",
                "old_default_twist_2w_vs_plain", "old_default_twist_4w_vs_plain",
                "diloco_2w_vs_plain", "diloco_4w_vs_plain"):
        if key in s:
            out.append(f"| `{key}` | {s[key]:+.4f} | {', '.join(map(str, s[key + '_seeds']))} |")
    out += ["", "| run | seeds | workers | final val loss | MB moved | wall s (first seed) |", "|---|---|---|---|---|---|"]
    for label, r in s["runs"].items():
        if label.startswith("grid-"):
            continue
        out.append(f"| {label} | {len(r['seeds'])} | {r['workers']} | {r['final_val_loss']:.4f} ± "
                   f"{r['final_val_loss_sd']:.4f} | {r['megabytes_moved']:.0f} | {r['wall_seconds_first_seed']:.0f} |")
    if "grid_mean_seeds_1_2" in s:
        out += ["", "The grid (rolling deal, worker-resident state; mean final loss over seeds 1-2, "
                "or seed 1 where `bench/default_recipe.sh` runs one):", "",
                "| workers, outer lr, momentum, local steps | final val loss |", "|---|---|"]
        for label, v in sorted(s["grid_mean_seeds_1_2"].items()):
            out.append(f"| {label} | {v:.4f} |")
    if "wall_time_seed3" in s:
        w = s["wall_time_seed3"]
        out += ["", f"Against wall time (seed 3, the per-round curves on 8 validation batches): the plain "
                f"loop ends at {w['plain_seconds']:.0f} s with {w['plain_curve_final_loss']:.4f}.", "",
                "| run | at 60 s | at 90 s | at 120 s | at the plain loop's end | seconds to reach its final loss | run's seconds |",
                "|---|---|---|---|---|---|---|"]
        for label, r in w["runs"].items():
            a = r["loss_at_seconds"]
            out.append(f"| {label} | {fmt(a['60'], 4)} | {fmt(a['90'], 4)} | {fmt(a['120'], 4)} | "
                       f"{fmt(r['loss_at_plain_seconds'], 4)} | "
                       f"{fmt(r['seconds_to_plain_final_loss'], 0)} | {r['seconds']:.0f} |")
        out += ["", "![validation loss against wall time](bench/default_recipe_val_vs_time.png)",
                "![validation loss against bytes moved](bench/default_recipe_val_vs_bytes.png)"]
    return out


def unequal_workers(s):
    out = ["## Unequal workers", "", stamp(s), """`bench/unequal_workers.sh`: the real daemons, 2 workers of one thread, the
2000-step Brown job of the default recipe (seed 3 unless the label names
another); in the `half-` runs
worker 2 is held to half a core by a cgroup's CPU quota (1.5 cores of work
in all: the floor of the round-time ratio is 1.33). Median round time over
rounds 2-40, each worker's median compute seconds, share of the dealt
parameters and local steps, and the final loss on the 200 validation batches.
`half-learned` shares the learned quota out as units (`quota_in: units`),
`half-steps` as local steps (`quota_in: local_steps`); `unequal_round_ratio`
is half-steps' median round over equal's, `unequal_round_ratio_units`
half-learned's.
""", "| run | quota | shared as | median round s | vs equal | rejected | worker 1 compute s, share, steps | worker 2 compute s, share, steps | final val loss |",
           "|---|---|---|---|---|---|---|---|---|"]
    base = s["runs"]["equal"]["median_round_s"]
    for label, r in s["runs"].items():
        ws = list(r["workers"].values())
        cells = " | ".join(f"{w['median_compute_s']:.2f}, {w['median_parameter_share']:.2f}, "
                           f"{fmt(w.get('median_local_steps'), 0)}" for w in ws)
        shared = r.get("quota_in", "QUOTA_IN_UNITS").replace("QUOTA_IN_", "").lower()
        out.append(f"| {label} | {r['quota']} | {shared} | {r['median_round_s']:.2f} | "
                   f"{r['median_round_s'] / base:.3f} | {r['rejected_updates']} | {cells} | "
                   f"{r['final_val_loss']:.4f} |")
    for key, name in (("half_learned", "units"), ("half_steps", "local steps")):
        if key + "_final_val_loss_mean" in s:
            seeds = ", ".join(f"seed {k} {v:.4f}" for k, v in s[key + "_final_val_loss_by_seed"].items())
            out += ["", f"The learned quota in {name} at half a core, by seed: {seeds}; mean "
                    f"**{s[key + '_final_val_loss_mean']:.4f}** (equal workers: the `learning` "
                    "section's `default-2w`, the same job in process)."]
    return out


def learning_screen(s):
    out = ["## Learning quality, first screen (byte-level Brown Corpus)", "", stamp(s), """`bench/learning.sh`: the same model (4 layers, width 128, context 64) trained
by each mode for the same steps per worker, 3 seeds; validation loss in nats
per byte. Figures: `docs/bench/learning_val_vs_*.png`.
""", "| run | final validation loss |", "|---|---|"]
    for label, v in s["final_val_loss"].items():
        out.append(f"| {label} | {v:.4f} |")
    if "loss_at_equal_bytes" in s:
        e = s["loss_at_equal_bytes"]
        out += ["", f"At the {e['bytes'] / 1e6:.0f} MB twist-2w moved in its run: twist-2w "
                f"{e['twist-2w']:.4f}, local_sgd-2w {fmt(e['local_sgd-2w'], 4)}."]
    return out


def tickets(s):
    out = ["## Golden tickets (byte-level)", "", stamp(s), """`bench/ticket_bench.cc` on the seed-1 models of the learning benchmark:
subnetworks at keep 3/4, 1/2 and 1/4 with no fine-tuning, partial sums scaled
by k/m or shift-corrected; random (mean of 12) and the best of 12 by a
calibration score on training data.
""", "| model | full | random 1/2, scaled | random 1/2, corrected | random 1/4, scaled |",
           "|---|---|---|---|---|"]
    for model, v in s["val_loss"].items():
        out.append(f"| {model} | {fmt(v.get('full'), 4)} | {fmt(v.get('random_scaled_keep0.5'), 4)} | "
                   f"{fmt(v.get('random_correction_keep0.5'), 4)} | "
                   f"{fmt(v.get('random_scaled_keep0.25'), 4)} |")
    return out


def optimizer_state(s):
    out = ["## Optimizer state across rounds", "", stamp(s), """`bench/optimizer_state.sh`: the Brown Corpus, 4 layers, width 128, context
64, batch 12, 2000 local steps per worker (40 rounds of 50, or 20 of 100)
from the same seeded initialisation, scored at the end on 200 fixed
validation batches (nats per byte). `pytorch-loop` is `bench/plain_loop.py`,
a plain PyTorch training loop on the same prepared files, the same batches
and the same schedule, scored by the same code. `single-*` is one worker
holding the whole model; `fresh`, `worker` and `coordinator` are where
AdamW's state lives between rounds; `rolling` deals each worker a window of
units that moves by one a round; `nesterov` adds the outer optimizer
(learning rate 0.7, momentum 0.9). Wall times were taken on a machine that
was also building and testing: compare losses and bytes, not seconds.
Figures: `docs/bench/optimizer_state_val_vs_{steps,bytes}.png`.
""", "| run | seeds | final validation loss | MB moved |", "|---|---|---|---|"]
    for label, r in s["runs"].items():
        spread = f" ± {r['final_val_loss_sd']:.4f}" if r["seeds"] > 1 else ""
        out.append(f"| {label} | {r['seeds']} | {r['final_val_loss']:.4f}{spread} | "
                   f"{r['megabytes_moved']:.0f} |")
    if "best_twist_2w" in s:
        out += ["", f"Best two-worker TwIST run: `{s['best_twist_2w']}`, "
                f"{s['best_twist_2w_vs_plain_loss']:+.4f} nats per byte from the plain loop."]
    return out


def tokenizers(s):
    out = ["## Bytes against GPT-2 BPE on the same text", "", stamp(s), """`bench/tokenizers.sh`: the quickstart's job (4 layers, width 128, context
128, batch 16, 2 workers) on the Brown Corpus prepared both ways, scored on
100 fixed validation batches. Losses per token do not compare
across tokenizers; divided by the validation text's bytes per token they are
nats per byte of text.
""", "| tokenizer | vocabulary | training tokens | bytes per token | loss per token | loss per byte | wall s |",
           "|---|---|---|---|---|---|---|"]
    first = next(iter(s["runs"].values()))
    if "rounds" in first:
        out[-2:-2] = [f"Each job: {first['rounds']:.0f} rounds of {first['local_steps']:.0f} "
                      "local steps.", ""]
    for name, r in s["runs"].items():
        out.append(f"| {name} | {r['vocab_size']:.0f} | {r['train_tokens']:,.0f} | "
                   f"{r['val_bytes_per_token']:.2f} | {r['val_loss_per_token']:.4f} | "
                   f"**{r['val_loss_per_byte']:.4f}** | {float(r['wall_seconds']):.0f} |")
    return out


def gpt2_small(s):
    runs = s["runs"]
    rounds = next(iter(runs.values())).get("rounds", 0)
    out = ["## GPT-2 small on this machine", "", stamp(s), f"""`bench/gpt2_small.sh` with `deploy/examples/gpt2-small.textproto` (12 layers,
12 heads, width 768, context 1024, vocabulary 50304, batch 1): the real
daemons, a coordinator and 2 workers with one thread each, on the Brown
Corpus in GPT-2 BPE, {rounds} rounds of 2 local steps, evaluated every 3rd.
Three jobs with fresh daemons each: keep 1 (local_sgd, every worker trains
the whole model) and keep 1/2 (twist), float32, and keep 1/2 in bfloat16;
every one uncompressed, with the example spec's recipe, the default one (in
twist mode the rolling deal and Nesterov's outer step, whose velocity is a
bfloat16 tensor per parameter on the coordinator, half the model's bytes; local_sgd averages plainly);
the coordinator merges on 2 threads (the workers wait for the
merge, so their cores are free then). Both daemons allocate with jemalloc,
set as `docs/architecture.md` ("Memory") describes. Peak memory is VmHWM,
read and reset after every round (`bench/round_memory.py`), so each round's
peak is its own.
""", "| run | worker parameters | bytes to a worker / round | back | s per local step | coordinator overhead / round | merge | coordinator peak | worker peak |",
           "|---|---|---|---|---|---|---|---|---|"]
    for label, r in sorted(runs.items(), key=lambda kv: (-kv[1]["worker_parameters"], kv[0])):
        out.append(f"| {label} | {r['worker_parameters'] / 1e6:.1f}M | {mb(r['bytes_to_worker'])} MB | "
                   f"{mb(r['bytes_from_worker'])} MB | {r['step_s']:.1f} | "
                   f"{r['coordinator_overhead_s']:.2f} s | {r['merge_s']:.2f} s | "
                   f"{gb(r['coordinator_peak_bytes'])} GB | {gb(r['worker_peak_bytes'])} GB |")
    out += ["", "Peak per round (GB; round 0 is the set-up and the first evaluation):", "",
            "| run | process | " + " | ".join(str(i) for i in range(rounds + 1)) + " |",
            "|---|---|" + "---|" * (rounds + 1)]
    for label, r in sorted(runs.items()):
        for process, key in (("coordinator", "coordinator_peak_by_round"), ("worker", "worker_peak_by_round")):
            if key in r:
                out.append(f"| {label} | {process} | " + " | ".join(gb(b) for b in r[key]) + " |")
    params = next(iter(runs.values()))["parameters"]
    model_bytes = s["model_bytes_f32"]
    out += ["", f"- The model: {params / 1e6:.1f}M parameters, {gb(model_bytes)} GB in "
            f"float32. Coordinator peak against that: **{s['coordinator_peak_vs_model_bytes']:.2f}x** "
            "(target at most 4x); where it goes, in multiples of the model's bytes:", "",
            "| run | before the job | model | velocity | round tensors | merge sums | rest | peak |",
            "|---|---|---|---|---|---|---|---|"]
    for label, r in sorted(runs.items()):
        b = r.get("coordinator_breakdown")
        if b:
            x = lambda v: f"{v / model_bytes:.2f}"
            out.append(f"| {label} | {x(b['idle'])} | {x(b['model'])} | {x(b.get('velocity', 0))} | "
                       f"{x(b['round_tensors'])} | "
                       f"{x(b['merge_sums'])} | {x(b['rest'])} | {x(r['coordinator_peak_bytes'])} |")
    out += ["", "  Round tensors: one pool for the slots' assignments and the updates received "
            "into their memory once streamed (local_sgd in float32: no extraction, the model "
            "itself is streamed to both slots; two updates); merge sums: one tile of scratch (128 KB) per tensor being merged, on "
            "each of 2 threads; rest: gRPC buffers, "
            "evaluation (a block of positions at a time) and the allocator's free blocks."]
    if "worker_half_vs_full_memory" in s:
        out.append(f"- A worker at keep 1/2 against keep 1: **{s['worker_half_vs_full_memory']:.2f}x** "
                   "(target at most 0.7x; the parameters alone put the floor at 0.66: the "
                   "replicated embeddings).")
    if "worker_half_bf16_gb" in s:
        f32 = runs.get("keep0.5-f32", {}).get("worker_peak_bytes")
        out.append(f"- The keep-1/2 worker with bfloat16 transport: **{s['worker_half_bf16_gb']:.2f} GB** "
                   "(target at most 3.5, and no higher than the float32 one"
                   + (f": {gb(f32)} GB" if f32 else "") + ").")
    if "worker_growth_after_round_2_gb" in s:
        out.append(f"- A worker's largest peak after round 2 over its round-2 peak, worst run: "
                   f"**{s['worker_growth_after_round_2_gb']:+.2f} GB** (no growth is 0).")
    for change, delta in s.get("brown_loss_check_mean_delta", {}).items():
        checks = [c for c in s["brown_loss_check"] if c["change"] == change]
        out.append(f"- Loss unchanged by {change}: the "
                   f"2000-step Brown runs of {checks[0]['recipe']}, seeds "
                   + ", ".join(str(c["seed"]) for c in checks) + ": before "
                   + ", ".join(f"{c['before']:.5f}" for c in checks) + f" (commit `{checks[0]['before_commit'][:10]}`), after "
                   + ", ".join(f"{c['after']:.5f}" for c in checks) + f" (commit `{checks[0]['after_commit'][:10]}`)"
                   + f"; means differ by **{delta:+.5f}** (target within 0.005).")
    out.append(f"- The coordinator's overhead per round (the round's wall time minus the slowest "
               f"worker's time from assignment to update: the deal, the merge, the records), "
               f"median over rounds, largest run: **{s['coordinator_overhead_s_max']:.4f} s** "
               "(target at most 0.25 s).")
    out += ["", *cluster_extrapolation(s)]
    return out


def cluster_extrapolation(s):
    """A round with 8 workers, from the measured bytes and the model's step
    FLOPs: what users can read before they buy time."""
    runs = s["runs"]
    half = runs.get("keep0.5-bf16") or runs.get("keep0.5-f32")
    full = runs.get("keep1-f32")
    if not half or not full:
        return []
    tokens = 1024  # a step of one sequence, as measured
    gpu_flops = 312e12 * 0.4  # an A100's dense bfloat16 peak, 40% of it used
    out = ["### What a round costs elsewhere (extrapolated)", "",
           """Per worker and round: the bytes measured above (they do not depend on the
worker count at a fixed keep ratio), and 6 x parameters FLOPs per token for a
training step (forward and backward) plus the attention's
12 x layers x context x width x keep. Assumed: 8 workers on 10 GbE at
1.1 GB/s each way, all through the coordinator's one link (so each direction
carries 8 workers' bytes); GPUs of an A100's speed (312 TFLOP/s dense
bfloat16) with 40% of it used; 20 local steps of 8 sequences of 1024 tokens;
the coordinator's overhead as measured here (CPU, 2 threads). A round is
the network time, the compute and the overhead, one after the other. Not
measured: a real cluster.
""", "| keep | bytes a worker moves / round | network, 8 workers | GPU compute | round on GPUs | network share | CPU compute here |",
           "|---|---|---|---|---|---|---|"]
    for label, keep, r in (("1", 1.0, full), ("1/2", 0.5, half)):
        moved = r["bytes_to_worker"] + r["bytes_from_worker"]
        network = 8 * max(r["bytes_to_worker"], r["bytes_from_worker"]) / 1.1e9
        flops_per_token = 6 * r["worker_parameters"] + 12 * 12 * 1024 * 768 * keep
        gpu = 20 * 8 * tokens * flops_per_token / gpu_flops
        round_s = network + gpu + r["coordinator_overhead_s"]
        cpu = 20 * 8 * r["step_s"]
        dtype = "bf16" if r is runs.get("keep0.5-bf16") else "f32"
        out.append(f"| {label} ({dtype}) | {mb(moved)} MB | {network:.1f} s | {gpu:.2f} s | "
                   f"{round_s:.1f} s | {100 * network / round_s:.0f}% | {cpu / 60:.0f} min |")
    return out


def bpe_tickets(s):
    out = ["## Golden tickets with GPT-2 BPE against structured pruning", "", stamp(s),
           """`bench/bpe_tickets.sh`: 4 layers, width 128, context 64, vocabulary 50304,
batch 8 on the Brown Corpus in GPT-2 BPE (chosen so that 2000 steps train in
minutes here). Both runs start from the same `init_from` weights and take 2000
steps per worker: TwIST with 2 workers, and plain training. Then, with no
fine-tuning: random subnetworks of the TwIST model (mean of 12), and the
plainly trained model pruned to the same sizes by weight magnitude and by
FLAP's fluctuation (`common/ist/unit_importance.h`), each with the partial
sums left, scaled, or shift-corrected. Perplexity per token = exp(loss).
""", "| model | cut | keep 1/2 | keep 1/4 |", "|---|---|---|---|"]
    v = s["val_loss"]
    rows = []
    for model in ("bpe-twist", "bpe-plain"):
        m = v.get(model, {})
        rows.append((model, "full model, no cut", m.get("full"), m.get("full")))
        for kind in ("random", "best", "pruned-magnitude", "pruned-fluctuation"):
            for scaling in ("none", "scaled", "correction"):
                a, b = m.get(f"{kind}_{scaling}_keep0.5"), m.get(f"{kind}_{scaling}_keep0.25")
                if a is not None or b is not None:
                    rows.append((model, f"{kind}, {scaling}", a, b))
    for model, cut, a, b in rows:
        pa = "-" if a is None else f"{math.exp(a):.1f}"
        pb = "-" if b is None else f"{math.exp(b):.1f}"
        out.append(f"| {model} | {cut} | {pa} | {pb} |")
    for suffix, keep in (("", "1/2"), ("_keep0.25", "1/4")):
        key = f"bpe_ticket_vs_pruning_ppl_ratio{suffix}"
        if key in s:
            t, p = s[f"ticket{suffix}"], s[f"best_pruning{suffix}"]
            out += ["", f"At keep {keep}: the TwIST ticket ({t['scaling']}) {t['ppl']:.1f} against the "
                    f"best pruning of the plain model ({p['criterion']}, {p['scaling']}) {p['ppl']:.1f}: "
                    f"ratio **{s[key]:.3f}**"
                    + (" (the TwIST paper's at 50%: 23.14 / 31.64 = 0.73)." if keep == "1/2" else ".")]
    return out


def compute_dtype(s):
    out = ["## bfloat16 compute on the CPU", "", stamp(s), """`bench/compute_dtype.sh steps`: the worker's training step
(`bench/worker_step_bench`) in float32 and with `compute_dtype` bfloat16, and
the same step in PyTorch under `torch.autocast("cpu", dtype=torch.bfloat16)`
(`bench/python_step.py --autocast`), on the GPT-2-small example's shapes (12
layers, width 768, context 1024, vocabulary 50304, tanh GELU, one sequence per
step). Each figure is the fastest of its runs; ratios are time over time, the
name saying which is on top.
""", "| keep | threads | C++ float32 | C++ bfloat16 | PyTorch autocast | bf16 / f32 | ours / PyTorch's |",
           "|---|---|---|---|---|---|---|"]
    for p in s["points"]:
        out.append(f"| {p['keep']:g} | {p['threads']} | {fmt(p['cpp_f32_step_s'])} s | "
                   f"{fmt(p['cpp_bf16_step_s'])} s | {fmt(p['pytorch_autocast_step_s'])} s | "
                   f"{fmt(p['bf16_vs_f32_step'])} | {fmt(p['bf16_vs_pytorch_autocast_step'])} |")
    return out


def compute_dtype_loss(s):
    out = ["## bfloat16 compute: validation", "", stamp(s), """`bench/compute_dtype.sh loss`: the 2000-step Brown Corpus run of
`bench/optimizer_state.sh` in its best recipe (2 workers, 40 rounds of 50
local steps, worker-kept AdamW state, rolling deal, Nesterov outer step 0.7 /
0.9), the same seeds in float32 and in bfloat16 compute; validation
nats/byte on the same 200 fixed batches. These runs shared the machine with a
build, so their wall times say little.
""", "| run | seed | validation | wall s |", "|---|---|---|---|"]
    for r in s["rows"]:
        out.append(f"| {r['label']} | {r['seed']} | {float(r['final_val_loss']):.4f} | "
                   f"{float(r['wall_seconds']):.0f} |")
    if "bf16_vs_f32_loss_delta" in s:
        out += ["", f"bfloat16 minus float32, mean over {s['seeds']} seed(s): "
                f"**{s['bf16_vs_f32_loss_delta']:+.4f}** nats/byte."]
    return out


def gpu(s):
    out = ["## GPU", "", stamp(s), f"""`bench/gpu.sh` on one {s['gpu']} with pip's torch 2.11 (CUDA 13.0): the daemons
built by `deploy/gpu/build.sh` against its LibTorch and the Debian prefix
({s.get('build_s', '-')} s), GPT-2 small (124.5M parameters, context 1024, vocabulary
50304) in bfloat16 compute, 16 sequences per step. "step" is the worker's
training step alone (`worker_step_bench`); "daemons" a coordinator and a
worker on `cuda:0` training the example spec for 3 rounds of 8 local steps
(tokens per second over rounds 2 and 3, from the round records'
`compute_s`); PyTorch is an eager loop (`bench/python_step.py --autocast
--sdpa`, AdamW and clipping as the worker) on the same GPU, model and batch,
measured in the same run. Run 3 ran at the commit above; run 2, the full
script (270 s, build included), ran on the tree just before it, whose step is
the same code (it differed only in how a padded vocabulary is masked, which
the daemons' rows of run 2 used and which is why they are left out). MFU: (6 x the subnetwork's parameters + 12 x layers
x width x context x keep) FLOPs per token over {s['peak_bf16_flops'] / 1e12:.0f} TFLOP/s. Logs:
[`bench/gpu/`](bench/gpu/). CUDA tests in that run: {s.get('cuda_tests_passed', '-')} passed,
{s.get('cuda_tests_failed', '-')} failed.
""", "| run | what | keep | parameters | tokens/s | MFU | peak GPU memory |",
           "|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        if r["bench"] not in ("gpu_step", "gpu_daemons"):
            continue
        what = ("PyTorch loop" if r.get("impl") == "python" else
                "step" if r["bench"] == "gpu_step" else
                f"daemons, {r['workers']} worker{'s' if r['workers'] > 1 else ''}")
        out.append(f"| {r.get('run', '-')} | {what} | {r['keep']:g} | {r['parameters'] / 1e6:.1f}M | "
                   f"{r['tokens_per_s']:,.0f} | {fmt(r.get('mfu'), 3)} | {r['gpu_peak_mib']:,} MiB |")
    return out


def communication(s):
    out = ["## Compressed updates", "", stamp(s), """`bench/compression.sh quality`: the 2000-step Brown Corpus run of
`bench/optimizer_state.sh` in its best recipe (2 workers of one thread, 40
rounds of 50 local steps, worker-kept AdamW state, rolling deal, Nesterov
outer step 0.7 / 0.9, float32 transport) with each `compression`, seeds 1-3,
validation nats/byte on the same 200 fixed batches; bytes over the whole
job: to the coordinator (codes, the leaving units' leftovers, and the last
round's uncompressed deltas) and to the workers (changes to resident units,
int4 under top-k, and weights of the units that move).
""", "| compression | loss minus none's (mean) | per seed | bytes to the coordinator / none's | to the workers / none's |",
           "|---|---|---|---|---|"]
    modes = s.get("modes", {})
    for mode, m in sorted(modes.items(), key=lambda kv: ["none", "int8", "int4", "topk"].index(kv[0])):
        out.append(f"| `{mode}` | {m['loss_delta']:+.4f} | "
                   f"{', '.join(f'{d:+.4f}' for d in m['loss_deltas'])} | "
                   f"{m['bytes_from_workers_vs_none']:.3f} | "
                   f"{m.get('bytes_to_workers_vs_none', 1.0):.3f} |")
    codec = s.get("codec_rows")
    if codec:
        out += ["", f"""`bench/codec_bench`: one keep-1/2 GPT-2-small worker's update (round 5 of a
rolling deal over 2 workers, {codec[0]['parameters'] / 1e6:.1f}M parameters, random deltas) in
each form, through the slot payload the daemons use, on {codec[0]['threads']} thread(s):
the bytes (codes, and the leaving head and column's leftovers in bfloat16),
the worker's encode (codes and its own decode, for the residual) and the
coordinator's decode. `bf16` is uncompressed bfloat16 transport: a cast each way.
""", "| form | MB | against bf16 | encode s | decode s |", "|---|---|---|---|---|"]
        base = codec[0]["bytes"]
        for r in codec:
            out.append(f"| `{r['codec']}` | {r['bytes'] / 1e6:,.1f} | {r['bytes'] / base:.3f} | "
                       f"{r['encode_s']:.3f} | {r['decode_s']:.3f} |")
    deals = s.get("deal_rows")
    if deals:
        out += ["", f"""The coordinator's side of resident units (`bench/codec_bench`, the same
model, {deals[0]['threads']} thread(s)): one steady-state deal of the whole model to 2 workers
of the rolling deal (T - V for every resident entry, encoded, decoded and
applied to the view; the moving units' weights gathered), its bytes to one
worker, and the view the coordinator keeps (bfloat16).
""", "| change codec | deal s | MB to one worker | view MB |", "|---|---|---|---|"]
        for r in deals:
            out.append(f"| `{r['codec']}` | {r['deal_s']:.2f} | {r['bytes_to_worker'] / 1e6:,.1f} | "
                       f"{r['view_bytes'] / 1e6:,.0f} |")
    rounds = s.get("gpt2_rounds")
    if rounds:
        out += ["", """`bench/compression.sh gpt2`: GPT-2 small
(`deploy/examples/gpt2-small.textproto`, bfloat16 transport) with the
rolling deal, 6 rounds of one local step, the real daemons with 2 workers;
bytes to and from one keep-1/2 worker (headers and tensors). Round 1 deals
weights; later rounds deal changes to the resident units (int4 under
top-k) and the weights of the head and column that move. The last round
flushes the workers' residuals and its update travels uncompressed.
""", "| compression | round | to the worker | from the worker | together |",
                "|---|---|---|---|---|"]
        for r in rounds:
            out.append(f"| `{r['compression']}` | {r['round']} | {r['bytes_to_worker'] / 1e6:,.1f} MB | "
                       f"{r['bytes_from_worker'] / 1e6:,.1f} MB | "
                       f"{(r['bytes_to_worker'] + r['bytes_from_worker']) / 1e6:,.1f} MB |")
    shaped = s.get("shaped")
    if shaped:
        rate = next(iter(shaped.values()))["rate"]
        out += ["", f"""`bench/shaped_cluster.sh`: the quality run above (seed 1, eval every 5
rounds) through the real daemons, the coordinator and 2 workers in their own
network namespaces with the coordinator's veth shaped by `tc tbf` to {rate} each
way. Round time over compute is the median over rounds of the round's wall
time over its slowest worker's `compute_s`; idle is the median of the
workers' idle fractions (each worker's share of its cycle, from one update
to the next, not spent computing). Rows marked ahead overlap rounds: each
worker trains that many of a round's 50 steps while the last round is merged
(`overlap_steps`), so the merged model reaches them that many steps late:
compare each mode's final loss with and without. The runs are sequential on
one 2-core machine, which the coordinator shares with both workers, so their
compute differs (the median slowest `compute_s` column), and steps ahead
compete with the coordinator's decode and merge for the same cores: compare
ratios, not seconds.
""", "| compression | steps ahead | round / compute | median round s | slowest compute s | idle | MB moved | final val loss | wall s |",
                "|---|---|---|---|---|---|---|---|---|"]
        order = [m + s for s in ["", "_overlap"] for m in ["none", "int8", "int4", "topk"]]
        for mode, m in sorted(shaped.items(), key=lambda kv: order.index(kv[0])):
            out.append(f"| `{mode.replace('_overlap', '')}` | {m.get('overlap_steps', 0)} | "
                       f"{m['round_vs_compute']:.2f} | {m['median_round_s']:.2f} | "
                       f"{m['median_slowest_compute_s']:.2f} | {m['worker_idle_fraction']:.2f} | "
                       f"{m['mb_moved']:,.0f} | {m['final_val_loss']:.4f} | {m['wall_s']:.0f} |")
        out += ["", "![validation loss against wall time on the shaped cluster](bench/shaped_loss_vs_time.png)"]
    return out


SECTIONS = [("transport", transport), ("round_overhead", round_overhead),
            ("worker_step", worker_step), ("system", system), ("tokenizer", tokenizer),
            ("optimizer_state", optimizer_state), ("tokenizers", tokenizers),
            ("gpt2_small", gpt2_small), ("bpe_tickets", bpe_tickets),
            ("learning", learning), ("unequal_workers", unequal_workers),
            ("learning_screen", learning_screen), ("tickets", tickets),
            ("compute_dtype", compute_dtype), ("compute_dtype_loss", compute_dtype_loss),
            ("gpu", gpu), ("communication", communication)]


def main():
    import json
    results = json.load(open(sys.argv[1]))["sections"]
    lines = ["# Benchmarks", "", """Every figure on this page is generated by `bench/report.py` from
[`bench/results.json`](bench/results.json), which the scripts in `bench/`
write; each section names the commit it measured. Ratios are taken in the
same process or script as their baseline, on the same machine: a 2-core
virtual machine with Debian 12, LibTorch 1.13.1 (CPU) and OpenBLAS. Loopback
throughput and step times on such a machine move by 10-30% from one run to
the next.

```sh
bash bench/run.sh         # transport, round overhead, worker step, system, tokenizer (~20 min)
bash bench/run.sh --all   # and learning, optimizer state, bytes against BPE, GPT-2 small, BPE golden tickets, compressed updates (several hours more)
```
""", "## Summary", "", "| key | figure | commit |", "|---|---|---|"]
    summary = [("transport", "transport_ratio_vs_tcp", "raw gRPC / raw TCP at the largest transfer"),
               ("round_overhead", "round_overhead_vs_memcpy", "round overhead / memcpy, 100M-300M, default recipe (target 2)"),
               ("round_overhead", "round_overhead_vs_memcpy_old_recipe", "the same, random deal and plain merging"),
               ("round_overhead", "round_overhead_vs_memcpy_threads2", "the default recipe, merging on 2 threads"),
               ("round_overhead", "round_overhead_vs_memcpy_generic_kernels", "the default recipe on the generic kernels, as on a CPU without AVX2"),
               ("worker_step", "cpp_vs_python_step_min", "PyTorch step / C++ step, worst of keep 1, 1/2, 1/4 at 1 and 2 threads (target 1.0)"),
               ("system", "overhead_share", "share of a round outside compute"),
               ("tokenizer", "bpe_encode_mb_per_s", "GPT-2 BPE MB/s on one core (target 5)"),
               ("optimizer_state", "best_twist_2w_vs_plain_loss", "best 2-worker TwIST - plain loop, nats/byte"),
               ("learning", "default_twist_2w_vs_plain", "default recipe, 2 workers - plain loop, nats/byte (target +0.01)"),
               ("learning", "default_twist_4w_vs_plain", "default recipe, 4 workers - plain loop, nats/byte (target +0.03)"),
               ("learning", "default_twist_8w_vs_plain", "default recipe, 8 workers - plain loop, nats/byte"),
               ("unequal_workers", "unequal_round_ratio", "one of 2 workers at half a core, learned quota in local steps: median round / equal workers' (target 1.5, floor 1.33)"),
               ("gpt2_small", "coordinator_peak_vs_model_bytes", "GPT-2 small: coordinator peak / model bytes (target 4)"),
               ("gpt2_small", "worker_half_vs_full_memory", "GPT-2 small: worker at keep 1/2 / keep 1 (target 0.7)"),
               ("gpt2_small", "worker_half_bf16_gb", "GPT-2 small: keep-1/2 bfloat16 worker peak, GB (target 3.5)"),
               ("gpt2_small", "worker_growth_after_round_2_gb", "GPT-2 small: largest worker peak after round 2 over round 2's, GB (target 0)"),
               ("gpt2_small", "coordinator_overhead_s_max", "GPT-2 small: coordinator overhead per round, median, largest row, s (target 0.25)"),
               ("bpe_tickets", "bpe_ticket_vs_pruning_ppl_ratio", "BPE ticket / best pruning perplexity at keep 1/2"),
               ("compute_dtype", "bf16_vs_f32_step", "CPU step time, bfloat16 / float32, worst point (target 0.5)"),
               ("compute_dtype", "bf16_vs_pytorch_autocast_step", "CPU bfloat16 step time, ours / PyTorch autocast, worst point (target 1.0)"),
               ("compute_dtype_loss", "bf16_vs_f32_loss_delta", "Brown 2000 steps: bfloat16 - float32 compute, nats/byte (target at most +0.01)"),
               ("gpu", "gpu_worker_vs_pytorch", "H200: the worker daemon's tokens/s / PyTorch loop's at keep 1 (target 1.0)"),
               ("gpu", "gpu_step_vs_pytorch", "H200: worker step tokens/s / PyTorch loop's at keep 1"),
               ("communication", "int8_loss_delta", "Brown 2000 steps: int8 updates - uncompressed, nats/byte (target at most +0.005)"),
               ("communication", "int4_loss_delta", "Brown 2000 steps: int4 updates - uncompressed, nats/byte (target at most +0.005)"),
               ("communication", "topk_loss_delta", "Brown 2000 steps: top-k updates - uncompressed, nats/byte (target at most +0.01)"),
               ("communication", "gpt2_small_mb_per_round", "GPT-2 small, top-k, round 5: MB to and from a keep-1/2 worker (target 33)"),
               ("communication", "shaped_round_vs_compute_none", "shaped Brown cluster: round time / slowest compute, none, no overlap"),
               ("communication", "shaped_round_vs_compute_best", "shaped Brown cluster: the same, best mode with overlap (target 1.15)"),
               ("communication", "worker_idle_fraction_best", "shaped Brown cluster: workers' idle fraction, best mode with overlap (target 0.1)"),
               ("communication", "shaped_round_vs_compute_best_no_overlap", "shaped Brown cluster: round time / slowest compute, best mode without overlap")]
    for section, key, what in summary:
        sec = results.get(section)
        if sec and key in sec:
            lines.append(f"| `{key}` | {sec[key]} ({what}) | `{sec['commit'][:10]}` |")
    lines.append("")
    for name, render in SECTIONS:
        if name in results:
            lines += render(results[name]) + [""]
    open(sys.argv[2], "w").write("\n".join(lines))


if __name__ == "__main__":
    main()
