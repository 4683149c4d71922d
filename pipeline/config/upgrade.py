"""Older config shapes in the current one: the flat noise section.

Until checkpoint format 3 the noise section was one flat mapping holding every kind's
fields (``sigma``, ``photons``, ``speckle_sigma``, ...), with ``photons`` and ``read_noise``
left out or null meaning a default that depended on the kind, and ``mixed`` drawing from a
``mixed_kinds`` list with equal probability (weights given by repeating a kind).
:func:`upgrade_noise` turns such a mapping into the per-kind shape of
:mod:`pipeline.config.noise` with the same values, so the same seed gives the same noise.
A mapping already in the current shape comes back with only ``kind`` filled in.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

#: Fields of the flat noise section (every kind's fields in one mapping).
FLAT_FIELDS = frozenset(
    {
        "kind",
        "sigma",
        "sigma_max",
        "clip",
        "photons",
        "photons_min",
        "dose",
        "dose_max",
        "read_noise",
        "mu",
        "kernel_a",
        "kernel_a_max",
        "mixed_kinds",
        "amount",
        "speckle_sigma",
        "fresh_each_epoch",
    }
)
#: Flat fields each kind took (flat name -> its name in the kind's section).
KIND_FIELDS: dict[str, dict[str, str]] = {
    "gaussian": {"sigma": "sigma", "sigma_max": "sigma_max", "clip": "clip"},
    "poisson_gaussian": {f: f for f in ("photons", "photons_min", "dose", "read_noise", "clip")},
    "xray": {
        f: f
        for f in (
            "photons",
            "dose",
            "dose_max",
            "read_noise",
            "mu",
            "kernel_a",
            "kernel_a_max",
            "clip",
        )
    },
    "salt_pepper": {"amount": "amount"},
    "speckle": {"speckle_sigma": "sigma", "clip": "clip"},
}
#: Kinds a flat ``mixed`` section could list, and its default list.
MIXABLE = ("gaussian", "poisson_gaussian", "xray")
DEFAULT_MIXED_KINDS = ["gaussian", "poisson_gaussian"]
#: Defaults of the flat ``photons`` and ``read_noise`` (xray's whenever xray is drawn).
FLAT_DEFAULTS = {
    "xray": {"photons": 2000.0, "read_noise": 3.0},
    "other": {"photons": 1e4, "read_noise": 10.0},
}


def is_flat(data: dict[str, Any]) -> bool:
    """Whether a noise mapping has the flat shape.

    Fields its kind does not have, or a flat mixture.
    """
    kind = data.get("kind", "gaussian")
    if "components" in data or kind not in KIND_FIELDS and kind != "mixed":
        return False
    if kind == "mixed" or "mixed_kinds" in data:
        return True
    own = set(KIND_FIELDS[kind].values()) | {"kind", "fresh_each_epoch"}
    nulls = any(data.get(k, 0) is None for k in ("photons", "read_noise"))
    return bool((FLAT_FIELDS - own) & data.keys()) or nulls


def upgrade_noise(data: Any) -> Any:
    """A noise mapping in the per-kind shape (see the module docstring); anything else as it is.

    Keys that were never fields of the flat section are kept, so validation names them.
    """
    if not isinstance(data, dict):
        return data
    if not is_flat(data):
        return (
            {"kind": "gaussian", **data}
            if "kind" not in data and "components" not in data
            else data
        )
    kind = data.get("kind", "gaussian")
    kinds = data.get("mixed_kinds", DEFAULT_MIXED_KINDS) if kind == "mixed" else [kind]
    if kind == "mixed" and (
        not isinstance(kinds, list) or not kinds or any(k not in MIXABLE for k in kinds)
    ):
        raise ValueError(
            f"mixed_kinds must be a non-empty list of {', '.join(MIXABLE)}; got {kinds!r}"
        )
    defaults = FLAT_DEFAULTS["xray" if "xray" in kinds else "other"]
    flat = {**data, **{k: v for k, v in defaults.items() if data.get(k) is None}}
    kept = {k: v for k, v in data.items() if k not in FLAT_FIELDS or k == "fresh_each_epoch"}
    if kind != "mixed":
        return {**_section(kind, flat), **kept}
    components = [
        {"weight": float(len(list(run))), "noise": _section(name, flat)}
        for name, run in groupby(kinds)
    ]
    return {"kind": "mixed", "components": components, **kept}


def _section(kind: str, flat: dict[str, Any]) -> dict[str, Any]:
    """The fields of `kind` in a flat mapping, under their names in the kind's section."""
    return {
        "kind": kind,
        **{new: flat[old] for old, new in KIND_FIELDS[kind].items() if old in flat},
    }
