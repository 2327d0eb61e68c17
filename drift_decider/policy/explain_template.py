"""``explain`` templates: ``"structure broke: knn_jaccard={knn_jaccard:.2f} < {$jaccard_low}"``.

Placeholders name a metric or a ``$param`` with an optional float format spec. Rendering is our own
substitution (not ``str.format``), so a template cannot reach attributes or items of anything.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

_PLACEHOLDER = re.compile(r"\{(\$?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"   # name or $param
                          r"(?::([0-9.,+\- eEfFgG%]{0,12}))?\}")                        # float format spec
MAX_TEMPLATE = 500
# a spec is [sign][0][width][,][.precision][type]; width and precision are bounded because rendering
# honours them: {mmd2:99999999} would write 100 MB into every decision record
_SPEC = re.compile(r"[+\- ]?0?(\d*),?(?:\.(\d+))?[eEfFgG%]?")
MAX_WIDTH = 40
MAX_PRECISION = 17        # a double has 17 significant digits; more only adds zeros


def check_template(text: str, metric_names: Iterable[str], params: Mapping[str, float]) -> None:
    """Raise ValueError when a template names an unknown metric/param or has a bad format spec."""
    if len(text) > MAX_TEMPLATE:
        raise ValueError(f"template is {len(text)} characters; the limit is {MAX_TEMPLATE}")
    names = set(metric_names)
    stripped = _PLACEHOLDER.sub("", text)
    if "{" in stripped or "}" in stripped:
        raise ValueError("placeholders look like {metric}, {metric:.3f} or {$param}; "
                         "found another use of braces")
    for _, name, _ in _parts(text):
        if name.startswith("$") and name[1:] not in params:
            raise ValueError(f"unknown param {name!r} in template")
        if name and not name.startswith("$") and name not in names:
            raise ValueError(f"unknown metric {name!r} in template")


def render(text: str, metrics: Mapping[str, float], params: Mapping[str, float]) -> str:
    """Fill placeholders; a metric missing from the inputs renders as ``n/a``."""
    out = []
    for literal, name, spec in _parts(text):
        out.append(literal)
        if name:
            value = params.get(name[1:]) if name.startswith("$") else metrics.get(name)
            out.append("n/a" if value is None else format(value, spec))
    return "".join(out)


def _parts(text: str) -> tuple[tuple[str, str, str], ...]:
    """(literal text, placeholder name or "", format spec) pieces; ValueError
    for a spec outside _SPEC (every spec it matches formats any float) or whose width or precision is
    over the limit. Loading and rendering both read specs here, so a template that loads renders, small."""
    parts, pos = [], 0
    for match in _PLACEHOLDER.finditer(text):
        name, spec = match.group(1), match.group(2) or ""
        found = _SPEC.fullmatch(spec)
        if found is None:
            raise ValueError(f"bad format spec {spec!r} for {name!r}")
        width, precision = found.groups()
        if int(width or 0) > MAX_WIDTH or int(precision or 0) > MAX_PRECISION:
            raise ValueError(f"format spec {spec!r} for {name!r}: the width is limited to {MAX_WIDTH} and the "
                             f"precision to {MAX_PRECISION}")
        parts.append((text[pos:match.start()], name, spec or "g"))
        pos = match.end()
    parts.append((text[pos:], "", ""))
    return tuple(parts)
