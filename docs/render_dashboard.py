"""Render docs/dashboard.png: the Grafana dashboard's panels, plotted from a real Prometheus run.

There is no Grafana here, so this runs what the dashboard would show: the exporter on generated trail files
(two batches, so rates move), a Prometheus scraping it every second under an arbitrary job name, then every
panel's queries (config/grafana/cloudtrail-sqs.json, variables = All) through the query_range API, drawn
with matplotlib in the dashboard's grid order.

    pip install matplotlib            # once (also in the `docs` extra: pip install -e '.[docs]')
    python docs/render_dashboard.py   # ~2 minutes; needs the `prometheus` binary (apt-get install prometheus)
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "config" / "grafana" / "cloudtrail-sqs.json"
RULES = ROOT / "config" / "prometheus" / "rules.yml"
OUT = ROOT / "docs" / "dashboard.png"
STEP = "2s"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def wait(check: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def substitute(expr: str) -> str:
    out = expr.replace("$__rate_interval", "1m").replace("$__range", "5m").replace("$__interval", "15s")
    for var in ("account", "region", "queue", "instance", "job"):
        out = out.replace(f"${var}", ".*")
    return out


def generate(out: Path, files: int, seed: int) -> None:
    cmd = [sys.executable, "-m", "exporter.generator", "--out", str(out), "--files", str(files), "--seed", str(seed)]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)


def run(work: Path) -> dict[int, list[tuple[str, list[dict[str, Any]]]]]:
    """Start the exporter and Prometheus, feed two batches, return {panel id: [(legend, series), ...]}."""
    watched = work / "trail"
    generate(watched / "batch1", 8, 101)
    generate(work / "later", 8, 202)
    port, prom_port = free_port(), free_port()
    cfg = {
        "listen": f"127.0.0.1:{port}",
        "state": {"path": str(work / "state.db")},
        "sources": [{"type": "file", "path": str(watched), "poll_interval": "1s", "settle": "0s"}],
    }
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    prom_cfg = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "any-name", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(prom_cfg))
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "exporter", "run", "--config", str(work / "config.yaml")],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
        procs.append(
            subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        api = f"http://127.0.0.1:{prom_port}/api/v1"
        wait(lambda: get(f"{api}/query?query=up")["data"]["result"], 60, "first scrape")
        start = time.time()
        time.sleep(40)
        shutil.copytree(work / "later", work / "staging")
        (work / "staging").rename(watched / "batch2")
        time.sleep(45)  # rates over 1m windows still see the second batch at the end (stat panels show the end)
        end = time.time()
        out: dict[int, list[tuple[str, list[dict[str, Any]]]]] = {}
        for panel in json.loads(DASHBOARD.read_text())["panels"]:
            for t in panel.get("targets", []):
                q = urllib.parse.urlencode({"query": substitute(t["expr"]), "start": start, "end": end, "step": STEP})
                data = get(f"{api}/query_range?{q}")["data"]["result"]
                out.setdefault(panel["id"], []).append((t.get("legendFormat", ""), data))
        return out
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)


def legend(fmt: str, labels: dict[str, str]) -> str:
    if not fmt or fmt == "__auto":
        return ",".join(f"{v}" for k, v in labels.items() if k not in ("job", "instance")) or "value"
    for k, v in labels.items():
        fmt = fmt.replace("{{" + k + "}}", v).replace("{{ " + k + " }}", v)
    return fmt


def draw(results: dict[int, list[tuple[str, list[dict[str, Any]]]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dash = json.loads(DASHBOARD.read_text())
    t0 = min((float(s["values"][0][0]) for q in results.values() for _, ss in q for s in ss), default=0.0)
    panels = [p for p in dash["panels"] if p.get("type") != "row"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(24, rows * 0.42))
    grid = fig.add_gridspec(rows, 24, hspace=2.5, wspace=1.2)
    for p in panels:
        g = p["gridPos"]
        ax = fig.add_subplot(grid[g["y"] : g["y"] + g["h"], g["x"] : g["x"] + g["w"]])
        ax.set_title(p["title"], fontsize=9, loc="left")
        ax.tick_params(labelsize=6)
        ax.set_xlabel("seconds", fontsize=6)
        drawn = 0
        for fmt, series in results.get(p["id"], []):
            for s in series[:20]:
                xs = [float(v[0]) - t0 for v in s["values"]]
                ys = [float(v[1]) for v in s["values"]]
                if p["type"] in ("stat", "gauge", "bargauge", "table"):
                    continue
                ax.plot(xs, ys, linewidth=0.8, label=legend(fmt, s["metric"])[:40])
                drawn += 1
        if p["type"] in ("stat", "gauge", "bargauge", "table"):
            values = [
                (legend(fmt, s["metric"]), float(s["values"][-1][1]))
                for fmt, series in results.get(p["id"], [])
                for s in series
            ]
            text = "\n".join(f"{name[:30]}: {v:.3g}" for name, v in values[:6]) or "no data"
            ax.text(0.02, 0.5, text, fontsize=8 if len(values) > 1 else 16, va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("")
        elif drawn and drawn <= 8:
            ax.legend(fontsize=5, loc="upper left")
    fig.subplots_adjust(top=0.96)
    fig.suptitle(
        "cloudtrail-sqs-exporter dashboard (rendered from a real Prometheus run by docs/render_dashboard.py)", y=0.975
    )
    fig.savefig(OUT, dpi=70, bbox_inches="tight")
    print(f"wrote {OUT}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        draw(run(Path(tmp)))


if __name__ == "__main__":
    main()
