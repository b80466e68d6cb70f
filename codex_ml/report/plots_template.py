"""The HTML template `dvc plots show` and `dvc plots diff` fill (`plots.html_template` in .dvc/config),
with vega, vega-lite and vega-embed inline, so the page draws its charts without a network.

DVC's own template loads the three libraries from a CDN: offline, the page is blank. The libraries
here come from the installed vl-convert-python package, whose `javascript_bundle()` is one script
that defines `window.vegaEmbed` (with vega and vega-lite), the global DVC's per-plot snippets call.
`make install` writes the template into the venv; .dvc/config points at it:

    python -m codex_ml.report.plots_template .venv/share/codex-ml/dvc-plots.html
"""

from __future__ import annotations

import sys
from pathlib import Path

from codex_ml.io import write_text

# DVC's plot specs declare Vega-Lite v5 (`$schema`); the bundle compiles them with this version.
VEGA_LITE = "5.21"
# What DVC replaces in the template (dvc_render.html.HTML.embed); {scripts} is left out on purpose:
# DVC would put its CDN <script> tags there.
PLACEHOLDERS = ("{plot_divs}", "{refresh_tag}", "{scripts}")

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>DVC Plot</title>
    <!-- vega {vega}, vega-lite {vega_lite}, vega-embed {vega_embed}: vl-convert-python {vlc}'s bundle -->
    <script>
BUNDLE
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def template() -> str:
    """The page, libraries inline (only DVC's {refresh_tag} and {plot_divs} are left to fill)."""
    from importlib.metadata import version

    import vl_convert

    # None: the libraries alone (the stub types snippet as str; the function takes None)
    bundle = vl_convert.javascript_bundle(None, vl_version=VEGA_LITE)  # type: ignore[arg-type]
    # Text that would end the <script> early, or that DVC would replace inside the libraries.
    for bad in ("</script", *PLACEHOLDERS):
        if bad in bundle:
            raise RuntimeError(f"vl-convert-python's javascript bundle contains {bad!r}: it cannot be "
                               "inlined into the plots template as it is")
    head = (PAGE.replace("{vega}", vl_convert.get_vega_version())
            .replace("{vega_lite}", VEGA_LITE)
            .replace("{vega_embed}", vl_convert.get_vega_embed_version())
            .replace("{vlc}", version("vl-convert-python")))
    return head.replace("BUNDLE", bundle)


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m codex_ml.report.plots_template OUT.html")
    out = Path(argv[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, template())


if __name__ == "__main__":
    main(sys.argv[1:])
