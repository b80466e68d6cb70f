"""The planted-license corpus: folders under MIT, Apache-2.0, BSD-3-Clause, GPL-3.0 and none, files whose
SPDX header overrides their folder, installed packages with their dist-info; each file with the license
it must get and where from (tests/test_licenses.py, tests/test_licenses_dvc.py)."""

from __future__ import annotations

from pathlib import Path

from codex_ml.data.licenses import UNKNOWN

TEXTS = Path(__file__).parent / "data" / "licenses"  # MIT, Apache-2.0, BSD-3-Clause and GPL-3.0 texts

# path -> (text of the file, the license it must get, where from)
PLANTED: dict[str, tuple[str, str, str]] = {
    "mit/a.py": ("x = 1\n", "MIT", "file:mit/LICENSE"),
    "mit/deep/er/b.py": ("y = 2\n", "MIT", "file:mit/LICENSE"),
    "mit/vendored/c.py": ("z = 3\n", "Apache-2.0", "file:mit/vendored/LICENSE-APACHE"),
    "apache/d.py": ("def d(): pass\n", "Apache-2.0", "file:apache/LICENSE.txt"),
    "apache/e.py": ("# SPDX-License-Identifier: MIT\ne = 5\n", "MIT", "header"),
    "bsd/f.py": ("f = 6\n", "BSD-3-Clause", "file:bsd/COPYING"),
    "bsd/g.c": ("/* SPDX-License-Identifier: Apache-2.0 OR MIT */\nint g;\n", "Apache-2.0 OR MIT", "header"),
    "gpl/h.py": ("h = 8\n", "GPL-3.0-only", "file:gpl/COPYING"),
    "gpl/i.py": ("#!/usr/bin/env python\n# SPDX-License-Identifier: GPL-2.0+\n", "GPL-2.0-or-later",
                 "header"),
    "gpl/j.py": ("# SPDX-License-Identifier: BSD-3-Clause\nj = 10\n", "BSD-3-Clause", "header"),
    "none/k.py": ("k = 11\n", UNKNOWN, "none"),
    "none/l.py": ("# SPDX-License-Identifier: Not-A-License\nl = 12\n", UNKNOWN, "none"),
    "none/m.html": ("<!-- SPDX-License-Identifier: 0BSD -->\n<p>m</p>\n", "0BSD", "header"),
    "site/pkg/__init__.py": ("p = 1\n", "BSD-2-Clause", "package:pkg-1.0.dist-info"),
    "site/pkg/sub/mod.py": ("q = 2\n", "BSD-2-Clause", "package:pkg-1.0.dist-info"),
    "site/old/__init__.py": ("r = 3\n", "MIT", "package:old-0.1.dist-info"),
    "site/loose.py": ("s = 4\n", "GPL-3.0-only", "file:site/COPYING"),
}
LICENSE_FILES = {"mit/LICENSE": "MIT", "mit/vendored/LICENSE-APACHE": "Apache-2.0",
                 "apache/LICENSE.txt": "Apache-2.0", "bsd/COPYING": "BSD-3-Clause", "gpl/COPYING": "GPL-3.0",
                 "site/COPYING": "GPL-3.0"}


def plant(root: Path) -> Path:
    for rel, (text, _, _) in PLANTED.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    for rel, name in LICENSE_FILES.items():
        (root / rel).write_text((TEXTS / name).read_text(encoding="utf-8"), encoding="utf-8")
    # an installed package that declares its license (PEP 639), beside a stray COPYING of the folder
    new = root / "site" / "pkg-1.0.dist-info"
    new.mkdir()
    (new / "METADATA").write_text("Metadata-Version: 2.4\nName: pkg\nVersion: 1.0\n"
                                  "License-Expression: BSD-2-Clause\n", encoding="utf-8")
    (new / "RECORD").write_text("pkg/__init__.py,sha256=x,6\npkg/sub/mod.py,,\npkg-1.0.dist-info/METADATA,,\n"
                                "../../bin/pkg,,\n", encoding="utf-8")
    # an older one: no License-Expression, no license file, a classifier
    old = root / "site" / "old-0.1.dist-info"
    old.mkdir()
    (old / "METADATA").write_text("Metadata-Version: 2.1\nName: old\nVersion: 0.1\nLicense: UNKNOWN\n"
                                  "Classifier: License :: OSI Approved :: MIT License\n"
                                  "Classifier: Programming Language :: Python\n", encoding="utf-8")
    (old / "RECORD").write_text("old/__init__.py,,\n", encoding="utf-8")
    return root
