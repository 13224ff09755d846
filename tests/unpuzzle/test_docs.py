"""The documentation keeps up with the code: variables, README length, links.

"Read by the settings" means every environment variable the running product reads, found in
the code rather than listed by hand:

- in the Python modules of the four apps (``unpuzzle``, ``media_library``, ``transcoding``,
  ``uploads``; migrations excluded), parsed with ``ast``: calls on the settings' ``env``
  object (``env("NAME")``, ``env.str/int/bool/float/list/db/...("NAME")``),
  ``os.environ.get("NAME")``, ``os.getenv("NAME")`` and ``os.environ["NAME"]`` read in an
  expression. ``os.environ.setdefault`` is a write (``DJANGO_SETTINGS_MODULE``) and is not counted;
- in the shell scripts that start the product (``scripts/*.sh``, ``.ci/run``): parameter
  expansions with a fallback, ``${NAME:-default}`` and the like, which is how they read a
  variable from the environment (plain ``$NAME`` is a script's own variable).

Each name must be a row of the table in docs/configuration.md and a ``NAME=`` line (commented
out or not) in .env.example. Benchmarks (``bench/``) and tests read variables of their own;
bench/README.md documents those.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[2]
APPS = ("unpuzzle", "media_library", "transcoding", "uploads")
SHELL_SCRIPTS = (*sorted((ROOT / "scripts").glob("*.sh")), ROOT / ".ci" / "run")
CONFIGURATION = ROOT / "docs" / "configuration.md"
ENV_EXAMPLE = ROOT / ".env.example"
README = ROOT / "README.md"
README_MAX_LINES = 200

ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
# ${NAME:-x} ${NAME-x} ${NAME:=x} ${NAME:+x} ${NAME:?x}: a read from the environment with a fallback.
SHELL_READ = re.compile(r"\$\{([A-Z][A-Z0-9_]*):?[-=+?]")
TABLE_ROW_NAME = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|", re.MULTILINE)
ENV_EXAMPLE_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def _is_os_environ(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _first_str_arg(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


class _EnvReads(ast.NodeVisitor):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = None
        if isinstance(func, ast.Name) and func.id == "env":
            name = _first_str_arg(node)  # env("NAME", ...)
        elif isinstance(func, ast.Attribute):
            owner = func.value
            if isinstance(owner, ast.Name) and owner.id == "env":
                name = _first_str_arg(node)  # env.int("NAME", ...), env.db("NAME", ...)
            elif _is_os_environ(owner) and func.attr == "get":
                name = _first_str_arg(node)  # os.environ.get("NAME")
            elif isinstance(owner, ast.Name) and owner.id == "os" and func.attr == "getenv":
                name = _first_str_arg(node)  # os.getenv("NAME")
        if name and ENV_NAME.match(name):
            self.names.add(name)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        key = node.slice
        if (
            _is_os_environ(node.value)
            and isinstance(node.ctx, ast.Load)
            and isinstance(key, ast.Constant)
            and isinstance(key.value, str)
            and ENV_NAME.match(key.value)
        ):
            self.names.add(key.value)  # os.environ["NAME"]
        self.generic_visit(node)


def python_env_reads() -> dict[str, set[str]]:
    """Variable name -> the modules (relative paths) that read it."""
    found: dict[str, set[str]] = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            visitor = _EnvReads()
            visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
            for name in visitor.names:
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def shell_env_reads() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in SHELL_SCRIPTS:
        if path.is_file():
            for name in SHELL_READ.findall(path.read_text(encoding="utf-8")):
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def variables_read() -> dict[str, set[str]]:
    found = python_env_reads()
    for name, where in shell_env_reads().items():
        found.setdefault(name, set()).update(where)
    return found


def documented_in_configuration() -> set[str]:
    return set(TABLE_ROW_NAME.findall(CONFIGURATION.read_text(encoding="utf-8")))


def listed_in_env_example() -> set[str]:
    return set(ENV_EXAMPLE_LINE.findall(ENV_EXAMPLE.read_text(encoding="utf-8")))


def _missing_message(missing: set[str], read: dict[str, set[str]], where: str) -> str:
    lines = [f"{len(missing)} environment variable(s) read by the code are not documented in {where}:"]
    lines += [f"  {name}  (read in {', '.join(sorted(read[name]))})" for name in sorted(missing)]
    return "\n".join(lines)


def test_the_scan_finds_variables_of_every_kind():
    """Guards the scan itself: a parser that finds nothing would pass the checks below."""
    read = variables_read()
    for name in (
        "DATABASE_URL",
        "SECRET_KEY",
        "HLS_LADDER",
        "DJANGO_SUPERUSER_EMAIL",
        "WEB_THREADS",
        "TRANSCODE_WORKERS",
    ):
        assert name in read, f"the scan no longer finds {name}; found {sorted(read)}"
    assert "DJANGO_SETTINGS_MODULE" not in read


def test_every_variable_is_in_the_configuration_table():
    read = variables_read()
    missing = set(read) - documented_in_configuration()
    assert not missing, _missing_message(missing, read, "docs/configuration.md (one table row each)")


def test_every_variable_is_in_env_example():
    read = variables_read()
    missing = set(read) - listed_in_env_example()
    assert not missing, _missing_message(missing, read, ".env.example (a NAME= line, commented out or not)")


def test_the_configuration_table_lists_nothing_the_code_does_not_read():
    stale = documented_in_configuration() - set(variables_read())
    assert not stale, f"docs/configuration.md documents variables nothing reads any more: {sorted(stale)}"


def test_env_example_holds_no_secret_values():
    secrets = ("SECRET_KEY", "BB_KEY_ID", "BB_APPLICATION_KEY", "CDN_TOKEN_KEY", "DJANGO_SUPERUSER_PASSWORD")
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for name in secrets:
        for value in re.findall(rf"^#?\s*{name}=(.*)$", text, re.MULTILINE):
            assert not value.strip(), f".env.example gives {name} a value; leave it empty"


def test_readme_is_a_short_first_page():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < README_MAX_LINES, (
        f"README.md has {lines} lines; keep it under {README_MAX_LINES} and move detail to docs/"
    )


# --- Links ------------------------------------------------------------------------------------

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def markdown_files() -> list[Path]:
    files = [README, *sorted((ROOT / "docs").rglob("*.md"))]
    bench = ROOT / "bench" / "README.md"
    if bench.is_file():
        files.append(bench)
    return files


def _prose(text: str) -> str:
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    heading = re.sub(r"`|\*\*|__|\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(_prose(path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # http:, https:, mailto:
        file_part, _, fragment = target.partition("#")
        linked = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target} (no {linked.relative_to(ROOT) if linked.is_relative_to(ROOT) else linked})")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target} (no heading #{fragment} in {linked.relative_to(ROOT)})")
    return broken


def test_the_docs_exist():
    names = {p.name for p in markdown_files()}
    for name in (
        "configuration.md",
        "api.md",
        "transcoding.md",
        "costs.md",
        "admin.md",
        "operations.md",
        "architecture.md",
    ):
        assert name in names, f"docs/{name} is missing"


def test_every_relative_link_points_to_a_file_that_exists():
    problems = {str(p.relative_to(ROOT)): broken_links(p) for p in markdown_files()}
    problems = {name: links for name, links in problems.items() if links}
    assert not problems, "broken relative links:\n" + "\n".join(
        f"  {name}: {link}" for name, links in problems.items() for link in links
    )
