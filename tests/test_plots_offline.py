"""`dvc plots show` and `dvc plots diff` draw their charts with no network: .dvc/config's
`plots.html_template` (written into the venv by `make install`: codex_ml/report/plots_template.py)
carries vega, vega-lite and vega-embed inline, where DVC's own template loads them from a CDN."""

from __future__ import annotations

import configparser
import shutil
from pathlib import Path

import pytest

from codex_ml.report.plots_template import PLACEHOLDERS
from tests.chromium import chromium_binary, file_url, open_page
from tests.conftest import ROOT, VENV_BIN, run

# Every vega-embed container on the page, and what was drawn in it (vega's default renderer: a canvas).
PROBE = """(() => {
  const charts = [...document.querySelectorAll('.vega-embed')].map(e => {
    const svg = e.querySelector('svg.marks');  // the bundle's vega-embed renders SVG
    if (!svg) return {id: e.id, w: 0, h: 0, marks: 0};
    return {id: e.id, w: svg.width.baseVal.value, h: svg.height.baseVal.value,
            marks: svg.querySelectorAll('path, line, rect').length};
  });
  return {charts, cdn: [...document.scripts].filter(s => s.src).map(s => s.src)};
})()"""


def template_path() -> Path:
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc/config")
    return (ROOT / ".dvc" / config["plots"]["html_template"]).resolve()


def test_dvc_config_names_the_installed_template_and_it_holds_the_libraries() -> None:
    path = template_path()
    assert path.is_file(), (f"{path} (.dvc/config plots.html_template) is missing: `make install` writes it "
                            "(python -m codex_ml.report.plots_template)")
    page = path.read_text(encoding="utf-8")
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC's CDN tags go to {scripts}
    assert "window.vegaEmbed=" in page and "http://" not in page.split("<script>")[0]
    assert "<script src" not in page
    assert all(page.count(p) <= 1 for p in PLACEHOLDERS)


@pytest.fixture
def plots_repo(tmp_path: Path) -> Path:
    """A git+DVC repository with the project's dvc.yaml, .dvc/config and committed metrics (the
    dvclive training curves and eval's per-document rows), the venv linked as `make install` makes it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for item in ("dvc.yaml", "metrics"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, repo / item)
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["dvc", "init", "-q"], repo)
    shutil.copyfile(ROOT / ".dvc/config", repo / ".dvc/config")
    (repo / ".venv").symlink_to(VENV_BIN.parent)
    (repo / ".gitignore").write_text(".venv\ndvc_plots/\n")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "a run"], repo)
    return repo


# Warnings that are not failures: vega-embed's note that Vega-Lite 5 (the version DVC's specs declare)
# compiles to a Vega 5 spec, run by the bundle's Vega 6; and Vega-Lite's note on the empty layers of
# DVC's hover rules ("Infinite extent" of a field before the pointer selects anything).
BENIGN = ("The compiled spec uses Vega v5, but current version is v6", "'WARN', 'Infinite extent for field",
          "'WARN', 'Scale bindings are currently only supported")


def drawn(page: Path) -> dict:
    result = open_page(file_url(page), PROBE, offline=True, settle=2.0)
    assert [e for e in result.errors() if not any(b in e for b in BENIGN)] == []
    assert result.requests == [file_url(page)]  # nothing else was asked for
    return result.value


@pytest.mark.skipif(chromium_binary() is None, reason="chromium not installed (.ci/run installs it)")
def test_plots_show_and_diff_draw_every_chart_offline(plots_repo: Path) -> None:
    run(["dvc", "plots", "show"], plots_repo)
    show = drawn(plots_repo / "dvc_plots/index.html")
    assert show["cdn"] == []
    # dvc.yaml's two top-level plots and the train stage's dvclive series: every one drawn
    snippets = (plots_repo / "dvc_plots/index.html").read_text().count("vegaEmbed('#")
    assert snippets >= 10 and len(show["charts"]) == snippets, show
    assert all(c["w"] > 100 and c["h"] > 50 and c["marks"] > 20 for c in show["charts"]), show["charts"]

    # Another run's numbers in the workspace: `dvc plots diff` draws both revisions.
    loss = plots_repo / "metrics/train/plots/metrics/train/loss.tsv"
    rows = loss.read_text().splitlines()
    loss.write_text("\n".join([rows[0], *rows[1: len(rows) // 2]]) + "\n")
    run(["dvc", "plots", "diff", "HEAD"], plots_repo)
    page = plots_repo / "dvc_plots/index.html"
    assert '"rev": "HEAD"' in page.read_text() or '"rev":"HEAD"' in page.read_text().replace(" ", "")
    diff = drawn(page)
    assert len(diff["charts"]) == len(show["charts"])
    assert all(c["marks"] > 20 for c in diff["charts"]), diff["charts"]


@pytest.mark.skipif(chromium_binary() is None, reason="chromium not installed (.ci/run installs it)")
def test_dvcs_own_template_is_blank_offline(plots_repo: Path) -> None:
    # The check above can fail: without the template, the CDN's libraries never load and nothing is drawn.
    run(["dvc", "config", "--unset", "plots.html_template"], plots_repo)
    run(["dvc", "plots", "show"], plots_repo)
    page = plots_repo / "dvc_plots/index.html"
    result = open_page(file_url(page), PROBE, offline=True, settle=2.0)
    assert result.value["charts"] == []
    assert any("cdn.jsdelivr.net" in r for r in result.requests)
    assert result.errors()  # the failed loads, and vegaEmbed undefined
