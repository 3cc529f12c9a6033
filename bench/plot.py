"""scaling.csv → scaling.png: throughput against pollers, with and without 15 ms injected
latency per SQS request, next to the emulator's ceiling measured by the same harness, and
sqs2pg against a constant-time stub behind the same 15 ms."""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = list(csv.DictReader(open(sys.argv[1])))
series = defaultdict(list)
for r in rows:
    series[(r["consumer"], int(r["latency_ms"]))].append((int(r["pollers"]), float(r["msgs_per_s"])))
fig, ax = plt.subplots(figsize=(7, 4.5))
styles = {"sqs2pg": "-o", "ceiling": "--s", "sqs2pg-stub": ":^"}
names = {
    "sqs2pg": "sqs2pg on LocalStack",
    "ceiling": "LocalStack ceiling (receive+delete only)",
    "sqs2pg-stub": "sqs2pg on a constant-time SQS stub",
}
for (consumer, latency), pts in sorted(series.items()):
    pts.sort()
    label = f"{names[consumer]}, +{latency} ms/request"
    ax.plot([p for p, _ in pts], [v for _, v in pts], styles[consumer], label=label)
ax.set_xscale("log", base=2)
ax.set_xlabel("pollers")
ax.set_ylabel("messages/s")
ax.set_title("sqs2pg: throughput vs pollers")
ax.grid(True, alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
