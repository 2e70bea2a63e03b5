"""The stage x family coverage table cannot drift: docs/families.md and the README hold exactly the table the
family layer generates, and every "yes" cell names an e2e test that exists and runs that family's tiny model."""

import ast
import os

import pytest

from llamafactory_video.model.families import (
    COVERAGE_END,
    COVERAGE_START,
    FAMILIES,
    FEATURES,
    VIDEO_LLM_STAGES,
    coverage_table,
)
from llamafactory_video.registry import STAGES


ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def _block(path: str) -> str:
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        text = f.read()
    assert COVERAGE_START in text and COVERAGE_END in text, f"{path} has no generated coverage table"
    start = text.index(COVERAGE_START)
    return text[start : text.index(COVERAGE_END, start) + len(COVERAGE_END)]


@pytest.mark.parametrize("path", ["docs/families.md", "README.md"])
def test_docs_hold_the_generated_table(path):
    assert _block(path) == coverage_table(), f"regenerate the table in {path}:\n{coverage_table()}"


def test_every_yes_cell_has_its_e2e_test():
    for family in FAMILIES.values():
        declared = set(family.stages) | set(family.features)
        assert set(family.e2e_tests) == declared, (family.name, declared ^ set(family.e2e_tests))
        for what, node in family.e2e_tests.items():
            path, name = node.split("::")
            assert path.startswith("tests/e2e/"), node
            with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
            assert name in functions, node
            source = ast.unparse(functions[name])
            if what in VIDEO_LLM_STAGES:  # the test runs the stage ...
                assert what in source or what in ast.unparse(tree), node
            if what == "video_token_pool_stride":
                assert "video_token_pool_stride" in source, node


def test_declared_stages_and_features_exist():
    for stage in VIDEO_LLM_STAGES:
        assert stage in STAGES
    for family in FAMILIES.values():
        assert set(family.stages) <= set(VIDEO_LLM_STAGES) and set(family.features) <= set(FEATURES), family.name
        assert family.templates and family.model_types and family.mm_plugins and family.tiny_builder, family.name


def test_every_family_has_a_tiny_builder_and_its_template_exists():
    from llamafactory.data.template import TEMPLATES

    from llamafactory_video.testing.tiny_families import FAMILY_BUILDERS

    for family in FAMILIES.values():
        assert family.tiny_builder in FAMILY_BUILDERS, family.name
        for template in family.templates:
            assert template in TEMPLATES, (family.name, template)
            assert type(TEMPLATES[template].mm_plugin).__name__ in family.mm_plugins, (family.name, template)
