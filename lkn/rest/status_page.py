"""The status page at ``/lkn``: engines, the decision mix and scores of the last minutes
against the threshold, and errors, in one small self-contained HTML page.

No CDN and no build step: the page is a fixed HTML string with inline CSS, inline SVG
charts and a few lines of script that fetch ``/lkn/status.json`` every few seconds and
redraw. The numbers come from the gateway's own metrics, sampled every
:data:`SAMPLE_SECONDS` into a ring of :data:`WINDOW_SAMPLES` points (ten minutes), so the
request path pays nothing for the page.

With ``LKN_API_KEY`` set, both paths need the key: as a bearer token, or (what a browser
can send on its own) HTTP Basic with the key as the password; a browser asks for it once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from lkn.gateway import Gateway
from lkn.rest.errors import GATEWAY
from lkn.values import JSONObject, JSONValue

SAMPLE_SECONDS = 5.0
WINDOW_SAMPLES = 120
PATHS = frozenset({"/lkn", "/lkn/status.json"})


@dataclass
class _Totals:
    """Cumulative counters at one moment."""

    at: float
    decisions: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    requests: float = 0.0
    #: Answers the loop guard ended, by model.
    loops: dict[str, float] = field(default_factory=dict)
    #: Cumulative ``lkn_probe_entropy`` bucket counts, by upper bound.
    scores: dict[float, float] = field(default_factory=dict)


def _totals(gateway: Gateway) -> _Totals:
    out = _Totals(at=time.time())
    for metric in gateway.metrics.registry.collect():
        for s in metric.samples:
            if s.name == "lkn_decisions_total":
                mode = s.labels.get("mode", "")
                out.decisions[mode] = out.decisions.get(mode, 0.0) + s.value
            elif s.name == "lkn_errors_total":
                kind = s.labels.get("type", "")
                out.errors[kind] = out.errors.get(kind, 0.0) + s.value
            elif s.name == "lkn_loops_stopped_total":
                model = s.labels.get("model", "")
                out.loops[model] = out.loops.get(model, 0.0) + s.value
            elif s.name == "lkn_requests_total":
                out.requests += s.value
            elif s.name == "lkn_probe_entropy_bucket":
                bound = float(s.labels.get("le", "inf"))
                out.scores[bound] = s.value
    return out


class StatusWindow:
    """The last minutes of the gateway's counters, sampled in the background."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.samples: deque[_Totals] = deque(maxlen=WINDOW_SAMPLES + 1)
        self.samples.append(_totals(gateway))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            self.samples.append(_totals(self.gateway))

    def report(self) -> JSONObject:
        """What ``/lkn/status.json`` says: the window's series, mix, scores and errors, the
        engines and the settings the page shows."""
        gateway = self.gateway
        now = _totals(gateway)
        points = [*self.samples, now]
        first = points[0]
        threshold = gateway.decider.homeostat.state().get("threshold")
        return {
            "now": round(now.at, 1),
            "window_s": round(now.at - first.at, 1),
            "sample_s": SAMPLE_SECONDS,
            "ready": gateway.ready(),
            "strategy": gateway.settings.decision.strategy,
            "threshold": threshold if isinstance(threshold, (int, float)) else
            gateway.settings.decision.entropy_threshold,
            "engines": _engines(gateway),
            "series": _series(points),
            "mix": {mode: now.decisions.get(mode, 0.0) - first.decisions.get(mode, 0.0)
                    for mode in ("FLUIDO", "ANALITICO")},
            "scores": _score_counts(first, now),
            "errors": {k: v - first.errors.get(k, 0.0) for k, v in now.errors.items()
                       if v - first.errors.get(k, 0.0) > 0},
            "loops_stopped": {k: v - first.loops.get(k, 0.0) for k, v in now.loops.items()},
            "loop_guard": gateway.settings.loop_guard,
            "in_flight": gateway.active,
        }  # fmt: skip


def _series(points: list[_Totals]) -> list[JSONValue]:
    """Per sample interval: the decisions by mode, errors and requests it added."""
    series: list[JSONValue] = []
    for before, after in zip(points, points[1:]):
        series.append({
            "t": round(after.at, 1),
            "fluido": after.decisions.get("FLUIDO", 0.0) - before.decisions.get("FLUIDO", 0.0),
            "analitico": (after.decisions.get("ANALITICO", 0.0)
                          - before.decisions.get("ANALITICO", 0.0)),
            "errors": sum(after.errors.values()) - sum(before.errors.values()),
            "requests": after.requests - before.requests,
        })  # fmt: skip
    return series


