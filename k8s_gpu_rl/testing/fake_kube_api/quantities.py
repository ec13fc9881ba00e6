"""Resource quantities ("500m", "4Gi") and ValidateResourceRequirements."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

_QUANTITY_RE = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))(?:(?P<exp>[eE][+-]?\d+)|(?P<suf>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$"
)

_SUFFIX = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}


def parse_quantity(q: Any) -> Fraction:
    """Parse a Kubernetes resource quantity ("500m", "4Gi", "8192", 3) to an exact Fraction."""
    if isinstance(q, bool):
        raise ValueError(f"invalid quantity {q!r}")
    if isinstance(q, int | float):
        return Fraction(str(q))
    m = _QUANTITY_RE.match(str(q).strip())
    if not m:
        raise ValueError(f"invalid quantity {q!r}")
    value = Fraction(m["num"])
    if m["exp"]:
        value *= Fraction(10) ** int(m["exp"][1:])
    if m["suf"]:
        value *= _SUFFIX[m["suf"]]
    return value


def _is_overcommit_allowed(resource: str) -> bool:
    """Native resources (no domain, or *.kubernetes.io) except hugepages may be overcommitted."""
    if resource.startswith("hugepages-"):
        return False
    if "/" not in resource:
        return True
    domain = resource.split("/", 1)[0]
    return domain == "kubernetes.io" or domain.endswith(".kubernetes.io")


def _validate_resources(resources: Any, base: str) -> list[tuple[str, str]]:
    """ValidateResourceRequirements: parseable quantities, request <= limit, and for
    non-overcommitable (extended, e.g. nvidia.com/*) resources request == limit."""
    causes: list[tuple[str, str]] = []
    if not isinstance(resources, dict):
        return [(base, "must be an object")]
    parsed: dict[str, dict[str, Fraction]] = {}
    for section in ("limits", "requests"):
        values = resources.get(section) or {}
        if not isinstance(values, dict):
            causes.append((f"{base}.{section}", "must be a map"))
            continue
        parsed[section], section_causes = _parse_section(values, f"{base}.{section}")
        causes += section_causes
    limits, requests = parsed.get("limits", {}), parsed.get("requests", {})
    for res, req in requests.items():
        causes += _request_causes(resources, res, req, limits.get(res), base)
    return causes


def _parse_section(
    values: dict[str, Any], field: str
) -> tuple[dict[str, Fraction], list[tuple[str, str]]]:
    """The parsed quantities of one of limits / requests; non-string ones are stored back
    as strings, as the server stores them."""
    parsed: dict[str, Fraction] = {}
    causes: list[tuple[str, str]] = []
    for res, q in list(values.items()):
        try:
            parsed[res] = parse_quantity(q)
        except ValueError:
            causes.append(
                (
                    f"{field}[{res}]",
                    f"Invalid value: {q!r}: quantities must match the regular expression "
                    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                )
            )
            continue
        if parsed[res] < 0:
            causes.append(
                (f"{field}[{res}]", f"Invalid value: {q!r}: must be greater than or equal to 0")
            )
        if not isinstance(q, str):
            values[res] = str(q) if not isinstance(q, float) or not q.is_integer() else str(int(q))
    return parsed, causes


def _request_causes(
    resources: dict[str, Any], res: str, req: Fraction, limit: Fraction | None, base: str
) -> list[tuple[str, str]]:
    """A request against its limit: equal for non-overcommitable resources, else <=."""
    if limit is None:
        if _is_overcommit_allowed(res):
            return []
        return [
            (
                f"{base}.limits[{res}]",
                "Required value: Limit must be set for non overcommitable resources",
            )
        ]
    field = f"{base}.requests[{res}]"
    shown, shown_limit = resources["requests"][res], resources["limits"][res]
    if req != limit and not _is_overcommit_allowed(res):
        return [(field, f'Invalid value: "{shown}": must be equal to {res} limit of {shown_limit}')]
    if req > limit:
        return [
            (
                field,
                f'Invalid value: "{shown}": must be less than or equal to {res} limit of '
                f"{shown_limit}",
            )
        ]
    return []
