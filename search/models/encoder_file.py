"""The encoders file (`encoders.toml`): which encoders the app compares, in display order, each with a role and, for
a role on a trunk, its trunk. Read and checked here; `search.models.encoders` builds the registry from it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib  # novermin (3.11 and later; the fallback below is for 3.10)
except ModuleNotFoundError:  # Python 3.10 (a Space's): the same parser as a package
    import tomli as tomllib

from search.errors import LandmarkError

ENV = "LANDMARK_ENCODERS"
DEFAULT_FILE = Path(__file__).resolve().parents[2] / "encoders.toml"
ROLES = ("scratch", "frozen", "transfer")
KEYS = {"role", "trunk", "weights", "label", "description", "epochs", "query_expansion", "qe_k", "qe_alpha"}
EXPANSIONS = ("aqe",)  # alpha-QE with database-side augmentation (search/retrieval/expansion.py)
NAME = re.compile(r"[a-z0-9_]{1,40}")  # a folder name, an API value and a CSS id alike


class EncoderFileError(LandmarkError):
    """An encoders file that cannot be read or says something impossible."""


@dataclass(frozen=True)
class EncoderEntry:
    """One table of the encoders file."""

    name: str
    role: str
    trunk: str | None = None        # None: the default trunk (--trunk, LANDMARK_TRUNK, else VGG16 with the fallback)
    weights: Path | None = None     # a local state dict for the trunk
    label: str | None = None
    description: str | None = None
    epochs: int | None = None
    expansion: tuple[tuple[str, object], ...] | None = None  # ("kind", "aqe"), and k / alpha when given


def _expansion(name: str, table: dict, where: str) -> tuple[tuple[str, object], ...] | None:
    """The query expansion an entry asks for, checked: a known kind; qe_k a whole number >= 1; qe_alpha 0 to 100."""
    kind = table.get("query_expansion")
    if kind is None:
        if "qe_k" in table or "qe_alpha" in table:
            raise EncoderFileError(f"{where}: [{name}] qe_k and qe_alpha need query_expansion = \"aqe\".")
        return None
    if kind not in EXPANSIONS:
        raise EncoderFileError(f"{where}: [{name}] query_expansion {kind!r} is not one of {', '.join(EXPANSIONS)} "
                               "(alpha-QE with database-side augmentation).")
    k, alpha = table.get("qe_k"), table.get("qe_alpha")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise EncoderFileError(f"{where}: [{name}] qe_k must be a whole number of at least 1 (got {k!r}).")
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 100):
        raise EncoderFileError(f"{where}: [{name}] qe_alpha must be a number from 0 to 100 (got {alpha!r}).")
    return (("kind", kind),) + ((("k", k),) if k is not None else ()) + \
        ((("alpha", float(alpha)),) if alpha is not None else ())


def _entry(name: str, table: object, where: str) -> EncoderEntry:
    if not NAME.fullmatch(name):
        raise EncoderFileError(f"{where}: [{name}] is not an encoder name: use a-z, 0-9 and _ (at most 40).")
    if not isinstance(table, dict):
        raise EncoderFileError(f"{where}: {name} must be a table ([{name}] with role = ...).")
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise EncoderFileError(f"{where}: [{name}] has unknown keys {', '.join(unknown)}; "
                               f"known: {', '.join(sorted(KEYS))}.")
    role = table.get("role")
    if role not in ROLES:
        raise EncoderFileError(f"{where}: [{name}] role {role!r} is not one of {', '.join(ROLES)}.")
    for key in ("trunk", "weights", "label", "description"):
        if key in table and not (isinstance(table[key], str) and table[key].strip()):
            raise EncoderFileError(f"{where}: [{name}] {key} must be a non-empty string.")
    if role == "scratch" and ("trunk" in table or "weights" in table):
        raise EncoderFileError(f"{where}: [{name}] is a scratch CNN: it has no trunk or trunk weights.")
    epochs = table.get("epochs")
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1
                               or role == "frozen"):
        raise EncoderFileError(f"{where}: [{name}] epochs must be a whole number of at least 1, for a trained role.")
    weights = Path(table["weights"]).expanduser() if "weights" in table else None
    return EncoderEntry(name, role, table.get("trunk"), weights, table.get("label"), table.get("description"), epochs,
                        _expansion(name, table, where))


def read_encoder_file(path: Path) -> list[EncoderEntry]:
    """The encoders a file lists, in its order, or EncoderFileError saying what is wrong in one line."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EncoderFileError(f"No encoders file at {path}.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise EncoderFileError(f"{path} cannot be read ({exc}).") from exc
    except tomllib.TOMLDecodeError as exc:
        raise EncoderFileError(f"{path} is not valid TOML: {exc}.") from exc
    entries = [_entry(name, table, str(path)) for name, table in data.items()]
    if not entries:
        raise EncoderFileError(f"{path} lists no encoder: add a table such as [pretrained] with role = \"frozen\".")
    return entries


def chosen_file(path: Path | str | None = None) -> Path:
    """The encoders file in use: the one given, else $LANDMARK_ENCODERS, else the repository's encoders.toml."""
    return Path(path or os.environ.get(ENV) or DEFAULT_FILE)
