#!/usr/bin/env python3
"""Draws results.png from results.csv (written by benches/run.py).

Left: CPU microseconds per datagram, one group of bars per case, one bar per
contender. Right: median round trip per contender, with the p99 as a thin
line above each bar.

    python3 benches/plot.py benches/results.csv benches/results.png
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402


def number(text):
    return float(text) if text not in ("", None) else None


def main(csv_path, png_path):
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{csv_path} has no rows")

    fig, (ax_cpu, ax_rtt) = plt.subplots(1, 2, figsize=(15, 6), gridspec_kw={"width_ratios": [3, 1]})

    # CPU per datagram, grouped by case.
    cpu_rows = [r for r in rows if number(r["cpu_us_per_dgram"]) is not None]
    cases = list(dict.fromkeys(r["case"] for r in cpu_rows))
    contenders = list(dict.fromkeys(r["contender"] for r in cpu_rows))
    colors = {c: plt.cm.tab20(i % 20) for i, c in enumerate(contenders)}
    x, ticks, labels = 0.0, [], []
    for case in cases:
        group = [r for r in cpu_rows if r["case"] == case]
        start = x
        for r in group:
            value = number(r["cpu_us_per_dgram"])
            ax_cpu.bar(x, value, color=colors[r["contender"]], width=0.9,
                       label=r["contender"] if r["contender"] not in ax_cpu.get_legend_handles_labels()[1] else None)
            ax_cpu.text(x, value, f"{value:.2f}", ha="center", va="bottom", fontsize=7)
            x += 1
        ticks.append((start + x - 1) / 2)
        labels.append(case)
        x += 1  # gap between cases
    ax_cpu.set_xticks(ticks)
    ax_cpu.set_xticklabels(labels)
    ax_cpu.set_ylabel("CPU us per datagram (user + system, all threads)")
    ax_cpu.set_title("CPU per datagram (lower is better)")
    ax_cpu.legend(fontsize=8)

    # Round trips.
    rtt_rows = [r for r in rows if number(r["rtt_median_us"]) is not None]
    names = [r["contender"] for r in rtt_rows]
    medians = [number(r["rtt_median_us"]) for r in rtt_rows]
    p99s = [number(r["rtt_p99_us"]) for r in rtt_rows]
    ax_rtt.bar(range(len(names)), medians, color="tab:blue", label="median")
    ax_rtt.scatter(range(len(names)), p99s, color="tab:red", marker="_", s=300, label="p99")
    for i, m in enumerate(medians):
        ax_rtt.text(i, m, f"{m:.1f}", ha="center", va="bottom", fontsize=8)
    ax_rtt.set_xticks(range(len(names)))
    ax_rtt.set_xticklabels(names, rotation=30, ha="right")
    ax_rtt.set_ylabel("round trip, us")
    ax_rtt.set_title("Ping-pong RTT, 64 B (lower is better)")
    ax_rtt.legend(fontsize=8)

    first = rows[0]
    fig.suptitle(f"libdgram benchmarks, {first['date']}, kernel {first['kernel']}, {first['cores']} cores")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    print(f"wrote {png_path}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py results.csv results.png")
    main(sys.argv[1], sys.argv[2])
