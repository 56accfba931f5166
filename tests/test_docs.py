"""The README's CLI reference and configuration table are what the code generates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import pytest
import typer
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistant import docs

pytestmark = pytest.mark.unit  # no encoder, Chroma or server: part of the fast tier

REGIONS = '<!-- generated: cli-reference -->\n{}<!-- end generated -->\n\n<!-- generated: configuration -->\n{}<!-- end generated -->\n'


@pytest.mark.parametrize("path", docs.documents(), ids=lambda p: str(p.relative_to(docs.ROOT)))
def test_documents_match_the_code(path: Path):
    stale = docs.check(path)
    assert not stale, f"{path.name}: {', '.join(stale)} out of date; run {docs.REGENERATE}"


def test_readme_has_both_generated_regions():
    # Deleting a region's markers must not make the check above pass vacuously.
    assert sorted(docs.regions(docs.ROOT / "README.md")) == sorted(docs.GENERATORS)


def _throwaway_app() -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.callback()
    def root(work_dir: Annotated[Optional[Path], typer.Option(help="Where the work goes.")] = None) -> None:
        pass

    @app.command()
    def frobnicate(
        target: Annotated[str, typer.Argument(help="What to frobnicate.")],
        widgets: Annotated[int, typer.Option(help="How many widgets to use.")] = 3,
    ) -> None:
        """Frobnicate a target with widgets."""

    @app.command(hidden=True)
    def secret() -> None:
        """Not for the reference."""

    return app


def test_reference_picks_up_a_new_command_and_option():
    text = docs.cli_reference(_throwaway_app(), prog="tool")
    assert "#### `tool frobnicate`" in text
    assert "Frobnicate a target with widgets." in text
    assert "- `--widgets <int>`: How many widgets to use. [default: 3]" in text
    assert "- `target <str>`: What to frobnicate. [required]" in text
    assert "- `--work-dir <path>`: Where the work goes." in text
    assert "secret" not in text
    assert docs.cli_reference(_throwaway_app(), prog="tool") == text


class _Section(BaseModel):
    depth: int = Field(7, description="How deep | to go.")


def _home_dir() -> Path:
    return Path.home() / ".local" / "share" / "tool"


class _ThrowawaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOOL_", env_nested_delimiter="__")

    work_dir: Path = Field(default_factory=_home_dir, description="Where the work goes.")
    verbose: bool = Field(False, description="Say more.")
    section: _Section = _Section()


def test_configuration_picks_up_new_fields(monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", "/somewhere/else")
    text = docs.configuration_table(_ThrowawaySettings, _throwaway_app())
    lines = text.splitlines()
    assert lines[0] == "| setting | key | flag | environment variable | default |"
    # The default is this machine's home only in form, not in value.
    assert "| Where the work goes. | `work_dir` | `--work-dir` | `TOOL_WORK_DIR` | `~/.local/share/tool` |" in lines
    assert "| Say more. | `verbose` |  | `TOOL_VERBOSE` | `false` |" in lines
    assert "| How deep \\| to go. | `section.depth` |  | `TOOL_SECTION__DEPTH` | `7` |" in lines
    assert str(Path.home()) not in text
    # Without an app, nothing can be said about flags, so the column goes.
    assert docs.configuration_table(_ThrowawaySettings).splitlines()[0] == "| setting | key | environment variable | default |"


def test_project_defaults_do_not_name_this_machine():
    text = docs.configuration_table()
    assert str(Path.home()) not in text and str(docs.ROOT) not in text
    assert "`NARRATIVE_LENS_MATCHING__TARGET_BENIGN_FPR`" in text and "`--data-dir`" in text


def test_check_names_the_stale_region_and_update_fixes_it(tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n" + REGIONS.format("", "| old | table |\n"), encoding="utf-8")
    assert docs.check(page) == ["cli-reference", "configuration"]
    assert docs.main(["--check", str(page)]) == 1
    assert "generated region 'configuration' is out of date" in capsys.readouterr().err
    assert docs.update(page) == ["cli-reference", "configuration"]
    assert docs.check(page) == [] and docs.main(["--check", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Page\n\n") and "#### `narrative-lens ask`" in text and "| old |" not in text
    assert docs.update(page) == [] and page.read_text(encoding="utf-8") == text


def test_malformed_markers_are_an_error(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- generated: configuration -->\nno end\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no '<!-- end generated -->'"):
        docs.check(page)
    page.write_text("<!-- generated: nonsense -->\n<!-- end generated -->\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown generated region 'nonsense'"):
        docs.check(page)
    assert docs.main(["--check", str(page)]) == 1
