"""Workspaces for a classroom: who owns an upload, a label set or a run, and who sees it.

Each person picks a name (the app keeps it in the address, ``?user=alice``; the CLI takes ``--owner`` or
the environment variable ``NOISYLAB_OWNER``, default the OS user). A name is NOT a password: anybody can
type anybody's name. It only decides what a person sees first, so a classroom does not trip over each
other's data.

    <item folder>/owner.json     {"owner": "alice", "shared": false}

An item (a run folder, a label-set folder, an upload's folder) is *visible* to ``user`` when ``user`` owns
it, when it is shared (its owner, the teacher, ticked "share with the class") or when it has no owner
(made before workspaces, or by a session without a name). Own items come first, then the others, each
in the order given. Without a name (``user`` None) everything is visible: one person on their own laptop.
Names compare case-insensitively ("Alice" is "alice").
"""
from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Optional

from noisycore.errors import UserError
from noisycore.util import write_json

OWNER_FILE = "owner.json"
OWNER_ENV = "NOISYLAB_OWNER"
MAX_NAME = 40
_NAME = re.compile(r"^[\w][\w .@'-]*$")   # letters (any script), digits, space . @ ' - _


def check_name(name) -> str:
    """The name stripped; a UserError naming the value when it cannot be a workspace name."""
    text = name.strip() if isinstance(name, str) else None
    if not text or len(text) > MAX_NAME or not _NAME.match(text):
        raise UserError(f"workspace name {name!r} is not usable: give 1 to {MAX_NAME} letters or digits "
                        "(spaces, '.', '-', '_', '@' inside are fine), e.g. 'alice' or 'Table 3'")
    return text


def default_owner() -> str:
    """The CLI's owner: $NOISYLAB_OWNER, else the OS user name, else 'me'."""
    given = os.environ.get(OWNER_ENV, "").strip()
    if given:
        return check_name(given)
    try:
        return check_name(getpass.getuser())
    except (UserError, OSError, KeyError):
        return "me"


def same(a: Optional[str], b: Optional[str]) -> bool:
    """Whether two owner names are the same person (case-insensitive; None is nobody)."""
    return a is not None and b is not None and a.strip().casefold() == b.strip().casefold()


def _record(folder) -> dict:
    try:
        data = json.loads((Path(folder) / OWNER_FILE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_owner(folder, owner: str, *, shared: bool = False) -> Path:
    """Record ``owner`` (checked) of the item ``folder``, shared with the class or not."""
    return write_json(Path(folder) / OWNER_FILE, {"owner": check_name(owner), "shared": bool(shared)})


def owner_of(folder) -> Optional[str]:
    """The owner's name of an item folder, None when it has none (older items, nameless sessions)."""
    owner = _record(folder).get("owner")
    return owner if isinstance(owner, str) and owner.strip() else None


def is_shared(folder) -> bool:
    """Shared with the class: ticked by its owner, or an item nobody owns."""
    record = _record(folder)
    return owner_of(folder) is None or record.get("shared") is True


def set_shared(folder, shared: bool, *, by: str) -> None:
    """Share (or stop sharing) the item ``folder``; only its owner ``by`` may (a UserError otherwise)."""
    owner = owner_of(folder)
    if owner is None:
        raise UserError(f"{Path(folder).name} has no owner: everybody sees it already")
    if not same(owner, by):
        raise UserError(f"{Path(folder).name} belongs to {owner}; only {owner} can share it (you are {by})")
    write_owner(folder, owner, shared=shared)


def check_may_write(folder, user: Optional[str]) -> None:
    """A UserError when ``folder`` exists and belongs to somebody other than ``user`` (saving a label set under
    a name a classmate already used would replace theirs); nothing happens to the folder."""
    owner = owner_of(folder) if Path(folder).exists() else None
    if owner is not None and not same(owner, user):
        raise UserError(f"{Path(folder).name} already belongs to {owner}; choose another name "
                        f"(e.g. {(user or 'mine').replace(' ', '-')}-{Path(folder).name})")


def visible(items: Iterable, user: Optional[str], *, folder: Callable = lambda item: item) -> list:
    """The items ``user`` sees, their own first, then shared and ownerless ones (each in the given order).
    ``folder(item)`` is the item's folder. ``user`` None: every item, in the given order."""
    items = list(items)
    if user is None:
        return items
    mine, others = [], []
    for item in items:
        owner = owner_of(folder(item))
        if same(owner, user):
            mine.append(item)
        elif is_shared(folder(item)):
            others.append(item)
    return mine + others


# ------------------------------------------------------------------------------ uploads
def save_upload(data: bytes, filename: str, *, root, owner: Optional[str]) -> Path:
    """Keep an uploaded zip as ``root/<content hash>/<its name>.zip`` (the dataset is named after the file;
    the hash keeps two uploads of one name apart) and record its owner (None: no name chosen). The same
    bytes uploaded again by another person get a folder of their own, so each sees only their upload."""
    stem = "".join(ch if ch.isalnum() or ch in "-_. " else "-" for ch in Path(filename).stem).strip() or "upload"
    key = hashlib.sha256(data).hexdigest()[:16]
    if owner is not None:
        key = hashlib.sha256(data + b"\0" + check_name(owner).casefold().encode()).hexdigest()[:16]
    target = Path(root) / key / f"{stem}.zip"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if owner is not None and owner_of(target.parent) is None:
        write_owner(target.parent, owner)
    return target


def uploads(root, user: Optional[str]) -> list[Path]:
    """The earlier uploads (zip files) ``user`` may reopen: their own first, then shared ones, newest first."""
    root = Path(root)
    found = sorted(root.glob("*/*.zip"), key=lambda p: p.stat().st_mtime, reverse=True) if root.is_dir() else []
    return visible(found, user, folder=lambda p: p.parent)
