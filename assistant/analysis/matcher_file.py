"""The fitted matcher and its example table on disk, as plain arrays and JSON: never a pickle.

A pickle runs code when it is read, so a crafted file in the cache directory could run anything at the next
start. This format holds only numbers, strings and sparse-matrix parts, read with `allow_pickle=False`; the
marker index and claim frames are not stored at all but rebuilt from the knowledge base, which is where they
come from. One `.npz` file (the JSON inside it as a string array), so a cache is replaced in one rename.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import BinaryIO

import numpy as np
from scipy.sparse import csr_matrix

from .analyzer import ExampleTable
from .matcher import LinearModel, NarrativeMatcher
from .trees import TreeEnsemble

FORMAT = "narrative-lens-matcher/1"
_REBUILT = {"markers", "frames"}  # from the knowledge base at load time
_TREE_FIELDS = ("feature", "threshold", "left", "right", "leaf", "value", "roots")


def save_matcher(handle: BinaryIO, matcher: NarrativeMatcher, table: ExampleTable) -> None:
    arrays: dict[str, np.ndarray] = {}
    meta: dict = {"format": FORMAT, "attributes": {}, "table": {}}
    for name, value in vars(matcher).items():
        if name not in _REBUILT:
            meta["attributes"][name] = _encode(value, f"m.{name}", arrays)
    for field in fields(ExampleTable):
        meta["table"][field.name] = _encode(getattr(table, field.name), f"t.{field.name}", arrays)
    arrays["meta"] = np.array(json.dumps(meta, ensure_ascii=False))
    np.savez(handle, **arrays)


def load_matcher(path, markers, frames) -> tuple[NarrativeMatcher, ExampleTable]:
    """Raises ValueError (or an OSError) for a file that is not a matcher of this format."""
    with np.load(path, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    meta = json.loads(str(arrays["meta"]))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    attributes = {name: _decode(value, arrays) for name, value in meta["attributes"].items()}
    matcher = NarrativeMatcher(attributes["ids"], markers, frames)
    vars(matcher).update(attributes)
    table = ExampleTable(**{name: _decode(value, arrays) for name, value in meta["table"].items()})
    return matcher, table


def _encode(value, key: str, arrays: dict):
    """JSON for plain values; a reference into `arrays` for arrays and the fitted models."""
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"array": key}
    if isinstance(value, csr_matrix):
        for part in ("data", "indices", "indptr"):
            arrays[f"{key}.{part}"] = getattr(value, part)
        return {"csr": key, "shape": list(value.shape)}
    if isinstance(value, TreeEnsemble):
        for part in _TREE_FIELDS:
            arrays[f"{key}.{part}"] = getattr(value, part)
        return {"trees": key, "depth": value.depth, "baseline": value.baseline}
    if isinstance(value, LinearModel):
        return {"linear": {f.name: _encode(getattr(value, f.name), f"{key}.{f.name}", arrays) for f in fields(LinearModel)}}
    if isinstance(value, tuple):
        return {"tuple": [_encode(item, f"{key}.{i}", arrays) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return {"list": [_encode(item, f"{key}.{i}", arrays) for i, item in enumerate(value)]}
    if isinstance(value, dict):
        return {"dict": {str(k): _encode(v, f"{key}.{k}", arrays) for k, v in value.items()}}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"the matcher file cannot hold {key} ({type(value).__name__})")


def _decode(value, arrays: dict):
    if not isinstance(value, dict):
        return value
    if "array" in value:
        return arrays[value["array"]]
    if "csr" in value:
        key = value["csr"]
        return csr_matrix((arrays[f"{key}.data"], arrays[f"{key}.indices"], arrays[f"{key}.indptr"]), shape=tuple(value["shape"]))
    if "trees" in value:
        key = value["trees"]
        return TreeEnsemble(*(arrays[f"{key}.{part}"] for part in _TREE_FIELDS), int(value["depth"]), float(value["baseline"]))
    if "linear" in value:
        return LinearModel(**{name: _decode(part, arrays) for name, part in value["linear"].items()})
    if "tuple" in value:
        return tuple(_decode(item, arrays) for item in value["tuple"])
    if "list" in value:
        return [_decode(item, arrays) for item in value["list"]]
    if "dict" in value:
        return {k: _decode(v, arrays) for k, v in value["dict"].items()}
    raise ValueError(f"unknown entry in the matcher file: {sorted(value)}")