def _score_counts(first: _Totals, now: _Totals) -> list[JSONValue]:
    """The window's probe scores per histogram bucket (``le`` None: above the last bound)."""
    scores: list[JSONValue] = []
    below = 0.0
    for bound in sorted(now.scores):
        total = now.scores[bound] - first.scores.get(bound, 0.0)
        scores.append({"le": bound if bound != float("inf") else None,
                       "count": total - below})  # fmt: skip
        below = total
    return scores


def _engines(gateway: Gateway) -> list[JSONValue]:
    return [
        {"engine": e.name, "model": e.client.model_id, "ready": e.ready,
         "breaker": e.breaker.state.name.lower(), "in_flight": e.in_flight}
        for e in gateway.pool.engines
    ]  # fmt: skip


WINDOW = web.AppKey("status_window", StatusWindow)


def authorized(request: web.Request) -> bool:
    """The API key as a bearer token or as HTTP Basic's password (any user name)."""
    expected = request.app[GATEWAY].settings.api_key
    if expected is None:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    token: str | None = None
    if scheme.lower() == "bearer":
        token = value.strip()
    elif scheme.lower() == "basic":
        try:
            token = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            token = None
    return token is not None and hmac.compare_digest(token.encode(), expected.encode())


def _challenge() -> web.Response:
    return web.json_response(
        {"error": {"message": "a valid API key is required (the password of this page)",
                   "type": "authentication_error", "param": None, "code": "invalid_api_key"}},
        status=401, headers={"WWW-Authenticate": 'Basic realm="L-kn status", charset="UTF-8"'},
    )


async def page(request: web.Request) -> web.Response:
    if not authorized(request):
        return _challenge()
    return web.Response(text=PAGE, content_type="text/html",
                        headers={"Cache-Control": "no-store",
                                 "Content-Security-Policy": _CSP})  # fmt: skip


async def status(request: web.Request) -> web.Response:
    if not authorized(request):
        return _challenge()
    return web.json_response(request.app[WINDOW].report(), headers={"Cache-Control": "no-store"})


def install(app: web.Application, gateway: Gateway) -> None:
    """Routes and the background sampler (started and stopped with the application)."""

    async def sampler(app: web.Application) -> AsyncIterator[None]:
        window = app[WINDOW] = StatusWindow(gateway)
        task = asyncio.create_task(window.run())
        yield
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    app.cleanup_ctx.append(sampler)
    app.router.add_get("/lkn", page)
    app.router.add_get("/lkn/status.json", status)


