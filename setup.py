"""Packages and their data (the rest of the metadata is in pyproject.toml).

The expert library (``stdlib_experts/`` in the repository) installs as
``poelang.stdlib``, inside poelang's namespace rather than as a generic
top-level package. The example programs and their assets (``programs/``)
install as the data package ``poelang._examples``, so ``poelang examples copy
DIR`` works after ``pip install poelang``; from a checkout the same command
reads ``programs/``. Both are folders of the repository mapped into the
package with ``package_dir``; an editable install (``pip install -e``) maps
them the same way.
"""
from setuptools import find_namespace_packages, setup

EXAMPLES = "poelang._examples"
LIBRARY = "poelang.stdlib"

setup(
    packages=[
        # namespace discovery, as pyproject's `packages.find` does: data folders (grammar/, weights/) count too
        *find_namespace_packages(include=["poelang", "poelang.*"], exclude=["*.__pycache__"]),
        LIBRARY, *(f"{LIBRARY}.{p}" for p in find_namespace_packages(where="stdlib_experts", exclude=["*.__pycache__"])),
        EXAMPLES, *(f"{EXAMPLES}.{p}" for p in find_namespace_packages(where="programs")),
    ],
    package_dir={LIBRARY: "stdlib_experts", EXAMPLES: "programs"},
    package_data={
        "poelang": ["grammar/*.lark", "grammar/*.tables", "py.typed"],
        LIBRARY: ["mini/weights/*/*", "mini/weights/*/*/*"],
        EXAMPLES: ["*.poe", "**/*.poe", "**/*.csv", "assets/*"],  # *.csv: example sweep tables
    },
)
