"""The report's experiments: the runs table (`tipi runs`), a run picker, and per choice its
curves (train and validation of a metric overlaid, or several runs overlaid), figures (the
confusion matrix), params table and metrics table. A few lines of inline JavaScript show the
picked view (`#view=ID` in the address picks one); without it, the one picked first shows."""

from __future__ import annotations

import json
from typing import Any

from tipi.redact import printable_html as escape  # text is data: no control characters
from tipi.report.experiments import (
    COMPARE,
    SPLIT_ORDER,
    Curve,
    Experiments,
    RunRow,
    RunView,
    families,
)
from tipi.report.plots import RUN_COLORS, SPLIT_COLORS, SPLIT_DASHES, Series, heat_map, line_chart

STYLE = """
.run-view { margin-top: 12px; }
.run-view h3 { font-size: 15px; margin: 8px 0; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; margin: 12px 0; }
.figure img { max-width: 420px; border: 1px solid #ddd; border-radius: 6px; }
.tables { display: flex; flex-wrap: wrap; gap: 28px; align-items: flex-start; }
.tables h4 { font-size: 13px; margin: 12px 0 4px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
#run-picker { font-size: 13px; padding: 2px 4px; }
#runs tr.picked td { background: #f1f6ff; }
.note { color: #8a5a00; font-size: 12px; margin: 2px 0; }
"""

SCRIPT = """
(function () {
  var picker = document.getElementById("run-picker");
  function show() {
    document.querySelectorAll(".run-view").forEach(function (view) {
      view.hidden = view.dataset.view !== picker.value;
    });
    document.querySelectorAll("#runs tr[data-run]").forEach(function (row) {
      row.classList.toggle("picked", (picker.selectedOptions[0].dataset.runs || "")
        .split(" ").indexOf(row.dataset.run) >= 0);
    });
  }
  var wanted = decodeURIComponent(location.hash.replace(/^#view=/, ""));
  if (location.hash.indexOf("#view=") === 0 &&
      Array.prototype.some.call(picker.options, function (o) { return o.value === wanted; })) {
    picker.value = wanted;
  }
  picker.addEventListener("change", function () {
    history.replaceState(null, "", "#view=" + encodeURIComponent(picker.value));
    show();
  });
  document.querySelectorAll("#runs tr[data-run]").forEach(function (row) {
    row.addEventListener("click", function () {
      if (document.querySelector('.run-view[data-view="' + row.dataset.run + '"]')) {
        picker.value = row.dataset.run;
        show();
      }
    });
  });
  show();
})();
"""


def experiments_html(experiments: Experiments) -> str:
    """The Runs section of the page."""
    out = ['<h2 id="experiments">Runs</h2>']
    out += [f'<p class="note">{escape(note)}</p>' for note in experiments.notes]
    if experiments.rows:
        out.append(_runs_table(experiments.rows))
    if not experiments.views:
        out.append('<p class="muted">No run logged curves or recorded params yet.</p>')
        return "\n".join(out)
    out.append('<p><label>Show <select id="run-picker">')
    for view in experiments.views:
        chosen = " selected" if view.id == experiments.selected else ""
        runs = " ".join(view.runs)
        out.append(
            f'<option value="{escape(view.id)}" data-runs="{escape(runs)}"{chosen}>'
            f"{escape(view.title)}</option>"
        )
    out.append("</select></label></p>")
    out += [_view(view, view.id == experiments.selected) for view in experiments.views]
    out.append(f"<script>{SCRIPT}</script>")
    return "\n".join(out)


