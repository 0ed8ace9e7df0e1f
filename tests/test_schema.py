"""docs/graph.schema.json is the graph's current JSON Schema."""
from pathlib import Path

from poelang.graph import json_schema

ROOT = Path(__file__).resolve().parent.parent


def test_schema_is_current(golden):
    golden(ROOT / "docs" / "graph.schema.json", json_schema())
