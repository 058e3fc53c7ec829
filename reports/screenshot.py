"""``python -m hdbench.reports.screenshot``: render every page of a built report to PNG in headless
Chromium, to look at it as a reader would, and check what a browser sees.

Usage::

    python -m hdbench.reports.screenshot [--html reports/html] [--out reports/html/screens] \
        [--width 1280]

Needs Playwright's Python package (in the ``test`` extra) and a Chromium on the machine
(Debian: ``apt-get install chromium``; ``--browser PATH`` or ``$HDBENCH_CHROMIUM`` names
another). Playwright's own browser download is not used. The page is opened from the file system
with every network request refused, so a picture that looks right also shows that the page needs
no network. Each page is checked as it renders: an image that did not decode, a request that
left the file system or a console error is reported, and the exit status is then 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
# as root on a closed network: no sandbox, and none of Chromium's background connections
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def find_browser(explicit: str | None = None) -> str:
    """Path of the Chromium to drive: `explicit`, else $HDBENCH_CHROMIUM, else the first of
    ``BROWSERS`` on PATH.

    Raises:
        FileNotFoundError: none found (the message says how to install one).
    """
    for name in (explicit, os.environ.get("HDBENCH_CHROMIUM"), *BROWSERS):
        path = name and shutil.which(name)
        if path:
            return path
    raise FileNotFoundError(
        "screenshot: expected a Chromium on PATH (one of " + ", ".join(BROWSERS) + ") or "
        "named by --browser / HDBENCH_CHROMIUM, found none; on Debian: apt-get install chromium"
    )


def render(
    html_dir: Path, out_dir: Path, *, width: int = 1280, browser: str | None = None
) -> dict[str, list[str]]:
    """Render each ``*.html`` of `html_dir` full-page to ``out_dir/<page>.png``.

    Returns:
        {page file name: problems seen while it rendered} (an empty list: none).

    Raises:
        FileNotFoundError: no pages in `html_dir`, or no browser (``find_browser``).
        ModuleNotFoundError: Playwright is not installed.
    """
    pages = sorted(html_dir.glob("*.html"))
    if not pages:
        raise FileNotFoundError(f"screenshot: expected *.html pages in {html_dir}, found none")
    try:
        from playwright.sync_api import sync_playwright
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError("screenshot: needs Playwright: pip install -e '.[test]'") from exc
    executable = find_browser(browser)
    out_dir.mkdir(parents=True, exist_ok=True)
    seen: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page(viewport={"width": width, "height": 900})
            problems: list[str] = []

            def console(message) -> None:
                if message.type == "error":
                    problems.append(f"console: {message.text}")

            page.on("console", console)

            def refuse(route):
                if not route.request.url.startswith(("file:", "data:")):
                    problems.append(f"network request refused: {route.request.url}")
                    return route.abort()
                return route.continue_()

            page.route("**/*", refuse)
            for path in pages:
                problems.clear()
                page.goto(path.resolve().as_uri(), wait_until="load")
                broken = page.eval_on_selector_all(
                    "img",
                    "els => els.filter(e => !e.complete || e.naturalWidth === 0)"
                    ".map(e => e.alt || e.src.slice(0, 60))",
                )
                problems += [f"image did not decode: {alt}" for alt in broken]
                # open every <details>, so the picture shows the tables too
                page.eval_on_selector_all("details", "els => els.forEach(e => e.open = true)")
                tmp = out_dir / f".{path.stem}.png.tmp"
                page.screenshot(path=str(tmp), full_page=True, type="png")
                tmp.replace(out_dir / f"{path.stem}.png")
                seen[path.name] = list(problems)
        finally:
            chromium.close()
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hdbench.reports.screenshot", description=__doc__
    )
    parser.add_argument("--html", type=Path, default=Path("reports/html"), help="built report")
    parser.add_argument("--out", type=Path, default=None, help="PNG folder (<html>/screens)")
    parser.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels")
    parser.add_argument("--browser", default=None, help="Chromium executable")
    args = parser.parse_args(argv)
    out = args.out or args.html / "screens"
    try:
        seen = render(args.html, out, width=args.width, browser=args.browser)
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        print(exc, file=sys.stderr)
        return 1
    for name, problems in seen.items():
        print(
            f"{out / Path(name).with_suffix('.png').name}: "
            + ("ok" if not problems else "; ".join(problems))
        )
    return 1 if any(seen.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
