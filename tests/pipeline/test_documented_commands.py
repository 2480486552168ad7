"""Every command the README and docs/ spell runs as spelled after the README's install: each spelling of a script or
of app.py, from the repository's root, in a process of its own, as far as its argument parser (with --help appended,
it imports everything it needs and parses what is spelled, then stops before any work)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "indexes" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SPAN = re.compile(r"```[a-z]*\n(.*?)```|`([^`]+)`", re.S)
IN_BLOCK = re.compile(r"python3? ((?:scripts/[a-z_]+|app)\.py)([^;&}#\n]*)")  # a shell line: up to ; && } or #
INLINE = re.compile(r"^(?:python3? )?((?:scripts/[a-z_]+|app)\.py)(.*)$")  # `python app.py --x`, `scripts/x.py --y`
SYNOPSIS = ("[", "{", "...", "|")  # a usage line (options in brackets), not a command to type
# What a reader types for the docs' placeholders: an encoder's name, a number, and an encoders file they wrote (its
# examples in docs/encoders.md; here the project's own).
PLACEHOLDERS = {"NAME": "pretrained", "N": "1", "K": "5", "mine.toml": "encoders.toml", "five.toml": "encoders.toml"}

# The documented spellings run in forks of one process that has imported what a fresh install can import (torch,
# Gradio, the library): each fork is a process of its own, set up as `python SCRIPT ARGS` sets one up (argv, the
# script's folder first on sys.path, not the working directory), without paying torch's import once per spelling.
RUNNER = r"""
import json, os, runpy, sys, traceback
root, spellings = sys.argv[1], json.loads(sys.stdin.read())
sys.path[:] = [p for p in sys.path if p not in ("", ".", root)]
import importlib, pkgutil
import search, ui, scripts  # what the install provides (never app or tests), every module of it imported once
for package in (search, ui, scripts):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
results = []
for argv in spellings:
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(out_r)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        script = os.path.join(root, argv[0])
        sys.argv = [argv[0], *argv[1:]]
        sys.path.insert(0, os.path.dirname(script))
        code = 0
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    os.close(out_w)
    with os.fdopen(out_r, errors="replace") as f:
        said = f.read()
    _, status = os.waitpid(pid, 0)
    results.append({"argv": argv, "code": os.waitstatus_to_exitcode(status), "said": said[:2000]})
print(json.dumps(results))
"""


def documented_spellings() -> dict[str, list[str]]:
    """{as written: argv to run} for every script or app.py spelling in the README and docs/."""
    found = {}
    for doc in DOCS:
        for block, inline in SPAN.findall(doc.read_text(encoding="utf-8")):
            spelled = (IN_BLOCK.findall(block.replace("\\\n", " ")) if block  # a line continued with \\
                       else INLINE.findall(inline.replace("\n", " ")))
            for script, rest in spelled:
                rest = rest.replace("\\|", "|").strip()
                args = [] if any(s in rest for s in SYNOPSIS) else [PLACEHOLDERS.get(a, a) for a in shlex.split(rest)]
                found[f"{script} {rest}".strip()] = [script, *args, "--help"]
    return found


def test_the_docs_spell_every_script():
    spelled = {argv[0] for argv in documented_spellings().values()}
    scripts = {f"scripts/{p.name}" for p in (ROOT / "scripts").glob("*.py") if p.name != "__init__.py"}
    assert scripts | {"app.py"} <= spelled, (scripts | {"app.py"}) - spelled
    assert "scripts/benchmark.py --only e2e" in documented_spellings()


def test_the_docs_list_the_benchmarks_parts():
    from scripts.benchmark import PARTS

    text = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    listed = text[text.index("whose\nparts are:"):].split("(e.g.")[0]
    assert re.findall(r"`([a-z0-9_]+)`", listed) == list(PARTS)


@pytest.mark.slow
def test_every_documented_command_imports_and_parses_as_spelled():
    spellings = documented_spellings()
    r = subprocess.run([sys.executable, "-c", RUNNER, str(ROOT)], input=json.dumps(list(spellings.values())),
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(r.stdout.splitlines()[-1])
    failed = {written: res["said"] for written, res in zip(spellings, results) if res["code"] != 0}
    assert not failed, failed
    assert all("usage:" in res["said"] for res in results)
