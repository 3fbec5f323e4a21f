"""The docs that describe the code stay true to it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mrtrans

ROOT = Path(__file__).resolve().parents[1]


def test_architecture_names_every_module_of_the_package() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    package_map = text[text.index("## The package") : text.index("**Layers**")]
    modules = sorted(p.relative_to(ROOT / "mrtrans").as_posix() for p in (ROOT / "mrtrans").rglob("*.py"))
    named = set(re.findall(r"[\w/]+\.py", package_map))
    assert modules and not set(modules) - named, f"modules missing from docs/architecture.md: {set(modules) - named}"
    assert not named - set(modules), f"docs/architecture.md names modules that do not exist: {named - set(modules)}"


def test_the_version_is_the_changelog_s_latest_release() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[?(\d+\.\d+\.\d+)\]?", changelog, flags=re.M)
    assert releases and releases[0] == mrtrans.__version__
    # compatibility branches name a version the changelog describes
    cited = set()
    for path in (ROOT / "mrtrans").rglob("*.py"):
        cited |= set(re.findall(r"mrtrans <=? (\d+\.\d+)", path.read_text()))
    described = {".".join(r.split(".")[:2]) for r in releases}
    assert cited <= described, f"code cites versions the changelog lacks: {cited - described}"


def test_every_test_file_the_docs_cite_exists() -> None:
    cited = {
        m.group(1): doc.name
        for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
        for m in re.finditer(r"(tests/[\w/]+\.py)", doc.read_text())
    }
    missing = {path: doc for path, doc in cited.items() if not (ROOT / path).is_file()}
    assert cited and not missing, missing


def test_the_training_docs_list_exactly_the_keys_a_resume_may_change() -> None:
    """RESUME_MAY_CHANGE is read from the schema's field metadata; docs/training.md names the same keys."""
    from mrtrans.training.resume import RESUME_MAY_CHANGE

    text = (ROOT / "docs" / "training.md").read_text()
    policy = text[text.index("**Resume** continues exactly") : text.index("may change: the keys marked")]
    listed = set(re.findall(r"`((?:run|optim)\.\w+)`", policy))
    assert listed == set(RESUME_MAY_CHANGE) and "run.device" in listed


@pytest.mark.parametrize(
    ("doc", "schema"),
    [("translate.md", "TranslateConfig"), ("data.md", "PrepareConfig"), ("training.md", "TrainConfig")],
)
def test_the_docs_hold_the_table_generated_from_the_schema(doc: str, schema: str) -> None:
    """docs' tables of a command's keys are options_table(schema): one declaration, the field."""
    import mrtrans.config
    from mrtrans.config import options_table

    text = (ROOT / "docs" / doc).read_text()
    start = text.index(f"<!-- generated from mrtrans.config.{schema}")
    block = text[text.index("\n", start) + 1 : text.index("<!-- end of the generated table -->", start)]
    assert block == options_table(getattr(mrtrans.config, schema))
