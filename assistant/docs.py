"""The generated parts of the documentation: the CLI reference and the configuration table.

Both are rendered from the code (the typer app's parameters, the settings models) and kept
in Markdown files between ``<!-- generated: NAME -->`` and ``<!-- end generated -->``, so
the README cannot drift from ``--help``: ``python -m assistant.docs`` rewrites the regions,
``python -m assistant.docs --check`` exits 1 when one is stale (``tests/test_docs.py`` runs it).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Callable
from unittest import mock

import typer
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
PROG = "narrative-lens"
REGENERATE = ".venv/bin/python -m assistant.docs"
_REGION = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)
_START = re.compile(r"<!-- generated: ([\w-]+) -->")
# A placeholder home: a default under it is printed as ~/..., whatever this machine's home is,
# and cannot be confused with a path that merely shares a prefix with the real home.
_FAKE_HOME = "/nonexistent-home-for-docs"


def _cell(text: str) -> str:
    # Help strings are prose: keep them on one line, and stop | breaking a table, * opening
    # emphasis or <...> being read as HTML.
    text = " ".join(str(text).split())
    return re.sub(r"([|*<])", r"\\\1", text)


def _params(command, ctx) -> list[str]:
    # The help records are what `--help` prints, minus rich's width-dependent boxes; command.params
    # leaves out --help itself, which every command has and the intro mentions once.
    records = [r for r in (p.get_help_record(ctx) for p in command.params) if r is not None]
    return [f"- `{term}`: {_cell(text)}" if text.strip() else f"- `{term}`" for term, text in records]


def _command_section(command, ctx, level: int) -> list[str]:
    usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
    out = [f"{'#' * level} `{ctx.command_path}`", ""]
    if command.help:  # its first paragraph: the one-line summary
        out += [_cell(command.help.strip().split("\n\n")[0]), ""]
    out += [f"Usage: `{usage}`", ""]
    params = _params(command, ctx)
    out += (params + [""]) if params else ["No options besides `--help`.", ""]
    return out


def cli_reference(app: typer.Typer | None = None, prog: str = PROG, level: int = 4) -> str:
    """Markdown reference of every command of ``app`` (default: the project's), from its parameters."""
    if app is None:
        from .cli import app
    root = typer.main.get_command(app)
    root_ctx = root.context_class(root, info_name=prog)
    out = [f"Every command also takes `--help`. Options of `{prog}` itself go before the command.", ""]
    out += _command_section(root, root_ctx, level)
    list_commands = getattr(root, "list_commands", None)
    for name in list_commands(root_ctx) if list_commands else []:
        command = root.get_command(root_ctx, name)
        if command is None or command.hidden:
            continue
        out += _command_section(command, command.context_class(command, info_name=name, parent=root_ctx), level)
    return "\n".join(out).rstrip() + "\n"


def _portable_path(path: Path) -> str:
    path = Path(path)
    if path.is_relative_to(_FAKE_HOME):
        return "~/" + path.relative_to(_FAKE_HOME).as_posix()
    # Checked before the real home: a checkout often lives under it.
    if path.is_absolute() and path.is_relative_to(ROOT.parent):
        relative = os.path.relpath(path, ROOT)
        return relative if relative.startswith("..") else f"./{relative}"
    if path.is_relative_to(Path.home()):
        return "~/" + path.relative_to(Path.home()).as_posix()
    return path.as_posix()


def _default(field) -> str:
    if field.default_factory is not None:
        # Factories read the home directory and XDG variables: evaluate them as on a bare
        # machine so the README does not change with whoever regenerates it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
        with mock.patch.dict(os.environ, {**env, "HOME": _FAKE_HOME}, clear=True):
            # Called directly: FieldInfo.get_default's validated_data only exists from pydantic 2.10.
            takes_data = getattr(field, "default_factory_takes_data", False)
            value = field.default_factory({}) if takes_data else field.default_factory()
    else:
        value = field.default
    if value is None:
        return "unset"
    # Written as the environment and the TOML file spell them.
    text = str(value).lower() if isinstance(value, bool) else _portable_path(value) if isinstance(value, Path) else value
    return f"`{text}`"


def _rows(model: type[BaseModel], path: tuple[str, ...], prefix: str, delimiter: str | None):
    for name, field in model.model_fields.items():
        key = (*path, field.alias or name)
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel) and delimiter:
            yield from _rows(section, key, prefix, delimiter)
            continue
        env = (prefix + (delimiter or "_").join(key)).upper()
        description = field.description or name.replace("_", " ")
        yield ".".join(key), _cell(description), env, _default(field)


