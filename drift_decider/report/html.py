"""A model version's drift report as one self-contained HTML page, built from the plain rows that
``api.history`` returns and the latest decision's record (``api.audit``).

MLflow shows an ``.html`` artifact in a sandboxed iframe, so the page carries everything inline (SVG
charts, styles; no script, no image, no network) and reads the same attached to a run, to the
version's LoggedModel, or opened from disk. Every string from the store is escaped: model names,
window ids and rule texts are user input.
"""

from __future__ import annotations

from html import escape
from typing import Any, Mapping, Sequence

from drift_decider.report.svg import ACTION_COLOURS, OTHER_COLOUR, Point, Threshold, chart

UNITS_SUFFIX, FLOOR_SUFFIX = ".noise_units", ".noise_floor"
# The default policy's noise_units_max: a change twice the farthest refit's. Drawn on a .noise_units
# chart when the latest decision's trace names no threshold for it.
DEFAULT_NOISE_UNITS_MAX = 2.0
OPS = {"gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "eq": "=", "ne": "≠"}
STYLE = ("body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222}table{border-collapse:collapse;"
         "margin:6px 0 14px}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}"
         "th{background:#f3f3f3}code{font-size:12px}.swatch{display:inline-block;width:10px;height:10px;"
         "border-radius:5px;margin:0 3px 0 10px}.fired{font-weight:bold}.suppressed{color:#b15c00}")


def render_report(rows: Sequence[Mapping[str, Any]], latest: Mapping[str, Any] | None, *, model: str, version: str,
                  metrics: Sequence[str]) -> str:
    """The report of one version: ``rows`` oldest window first, ``latest`` the audit record (decision,
    evidence, run id) of the last row, ``metrics`` the keys to chart (those recorded are drawn)."""
    decision = (latest or {}).get("decision") or {}
    title = f"drift-decider · {model} v{version}"
    body = [f"<h1>{escape(title)}</h1>", _summary(rows)]
    if rows:
        body += [_latest(decision, latest or {}), "<h2>Key metrics over windows</h2>", _legend()]
        body += [_metric_section(metric, rows, decision) for metric in metrics
                 if any(metric in row["metrics"] for row in rows)]
        body += ["<h2>Checks</h2>", _checks_table(rows), "<h2>Latest evidence</h2>",
                 _evidence_table((latest or {}).get("evidence") or {}), "<h2>Rule trace of the latest decision</h2>",
                 _rule_trace(decision.get("rules") or [])]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")


def _summary(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "<p>No recorded checks.</p>"
    first, last = rows[0]["window_end"], rows[-1]["window_end"]
    counts = ", ".join(f"{escape(action)} {sum(row['action'] == action for row in rows)}"
                       for action in dict.fromkeys(row["action"] for row in rows))
    return (f"<p>{len(rows)} checks, windows ending {escape(f'{first:%Y-%m-%d %H:%M}')} to "
            f"{escape(f'{last:%Y-%m-%d %H:%M %Z}')}; decisions: {counts}.</p>")


def _latest(decision: Mapping[str, Any], latest: Mapping[str, Any]) -> str:
    policy = decision.get("policy") or {}
    held = ", ".join(f"{item.get('rule')} ({item.get('reason')}: {item.get('detail')})"
                     for item in decision.get("suppressed") or [])
    facts = [("decision", f'<strong class="latest-action">{escape(str(decision.get("action", "?")))}</strong>'),
             ("rule", f'<code class="latest-rule">{escape(str(decision.get("rule_id") or "-"))}</code>'),
             ("mode", escape(str(decision.get("mode", "")))),
             ("why", escape(str(decision.get("explanation") or "no rule fired (default decision)"))),
             ("held back", escape(held or "-")),
             ("policy", escape(f"{policy.get('name')}@{policy.get('version')} "
                               f"(sha256 {str(policy.get('sha256', ''))[:12]})")),
             ("decided at", escape(str(decision.get("decided_at", "")))),
             ("decision id", f"<code>{escape(str(decision.get('decision_id', '')))}</code>"),
             ("run id", f"<code>{escape(str(latest.get('run_id', '')))}</code> "
                        f"(experiment {escape(str(latest.get('experiment_id', '')))})")]
    cells = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in facts)
    return f'<h2>Latest decision</h2><table class="latest">{cells}</table>'


def _legend() -> str:
    swatches = [f'<span class="swatch" style="background:{colour}"></span>{escape(action)}'
                for action, colour in [*ACTION_COLOURS.items(), ("other", OTHER_COLOUR)]]
    return (f"<p>Decision markers: {''.join(swatches)}. Dashed red: a threshold of the policy; dotted grey: "
            f"the noise floor (the farthest sibling refit; 1 unit on a <code>.noise_units</code> chart); a black ring: "
            f"a rule matched but was held back.</p>")


def _metric_section(metric: str, rows: Sequence[Mapping[str, Any]], decision: Mapping[str, Any]) -> str:
    points = [Point(row["window_end"], float(row["metrics"][metric]), row["action"], row["window_id"],
                    _floor(metric, row["metrics"]), row["held"] or "")
              for row in rows if metric in row["metrics"]]
    return f"<h3><code>{escape(metric)}</code></h3>" + chart(metric, points, thresholds(metric, decision))


def _floor(metric: str, values: Mapping[str, float]) -> float | None:
    """The noise floor on the metric's axis where it was recorded (1 unit by definition for noise units)."""
    if metric.endswith(UNITS_SUFFIX):
        return 1.0
    floor = values.get(metric + FLOOR_SUFFIX)
    return None if floor is None else float(floor)


def thresholds(metric: str, decision: Mapping[str, Any]) -> list[Threshold]:
    """The thresholds the latest decision's trace compared ``metric`` with, one line per value naming
    each comparison and its rule; the default policy's noise-units limit when the trace has none for a
    ``.noise_units`` metric."""
    uses: dict[float, list[str]] = {}
    for cond in decision.get("conditions") or []:
        value = cond.get("threshold")
        if cond.get("kind") == "threshold" and cond.get("metric") == metric and isinstance(value, (int, float)):
            use = f"{OPS.get(str(cond.get('op')), cond.get('op'))} in {cond.get('rule')}"
            if use not in uses.setdefault(float(value), []):
                uses[float(value)].append(use)
    if not uses and metric.endswith(UNITS_SUFFIX):
        return [Threshold(DEFAULT_NOISE_UNITS_MAX, ("> in the default policy",))]
    return [Threshold(value, tuple(labels)) for value, labels in uses.items()]


def _checks_table(rows: Sequence[Mapping[str, Any]]) -> str:
    return _table(["window end", "window", "decision", "rule", "held back", "noise floor", "decision id", "run id"],
                  [[f"{row['window_end']:%Y-%m-%d %H:%M}", row["window_id"], row["action"], row["rule_id"] or "-",
                    row["held"] or "-", row["noise_floor"] or "-", str(row["decision_id"])[:12], row["run_id"]]
                   for row in rows])


def _evidence_table(evidence: Mapping[str, Any]) -> str:
    """Every measured result (value, p-value, or why it could not be measured), then the noise companions."""
    results = evidence.get("results") or []
    named = {result.get("name") for result in results}
    lines = [[result.get("name"), _num(result.get("value")), _num(result.get("p_value")), result.get("status"),
              (result.get("detail") or {}).get("reason", "")] for result in results]
    lines += [[name, _num(value), "", "ok", "noise companion"]
              for name, value in sorted((evidence.get("values") or {}).items())
              if name not in named and not name.endswith(".p_value")]
    return _table(["metric", "value", "p-value", "status", "note"], lines) if lines else "<p>No evidence recorded.</p>"


def _rule_trace(rules: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for rule in rules:
        status = str(rule.get("status", ""))
        why = f" ({rule.get('reason')}: {rule.get('detail')})" if rule.get("reason") else ""
        conditions = "<br>".join(escape(f"{c.get('outcome', ''):>7} {c.get('text', '')}   value={_num(c.get('value'))}")
                                 for c in rule.get("conditions") or [])
        lines.append([f'<span class="{escape(status)}">{escape(status.upper() + why)}</span>',
                      f"<code>{escape(str(rule.get('rule')))}</code> &rarr; {escape(str(rule.get('action')))} "
                      f"(priority {escape(str(rule.get('priority')))}, {escape(str(rule.get('severity')))})",
                      conditions])
    return _table(["status", "rule", "conditions"], lines, raw=True) if lines else "<p>No rules in the trace.</p>"


def _table(columns: Sequence[str], lines: Sequence[Sequence[Any]], *, raw: bool = False) -> str:
    """A table whose cells are escaped here (``raw``: the caller built them as HTML, escaping as it went)."""
    head = "".join(f"<th>{escape(column)}</th>" for column in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell if raw else escape(str(cell))}</td>" for cell in line) + "</tr>"
                   for line in lines)
    return f"<table><tr>{head}</tr>{body}</table>"


def _num(value: Any) -> str:
    return "" if value is None else f"{value:.6g}" if isinstance(value, (int, float)) else str(value)
