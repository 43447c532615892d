#!/usr/bin/env python3
"""Draws results.png from results.csv (written by benches/run.py).

Top left: CPU microseconds per datagram, one group of bars per case, one bar
per contender. Top right: median round trip per contender, with the p99 as a
thin line above each bar. Bottom (when the CSV has them): the offload cases
(rows with an "offload" value), CPU per datagram per contender, offload on
and off in two colours.

    python3 benches/plot.py benches/results.csv benches/results.png
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402


def number(text):
    return float(text) if text not in ("", None) else None


def plot_offload(ax, rows):
    """CPU per datagram of the offload cases: one group per case, one bar per
    contender (labelled below it), offload on and off in two colours."""
    x, ticks, labels, case_mid = 0.0, [], [], []
    for case in dict.fromkeys(r["case"] for r in rows):
        group = [r for r in rows if r["case"] == case]
        start = x
        for r in group:
            value = number(r["cpu_us_per_dgram"])
            on = not r["offload"].startswith(("off", "default"))
            ax.bar(x, value, width=0.85, color="tab:green" if on else "tab:gray",
                   label=("offload on" if on else "offload off")
                   if ("offload on" if on else "offload off") not in ax.get_legend_handles_labels()[1] else None)
            deliv = number(r["delivered_pct"])
            note = f"{value:.2f}" + (f"\n{deliv:.1f}%" if deliv is not None and deliv < 99.95 else "")
            ax.text(x, value, note, ha="center", va="bottom", fontsize=7)
            ticks.append(x)
            labels.append(r["contender"])
            x += 1
        case_mid.append(((start + x - 1) / 2, case))
        x += 1
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
    for mid, case in case_mid:
        ax.text(mid, 1.01, case, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("CPU us per datagram")
    ax.set_title("Offload cases, 1200 B: sender CPU (send) / receiver CPU (recv) per datagram "
                 "(lower is better; % = delivered when below 100)", pad=18)
    ax.legend(fontsize=8)


def main(csv_path, png_path):
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{csv_path} has no rows")

    offload_rows = [r for r in rows if r.get("offload") and number(r["cpu_us_per_dgram"]) is not None]
    if offload_rows:
        fig = plt.figure(figsize=(15, 12))
        grid = fig.add_gridspec(2, 2, width_ratios=[3, 1], height_ratios=[1, 1])
        ax_cpu, ax_rtt = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
        plot_offload(fig.add_subplot(grid[1, :]), offload_rows)
    else:
        fig, (ax_cpu, ax_rtt) = plt.subplots(1, 2, figsize=(15, 6), gridspec_kw={"width_ratios": [3, 1]})

    # CPU per datagram, grouped by case (the offload cases have their own panel).
    cpu_rows = [r for r in rows if number(r["cpu_us_per_dgram"]) is not None and not r.get("offload")]
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
    if cpu_rows:
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
    if rtt_rows:
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
