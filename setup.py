"""Packages and their data (the rest of the metadata is in pyproject.toml).

The example programs and their assets (``programs/``) install as the data
package ``poelang._examples``, so ``poelang examples copy DIR`` works after
``pip install poelang``; from a checkout the same command reads ``programs/``.
"""
from setuptools import find_namespace_packages, setup

EXAMPLES = "poelang._examples"

setup(
    packages=[
        # namespace discovery, as pyproject's `packages.find` does: data folders (grammar/, weights/) count too
        *find_namespace_packages(include=["poelang", "poelang.*", "stdlib_experts", "stdlib_experts.*"],
                                 exclude=["*.__pycache__"]),
        EXAMPLES, *(f"{EXAMPLES}.{p}" for p in find_namespace_packages(where="programs")),
    ],
    package_dir={EXAMPLES: "programs"},
    package_data={
        "poelang": ["grammar/*.lark", "py.typed"],
        "stdlib_experts": ["mini/weights/*/*", "mini/weights/*/*/*"],
        EXAMPLES: ["*.poe", "**/*.poe", "**/*.csv", "assets/*"],  # *.csv: example sweep tables
    },
)