def _runs_table(rows: list[RunRow]) -> str:
    head = ("id", "when", "status", "commit", "ran", "params changed", "metrics")
    out = ['<table id="runs"><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for row in rows:
        cells = (row.id, row.when, row.status, row.commit, row.ran, row.changed, row.metrics)
        out.append(
            f'<tr data-run="{escape(row.id)}">'
            + "".join(f"<td>{escape(c)}</td>" for c in cells)
            + "</tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def _view(view: RunView, shown: bool) -> str:
    hidden = "" if shown else " hidden"
    out = [
        f'<section class="run-view" data-view="{escape(view.id)}"{hidden}>',
        f"<h3>{escape(view.title)}</h3>",
    ]
    out += [f'<p class="note">{escape(note)}</p>' for note in view.notes]
    charts = _charts(view)
    if charts:
        out.append('<div class="charts">' + "".join(charts) + "</div>")
    else:
        out.append('<p class="muted">No curves: no step logged a metric twice.</p>')
    figures = [
        f'<figure class="figure" data-figure="{escape(f.name)}"><img alt="{escape(f.name)}" '
        f'src="{f.uri}"><figcaption class="muted">{escape(f.step)}: {escape(f.name)}'
        "</figcaption></figure>"
        for f in view.figures
    ]
    if view.confusion and not any("confusion" in f.name for f in view.figures):
        figures.append(
            '<figure class="figure" data-figure="confusion_matrix">'
            f"{heat_map(view.confusion)}</figure>"
        )
    if figures:
        out.append('<div class="figures">' + "".join(figures) + "</div>")
    out.append('<div class="tables">')
    out.append(_table("params", "param", view.params, only_differing=view.id == COMPARE))
    out.append(_table("metrics", "metric", view.metrics))
    out.append("</div></section>")
    return "\n".join(out)


def _charts(view: RunView) -> list[str]:
    """A chart per step and metric family: the splits of a run (train, val) overlaid, of
    every run of the view. A family no curve of has two points is left out (the metrics
    table shows its values)."""
    several = view.id == COMPARE
    grouped: dict[tuple[str, str], list[tuple[str, Curve]]] = {}
    for run, curves in view.curves.items():
        for family, group in families(curves).items():
            for curve in group:
                grouped.setdefault((curve.step, family), []).append((run, curve))
    charts = []
    runs = list(view.curves)
    for (step, family), members in grouped.items():
        if all(len(c.points) < 2 for _, c in members):
            continue
        series = []
        for run, curve in sorted(members, key=lambda m: (SPLIT_ORDER.index(m[1].split), m[0])):
            split = curve.split
            label = curve.metric if not several else f"{_short(run)} {split or curve.metric}"
            color = RUN_COLORS[runs.index(run) % len(RUN_COLORS)] if several else None
            series.append(
                Series(
                    label=label,
                    points=curve.points,
                    color=color or SPLIT_COLORS[split],
                    dash=SPLIT_DASHES[split],
                    run=run,
                )
            )
        charts.append(
            f'<div class="chart" data-metric="{escape(family)}" data-step="{escape(step)}">'
            + line_chart(f"{family}  (step {step})", series, members[0][1].x_label, family)
            + "</div>"
        )
    return charts


def _short(run: str) -> str:
    """A run id's distinctive end (`20260301-142233-a1b2c3` → `a1b2c3`)."""
    return run.rsplit("-", 1)[-1] if run.count("-") >= 2 else run


def _table(
    kind: str, what: str, values: dict[str, dict[str, Any]], only_differing: bool = False
) -> str:
    """One column per run (one run: key and value)."""
    runs = list(values)
    keys = list(dict.fromkeys(k for run in runs for k in values[run]))
    if only_differing and len(runs) > 1:
        keys = [k for k in keys if len({_text(values[r].get(k)) for r in runs}) > 1]
    title = f"{kind} that differ" if only_differing and len(runs) > 1 else kind
    if not keys:
        return f'<div><h4>{title}</h4><p class="muted">none</p></div>'
    heads = [what] + ([_short(r) for r in runs] if len(runs) > 1 else ["value"])
    out = [
        f'<div><h4>{title}</h4><table class="{kind}">'
        + "<tr>"
        + "".join(f"<th>{escape(h)}</th>" for h in heads)
        + "</tr>"
    ]
    for key in keys:
        cells = "".join(f'<td class="num">{escape(_text(values[r].get(key)))}</td>' for r in runs)
        out.append(f"<tr><td>{escape(key)}</td>{cells}</tr>")
    out.append("</table></div>")
    return "".join(out)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