def _flags(app: typer.Typer | None, model: type[BaseModel]) -> dict[str, str]:
    """Top-level settings that a global option of ``app`` sets, by the option's parameter name.

    The root callback hands its options to ``Settings(**overrides)`` under their parameter
    names, so a name match is exactly the options that set a setting.
    """
    if app is None:
        return {}
    root = typer.main.get_command(app)
    return {
        p.name: " / ".join(p.opts)
        for p in root.params
        if p.name in model.model_fields and getattr(p, "opts", None) and p.opts[0].startswith("-")
    }


def configuration_table(model: type[BaseModel] | None = None, app: typer.Typer | None = None) -> str:
    """Markdown table of every setting of ``model`` (default: the project's Settings and CLI)."""
    if model is None:
        from .cli import app as cli_app
        from .settings import Settings

        model, app = Settings, app or cli_app
    config = getattr(model, "model_config", {})
    flags = _flags(app, model)
    header = ["setting", "key", "flag", "environment variable", "default"]
    if not flags:
        header.remove("flag")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, description, env, default in _rows(model, (), config.get("env_prefix", ""), config.get("env_nested_delimiter")):
        cells = [description, f"`{key}`"]
        if flags:
            cells.append(f"`{flags[key]}`" if key in flags else "")
        cells += [f"`{env}`", default]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


GENERATORS: dict[str, Callable[[], str]] = {"cli-reference": cli_reference, "configuration": configuration_table}


def _regions(text: str, path: Path) -> list[re.Match]:
    matches = list(_REGION.finditer(text))
    if len(matches) != len(_START.findall(text)):
        raise ValueError(f"{path}: a '<!-- generated: NAME -->' marker has no '<!-- end generated -->'")
    for match in matches:
        if match["name"] not in GENERATORS:
            raise ValueError(f"{path}: unknown generated region '{match['name']}' (known: {', '.join(GENERATORS)})")
    return matches


def regions(path: Path) -> list[str]:
    """Names of the generated regions in a Markdown file."""
    return [m["name"] for m in _regions(Path(path).read_text(encoding="utf-8"), path)]


def _render(path: Path) -> tuple[str, list[str]]:
    text, cache, stale, out, last = Path(path).read_text(encoding="utf-8"), {}, [], [], 0
    for match in _regions(text, path):
        name = match["name"]
        if name not in cache:
            cache[name] = "\n" + GENERATORS[name]().strip("\n") + "\n\n"
        if match["body"] != cache[name]:
            stale.append(name)
        out += [text[last : match.start("body")], cache[name]]
        last = match.end("body")
    return "".join(out) + text[last:], stale


def check(path: Path) -> list[str]:
    """Names of the generated regions of ``path`` that differ from what the code generates."""
    return _render(path)[1]


def update(path: Path) -> list[str]:
    """Rewrites the generated regions of ``path``; returns the names of those that changed."""
    text, stale = _render(path)
    if stale:
        Path(path).write_text(text, encoding="utf-8")
    return stale


def documents(root: Path = ROOT) -> list[Path]:
    """README.md, and every Markdown file under docs/ that has a generated region."""
    docs = sorted((root / "docs").rglob("*.md")) if (root / "docs").is_dir() else []
    return [root / "README.md"] + [p for p in docs if _START.search(p.read_text(encoding="utf-8"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Exit 1 if a generated region is stale; change nothing.")
    parser.add_argument("paths", nargs="*", type=Path, help="Markdown files (default: README.md and docs/).")
    args = parser.parse_args(argv)
    failed = False
    for path in args.paths or documents():
        try:
            stale = check(path) if args.check else update(path)
        except (OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            failed = True
            continue
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        for name in stale:
            if args.check:
                print(f"{shown}: generated region '{name}' is out of date; run {REGENERATE}", file=sys.stderr)
            else:
                print(f"{shown}: rewrote '{name}'")
        failed = failed or (args.check and bool(stale))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
