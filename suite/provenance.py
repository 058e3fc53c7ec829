"""What stands behind a benchmark's numbers, recorded with its results: the numeric upper-case
constants of its module (the suite's sizes) and the seed expressions it passes.

asv copies a benchmark function's own attributes into ``benchmarks.json`` when it runs the
suite (asv-runner 0.3 collects every attribute of the function that is a str, number, list,
dict or bool). ``record(globals())`` at the foot of a benchmark module gives each of its
benchmarks a ``provenance`` attribute, ``{"constants": [...], "seeds": [...]}``, read from the
module's own source as asv imports it; the report prints it under every figure. It is so the
record of the commit that ran, not of the checkout that builds the report.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import types
from pathlib import Path
from typing import Any

SEED_CALLS = ("manual_seed", "seed_all", "generator", "seed")  # calls that take a seed
BENCHMARK = re.compile(r"^(time|timeraw|track|peakmem|mem)_")  # asv's benchmark prefixes


def _literal(node: ast.expr) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None


def _numeric(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, tuple) and bool(value) and all(_numeric(v) for v in value)


def _short(value: object) -> str:
    """``(8, 16, 32, 64, 128)`` -> ``8..128 (5 values)`` for a long numeric tuple."""
    if isinstance(value, tuple) and len(value) > 4:
        return f"{value[0]}..{value[-1]} ({len(value)} values)"
    return repr(value).replace(" ", "")


@functools.cache
def module_provenance(path: str) -> dict[str, list[str]]:
    """Numeric upper-case constants and seed expressions of the module at `path`.

    Returns:
        ``{"constants": ["TRIALS=100000", ...], "seeds": ["seed=1000 * d + len(model)", ...]}``;
        both empty when the file is missing or does not parse.
    """
    try:
        source = Path(path).read_text(encoding="utf-8")
        tree = ast.parse(source)
    except (OSError, SyntaxError, ValueError):
        return {"constants": [], "seeds": []}
    consts = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            value = _literal(node.value)
            if isinstance(target, ast.Name) and target.id.isupper() and _numeric(value):
                consts.append(f"{target.id}={_short(value)}")
    seeds: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        texts = [
            f"seed={ast.get_source_segment(source, k.value)}"
            for k in node.keywords
            if k.arg == "seed"
        ]
        pos = 1 if name == "generator" else 0  # common.generator(dev, seed)
        if name in SEED_CALLS and len(node.args) > pos:
            texts.append(f"{name}({ast.get_source_segment(source, node.args[pos])})")
        seeds += [t for t in texts if t not in seeds]
    common_path = Path(__file__).with_name("common.py")
    uses_common = any(t in source for t in ("common.SEED", "common.seed_all(", "common.generator("))
    if Path(path).resolve() != common_path.resolve() and uses_common:
        common = dict(c.split("=", 1) for c in module_provenance(str(common_path))["constants"])
        if "SEED" in common:
            seeds.append(f"common.SEED={common['SEED']}")
    return {"constants": consts, "seeds": seeds}


def _own_copy(fn: types.FunctionType) -> types.FunctionType:
    """A copy of `fn` with its own attribute dict, so an inherited benchmark method records the
    provenance of the module whose class inherits it."""
    copy = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )
    copy.__dict__.update(fn.__dict__)
    copy.__qualname__, copy.__doc__, copy.__kwdefaults__ = (
        fn.__qualname__,
        fn.__doc__,
        fn.__kwdefaults__,
    )
    return copy


def record(namespace: dict[str, Any]) -> None:
    """Give every benchmark of the module whose ``globals()`` is `namespace` (its functions, and
    the methods of its classes, inherited ones included) a ``provenance`` attribute."""
    prov = module_provenance(namespace["__file__"])
    module = namespace["__name__"]
    for name, obj in list(namespace.items()):
        if inspect.isfunction(obj) and BENCHMARK.match(name) and obj.__module__ == module:
            obj.provenance = prov
        elif inspect.isclass(obj) and obj.__module__ == module:
            for attr in dir(obj):
                fn = getattr(obj, attr, None)
                if BENCHMARK.match(attr) and inspect.isfunction(fn):
                    if attr not in vars(obj):  # inherited: this class's own copy
                        fn = _own_copy(fn)
                        setattr(obj, attr, fn)
                    fn.provenance = prov
