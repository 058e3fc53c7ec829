"""The package's structure: one namespace, layers that import one way, a report without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hdbench

ROOT = Path(__file__).resolve().parents[1]
# folder -> its import name
LAYERS = {
    "kernels": "hdbench.kernels",
    "results": "hdbench.results",
    "suite": "hdbench.suite",
    "reports": "hdbench.reports",
}
# what each layer may import of hdbench (itself included)
ALLOWED = {
    "hdbench.kernels": {"hdbench.kernels"},
    "hdbench.results": {"hdbench.results"},
    "hdbench.suite": {"hdbench.suite", "hdbench.kernels", "hdbench.results"},
    "hdbench.reports": {"hdbench.reports", "hdbench.results"},
}
# third-party packages a layer must not import, anywhere in it
FORBIDDEN = {"hdbench.results": {"torch", "triton"}, "hdbench.reports": {"torch", "triton"}}


def _modules() -> dict[str, Path]:
    """{module name: file} of every installed module of the four layers."""
    out = {}
    for folder, package in LAYERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            if "measurements" in rel.parts:
                continue
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def _imports(name: str, path: Path, top_level_only: bool) -> set[str]:
    """The modules `path` (module `name`) imports, relative imports resolved; with
    `top_level_only`, those run at import time (not inside functions)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


def _layer(module: str) -> str | None:
    return next((p for p in ALLOWED if module == p or module.startswith(p + ".")), None)


def test_every_module_imports_through_the_one_namespace():
    bare = {"kernels", "suite", "reports", "results"}
    files = [*_modules().items(), *((f"tests.{p.stem}", p) for p in (ROOT / "tests").glob("*.py"))]
    offenders = [
        f"{path.relative_to(ROOT)}: {imp}"
        for name, path in files
        for imp in _imports(name, path, top_level_only=False)
        if imp.split(".")[0] in bare
    ]
    assert not offenders, offenders


def test_layers_import_one_way_and_the_report_needs_no_suite_kernels_or_torch():
    offenders = []
    for name, path in _modules().items():
        layer = _layer(name)
        for imp in _imports(name, path, top_level_only=False):
            target = _layer(imp)
            if target is not None and target not in ALLOWED[layer]:
                offenders.append(f"{name} imports {imp}")
            if imp.split(".")[0] in FORBIDDEN.get(layer, set()):
                offenders.append(f"{name} imports {imp}")
    assert not offenders, offenders


def test_the_import_graph_has_no_circle():
    """Module-level imports (those run when a module is imported) form no cycle."""
    modules = _modules()
    graph = {
        name: {
            imp
            for imp in _imports(name, path, top_level_only=True)
            if imp in modules and imp != name
        }
        for name, path in modules.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            # a package's __init__ importing its own submodules is not a circle
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_package_has_a_version_a_licence_and_a_citation_and_ships_its_templates():
    assert hdbench.__version__.count(".") == 2
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()
    citation = (ROOT / "CITATION.cff").read_text()
    assert f"version: {hdbench.__version__}\n" in citation and "arXiv:1801.00634" in citation
    from importlib import resources

    templates = resources.files("hdbench.reports").joinpath("templates")
    assert {"base.html", "index.html", "page.html"} <= {p.name for p in templates.iterdir()}
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"hdbench.reports" = ["templates/*.html"]' in pyproject


def test_the_report_builds_without_torch(tmp_path):
    """torch and triton hidden (None in sys.modules): the report still builds from results."""
    from tests.test_reports import fixture_results

    results = fixture_results(tmp_path / "results")
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None
        sys.modules["triton"] = None
        from hdbench.reports.__main__ import main
        status = main(["--results", {str(results)!r}, "--out", {str(tmp_path / "html")!r}])
        assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
        sys.exit(status)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    index = (tmp_path / "html" / "index.html").read_text()
    assert "Kernel performance" in index and (tmp_path / "html" / "kernels.html").exists()


def test_the_code_runs_on_the_oldest_python_it_claims():
    """vermin finds no name or syntax newer than pyproject's requires-python (3.10)."""
    pytest.importorskip("vermin")  # a test dependency: missing only outside `make`
    assert 'requires-python = ">=3.10"' in (ROOT / "pyproject.toml").read_text()
    folders = [str(ROOT / f) for f in (*LAYERS, "hdbench", "tests")]
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("vermin")),
            "-t=3.10-",
            "--violations",
            "--no-tips",
            "--eval-annotations",
            "--backport",
            "typing_extensions",
            *folders,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]


def test_the_classifiers_offer_the_searches_protocols():
    import torch

    from hdbench.suite.experiments import models as M
    from hdbench.suite.experiments import protocols as P

    linear, mlp, cnn = (M.build(name, 1, 8, 2) for name in ("linear", "mlp", "cnn"))
    assert isinstance(linear, P.SplitsAtAffineStem) and isinstance(linear, P.Affine)
    assert isinstance(mlp, P.SplitsAtAffineStem) and not isinstance(mlp, P.Affine)
    assert not isinstance(cnn, P.SplitsAtAffineStem) and not isinstance(cnn, P.Affine)
    for model in (linear, mlp):
        stem, tail = model.affine_stem()
        assert isinstance(stem, P.AffineStem) and isinstance(stem, P.KeepsGram)
        assert stem.weight.shape == (stem.gram().shape[0], 64)
        x = torch.rand(3, 1, 8, 8)
        assert torch.equal(tail(stem(x)), model(x))


def test_every_implementation_the_suite_measures_has_a_declared_role():
    """The suite's ``impl`` values are declared once, in ``results.vocabulary``, with the role
    that the speed-ups and the plot colours read."""
    from asv_runner.discovery import disc_benchmarks

    from hdbench.results.vocabulary import IMPLEMENTATIONS, ROLES

    sys.path.insert(0, str(ROOT))
    try:
        found = list(disc_benchmarks(str(ROOT / "suite")))
    finally:
        sys.path.remove(str(ROOT))
    impls = {
        v.strip("'\"")
        for b in found
        for name, values in zip(b.param_names, b.params, strict=True)
        if name in ("impl", "peer")
        for v in map(str, values)
    }
    assert impls and impls <= set(IMPLEMENTATIONS), sorted(impls - set(IMPLEMENTATIONS))
    assert {i.role for i in IMPLEMENTATIONS.values()} <= set(ROLES)
