"""Sums Nsight Compute's gpu__time_duration per kernel (name + grid) from a --csv log; prints the top rows."""
import csv, sys, collections

tag, path = sys.argv[1], sys.argv[2]
rows = []
with open(path, newline="") as f:
    lines = [l for l in f if l.startswith('"')]  # skip the tool's own ==PROF== lines
for r in csv.DictReader(lines):
    if r.get("Metric Name") == "gpu__time_duration.sum":
        rows.append(r)
tot = collections.defaultdict(float)
cnt = collections.Counter()
for r in rows:
    name = r["Kernel Name"].split("(")[0][:70]
    key = (name, r.get("Grid Size", ""), r.get("Block Size", ""))
    tot[key] += float(r["Metric Value"].replace(",", ""))
    cnt[key] += 1
total = sum(tot.values())
print(f"== {tag}: {len(rows)} kernels, {total / 1e6:.3f} ms of kernel time")
print("| kernel | grid | block | calls | ms | share |")
for key, ns in sorted(tot.items(), key=lambda kv: -kv[1])[:22]:
    print(f"| {key[0]} | {key[1]} | {key[2]} | {cnt[key]} | {ns / 1e6:.3f} | {100 * ns / total:.1f}% |")
byname = collections.defaultdict(float)
for key, ns in tot.items():
    byname[key[0]] += ns
print("| kernel (all grids) | ms | share |")
for name, ns in sorted(byname.items(), key=lambda kv: -kv[1])[:12]:
    print(f"| {name} | {ns / 1e6:.3f} | {100 * ns / total:.1f}% |")
