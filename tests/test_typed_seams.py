"""Typed seams between stages: the graph's domains are data, signatures are parsed when built."""
from __future__ import annotations

import pytest

import poelang
from poelang import graph as g
from poelang.experts.spec import Param


def test_a_domain_is_a_kind_and_a_shape():
    program = poelang.parse("x ~ gaussian(mean=[0.0, 1.0, 2.0])")
    domain = program.graph.samples[0].domain
    assert (domain.kind, domain.shape, str(domain), domain.event_shape()) == ("vector", [3], "vector[3]", (3,))
    assert g.Domain(kind="video", shape=[4, 8, 16]).event_shape() == (4, 3, 8, 16)
    assert g.Graph.from_json(program.graph.to_json()) == program.graph


def test_a_bad_signature_fails_when_it_is_built():
    with pytest.raises(ValueError, match="unknown type in signature: 'Lenght'"):
        Param("radius", "Lenght|Int?")
    assert Param("objects", "List[Object]").parsed.describe() == "List[Object]"
    assert Param("size", "Size?").parsed.describe() == "a size (h, w) or none"


def test_output_formats_are_public():
    assert g.FILE_FORMATS[".jpeg"] == "jpg" and set(g.FILE_FORMATS.values()) < set(
        g.OutputNode.model_fields["format"].annotation.__args__)