# Everything inline; nothing is loaded from elsewhere.
_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>L-kn status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .2em}h2{font-size:1.05em;margin:1.2em 0 .4em}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:.3em .7em;text-align:left}
.ok{color:#17753a;font-weight:600}.bad{color:#b3261e;font-weight:600}.muted{color:#777}
svg{background:#fff;border:1px solid #ddd}.legend span{margin-right:1.2em}
.sw{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:middle}
#numbers b{font-size:1.2em}
</style></head><body>
<h1>L-kn gateway</h1>
<div id="summary" class="muted">loading&hellip;</div>
<h2>Engines</h2>
<table id="engines"><thead><tr><th>engine</th><th>model</th><th>ready</th><th>breaker</th><th>in flight</th></tr></thead><tbody></tbody></table>
<h2>Decisions, last <span id="window">-</span></h2>
<div id="numbers"></div>
<svg id="mix" width="640" height="160" role="img" aria-label="decisions per interval"></svg>
<div class="legend"><span><i class="sw" style="background:#4a90d9"></i>FLUIDO</span>
<span><i class="sw" style="background:#e08a1e"></i>ANALITICO</span>
<span><i class="sw" style="background:#b3261e"></i>errors</span></div>
<h2>Probe scores against the threshold</h2>
<svg id="scores" width="640" height="160" role="img" aria-label="score histogram"></svg>
<div class="muted" id="scorenote"></div>
<h2>Errors</h2>
<table id="errors"><thead><tr><th>type</th><th>count</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
const NS = "http://www.w3.org/2000/svg";
function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function cell(row, text, cls) {
  const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function drawMix(svg, series) {
  clear(svg);
  const W = 640, H = 160, pad = 24;
  const max = Math.max(1, ...series.map(p => p.fluido + p.analitico + p.errors));
  const bw = (W - 2 * pad) / Math.max(series.length, 1);
  series.forEach((p, i) => {
    let y = H - pad;
    for (const [key, color] of [["fluido", "#4a90d9"], ["analitico", "#e08a1e"], ["errors", "#b3261e"]]) {
      const h = (H - 2 * pad) * p[key] / max;
      if (h > 0) svg.appendChild(el("rect", {x: pad + i * bw, y: y - h, width: Math.max(bw - 1, 1), height: h, fill: color}));
      y -= h;
    }
  });
  svg.appendChild(el("line", {x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, stroke: "#999"}));
  svg.appendChild(el("text", {x: pad, y: 14, "font-size": 11, fill: "#555"}, "max " + max + " per interval"));
}
function drawScores(svg, scores, threshold) {
  clear(svg);
  const W = 640, H = 160, pad = 24, bins = scores.filter(s => s.le !== null);
  const max = Math.max(1, ...bins.map(s => s.count));
  const bw = (W - 2 * pad) / Math.max(bins.length, 1);
  bins.forEach((s, i) => {
    const h = (H - 2 * pad) * s.count / max;
    const over = threshold !== null && s.le > threshold;
    svg.appendChild(el("rect", {x: pad + i * bw, y: H - pad - h, width: Math.max(bw - 2, 1), height: h, fill: over ? "#e08a1e" : "#4a90d9"}));
  });
  if (threshold !== null) {
    const x = pad + (W - 2 * pad) * threshold;
    svg.appendChild(el("line", {x1: x, y1: pad / 2, x2: x, y2: H - pad, stroke: "#b3261e", "stroke-dasharray": "4 3"}));
    svg.appendChild(el("text", {x: x + 4, y: 14, "font-size": 11, fill: "#b3261e"}, "threshold " + threshold.toFixed(2)));
  }
  svg.appendChild(el("text", {x: pad, y: H - 6, "font-size": 11, fill: "#555"}, "0"));
  svg.appendChild(el("text", {x: W - pad - 8, y: H - 6, "font-size": 11, fill: "#555"}, "1"));
}
async function refresh() {
  let data;
  try {
    const r = await fetch("/lkn/status.json", {cache: "no-store", credentials: "same-origin"});
    if (!r.ok) throw new Error("HTTP " + r.status);
    data = await r.json();
  } catch (e) {
    document.getElementById("summary").textContent = "cannot read the status: " + e.message;
    return;
  }
  const s = document.getElementById("summary");
  s.className = data.ready ? "ok" : "bad";
  s.textContent = (data.ready ? "ready" : "not ready") + " \\u00b7 strategy " + data.strategy +
    " \\u00b7 " + data.in_flight + " in flight \\u00b7 updated " + new Date(data.now * 1000).toLocaleTimeString();
  const body = document.querySelector("#engines tbody"); clear(body);
  for (const e of data.engines) {
    const row = body.insertRow();
    cell(row, e.engine); cell(row, e.model || "?");
    cell(row, e.ready ? "yes" : "no", e.ready ? "ok" : "bad");
    cell(row, e.breaker, e.breaker === "closed" ? "ok" : "bad"); cell(row, e.in_flight);
  }
  document.getElementById("window").textContent = Math.round(data.window_s / 60 * 10) / 10 + " min";
  const total = data.mix.FLUIDO + data.mix.ANALITICO;
  const errs = Object.values(data.errors).reduce((a, b) => a + b, 0);
  document.getElementById("numbers").innerHTML = "";
  const n = document.getElementById("numbers");
  n.textContent = "";
  for (const [label, value] of [["FLUIDO", data.mix.FLUIDO], ["ANALITICO", data.mix.ANALITICO],
      ["ANALITICO share", total ? Math.round(100 * data.mix.ANALITICO / total) + "%" : "-"], ["errors", errs],
      ["loops stopped", data.loop_guard ? Object.values(data.loops_stopped).reduce((a, b) => a + b, 0) : "guard off"]]) {
    const span = document.createElement("span"); span.style.marginRight = "1.5em";
    span.append(label + ": "); const b = document.createElement("b"); b.textContent = value;
    b.id = "n-" + label.replace(/ /g, "-"); span.append(b); n.append(span);
  }
  drawMix(document.getElementById("mix"), data.series);
  drawScores(document.getElementById("scores"), data.scores, data.threshold);
  const probed = data.scores.reduce((a, b) => a + b.count, 0);
  document.getElementById("scorenote").textContent = probed ?
    probed + " probed requests; bars above the threshold went ANALITICO" :
    "no probe scores in this window (strategy " + data.strategy + ": the rules decide without a score)";
  const eb = document.querySelector("#errors tbody"); clear(eb);
  for (const [k, v] of Object.entries(data.errors)) { const row = eb.insertRow(); cell(row, k); cell(row, v); }
  if (!Object.keys(data.errors).length) { const row = eb.insertRow(); cell(row, "none", "muted"); cell(row, 0); }
}
refresh();
setInterval(refresh, 5000);
</script></body></html>
"""
