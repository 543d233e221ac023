"""Growth curves: gate, publish and scoring at several table sizes, and an image drop at several image
counts, each against its baseline measured in the same run; writes build/bench/curves.csv and
build/bench/curves.png and says where a cost grows faster than the size.

    python bench/curves.py [--rows 100000,1000000,10000000] [--images 10000,100000] [--only gate,publish,...]

Each benchmark module (run.py: gate and publish; scoring.py; images.py) has `measure(size) -> records`;
a record holds step, size, unit, seconds, baseline, baseline_seconds, ratio, target, peak_rss, own_rss,
arrow_bytes, rss_ratio and rss_target (see bench/README.md).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
FIELDS = ["step", "size", "unit", "seconds", "baseline", "baseline_seconds", "ratio", "target", "peak_rss", "own_rss",
          "arrow_bytes", "rss_ratio", "rss_target"]
LINEAR_SLACK = 1.3  # cost per row (image) growing by more than this from one size to the next is called out
SOURCES = {"tables": ("run", "rows"), "scoring": ("scoring", "rows"), "images": ("images", "images")}

sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def _sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


def collect(rows: list[int], images: list[int], only: set[str] | None) -> list[dict]:
    """Every source's records at every size, in the order measured."""
    records = []
    for source, (module_name, unit) in SOURCES.items():
        if only and source not in only:
            continue
        module = importlib.import_module(module_name)
        for size in rows if unit == "rows" else images:
            print(f"--- {source} at {size:,} {unit}", flush=True)
            got = module.measure(size)
            for record in got:
                print("    " + line(record), flush=True)
            records.extend(got)
    return records


def line(record: dict) -> str:
    """One record as a report line: time ratio and RSS ratio with their targets."""
    mib = 1 << 20
    text = (f"{record['step']:<16} {record['size']:>11,} {record['unit']:<6} {record['seconds']:8.2f} s  "
            f"{record['ratio']:6.2f}× {record['baseline']}")
    if record.get("target") is not None:
        text += f" (target ≤ {record['target']}×: {'met' if record['ratio'] <= record['target'] else 'NOT met'})"
    if record.get("own_rss") is not None:
        text += f"; own RSS {record['own_rss'] / mib:,.0f} MiB"
    if record.get("rss_ratio") is not None:
        text += f" = {record['rss_ratio']:.2f}× Arrow"
        if record.get("rss_target") is not None:
            text += (f" (target ≤ {record['rss_target']}×: "
                     f"{'met' if record['rss_ratio'] <= record['rss_target'] else 'NOT met'})")
    return text


def growth(records: list[dict]) -> list[str]:
    """Where a step's time or own memory per row grows faster than linearly from one size to the next."""
    notes = []
    for step in dict.fromkeys(r["step"] for r in records):
        series = sorted((r for r in records if r["step"] == step), key=lambda r: r["size"])
        for small, large in zip(series, series[1:]):
            for key, what in (("seconds", "time"), ("own_rss", "own RSS")):
                if not small.get(key) or not large.get(key):
                    continue
                per_unit = (large[key] / large["size"]) / (small[key] / small["size"])
                verdict = "grows faster than linear" if per_unit > LINEAR_SLACK else "linear or better"
                notes.append(f"{step}: {what} per {small['unit'][:-1]} ×{per_unit:.2f} from {small['size']:,} to "
                             f"{large['size']:,} ({verdict})")
    return notes


def write_csv(records: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)


def plot(records: list[dict], path: Path) -> None:
    """Seconds, time ratio and own-RSS ratio against size, one line per step (log-log for seconds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(16, 5))
    for step in dict.fromkeys(r["step"] for r in records):
        series = sorted((r for r in records if r["step"] == step), key=lambda r: r["size"])
        sizes = [r["size"] for r in series]
        axes[0].loglog(sizes, [r["seconds"] for r in series], marker="o", label=step)
        axes[1].semilogx(sizes, [r["ratio"] for r in series], marker="o", label=step)
        rss = [(r["size"], r["rss_ratio"]) for r in series if r.get("rss_ratio") is not None]
        if rss:
            axes[2].semilogx(*zip(*rss), marker="o", label=step)
    low = min(r["size"] for r in records)
    high = max(r["size"] for r in records)
    base = min(r["seconds"] for r in records if r["size"] == low)
    axes[0].loglog([low, high], [base, base * high / low], "k:", label="linear")
    axes[0].set(title="time", xlabel="rows / images", ylabel="seconds")
    axes[1].axhline(3, color="grey", linestyle="--", linewidth=0.8)
    axes[1].set(title="time / baseline in the same run (targets 1.5, 2, 3)", xlabel="rows / images", ylabel="ratio")
    axes[2].axhline(3, color="grey", linestyle="--", linewidth=0.8)
    axes[2].set(title="own peak RSS / Arrow size (target 3)", xlabel="rows", ylabel="ratio")
    for axis in axes:
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,1000000,10000000")
    parser.add_argument("--images", default="10000,100000")
    parser.add_argument("--only", default="", help=f"comma-separated: {', '.join(SOURCES)}")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    records = collect(_sizes(args.rows), _sizes(args.images), set(filter(None, args.only.split(","))) or None)
    write_csv(records, args.out / "curves.csv")
    plot(records, args.out / "curves.png")
    print("\nsummary (ratios against a baseline measured in the same run):")
    for record in records:
        print("  " + line(record))
    print("\ngrowth:")
    for note in growth(records):
        print("  " + note)
    print(f"\nwrote {args.out / 'curves.csv'} and {args.out / 'curves.png'}")


if __name__ == "__main__":
    main()
