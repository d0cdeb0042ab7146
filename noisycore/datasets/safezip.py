"""Zip archives of image folders: validated (paths, sizes, counts) and extracted once, atomically,
into the data folder's imports/<hash>/."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import stat
import time
import warnings
import zipfile
from pathlib import Path
from typing import Optional

from noisycore.config import default_data_dir
from noisycore.datasets.base import ZIP_MAX_BYTES, ZIP_MAX_FILES, _is_hidden
from noisycore.errors import DataError
from noisycore.util import atomic_directory


UTF8_FLAG = 0x800   # general purpose bit 11: the member's name is UTF-8 (else the zip format says cp437)


def member_name(info: zipfile.ZipInfo) -> str:
    """A member's name as its author wrote it. Without the UTF-8 flag zipfile decodes the name as cp437,
    but many tools (macOS Archive Utility, Linux zip, 7-Zip) write UTF-8 bytes without setting the flag:
    when the raw bytes are valid UTF-8 (pure ASCII included, the same either way) they are read as
    UTF-8, else as cp437 (old Windows zips). A cp437 name of accented letters is rarely valid UTF-8."""
    name = info.orig_filename
    if info.flag_bits & UTF8_FLAG:
        return name
    try:
        return name.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return name


def _zip_members(zf: zipfile.ZipFile, name: str, max_bytes: int, max_files: int) -> list:
    """(info, path parts) of the members to extract; DataError for unsafe or oversized archives."""
    members, nested, total = [], [], 0
    for info in zf.infolist():
        fn = member_name(info).replace("\\", "/")
        if fn.startswith("/") or re.match(r"^[A-Za-z]:", fn) or "\x00" in fn:
            raise DataError(f"{name}: member {info.filename!r} has an absolute path; refusing to extract")
        parts = [p for p in fn.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise DataError(f"{name}: member {info.filename!r} would be written outside the target "
                            "folder ('..'); refusing to extract")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise DataError(f"{name}: member {info.filename!r} is a symbolic link; refusing to extract")
        if info.is_dir() or not parts or any(_is_hidden(p) for p in parts):
            continue
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no type bits (many zip tools)
            raise DataError(f"{name}: member {info.filename!r} is not a regular file; refusing to extract")
        if parts[-1].lower().endswith(".zip"):
            nested.append(fn)
            continue
        members.append((info, parts))
        total += info.file_size
    if nested and not members:
        raise DataError(f"{name} contains only another zip archive ({', '.join(nested[:3])}); "
                        "unzip it first and import the inner archive or folder")
    if nested:
        warnings.warn(f"{name}: skipped {len(nested)} zip file(s) inside the archive "
                      f"({', '.join(nested[:3])}); unzip them separately", stacklevel=3)
    if len(members) > max_files:
        raise DataError(f"{name} holds {len(members)} files, over the limit of {max_files}")
    if total > max_bytes:
        raise DataError(f"{name} would expand to {total / 2**20:.0f} MB, over the limit of "
                        f"{max_bytes / 2**20:.0f} MB (possible zip bomb)")
    return members


def _extract_members(zf, members, tmp: Path, max_bytes: int, name: str) -> None:
    """Stream members into tmp, counting real bytes against the declared sizes and max_bytes."""
    import zlib
    total = 0
    for info, parts in members:
        target = tmp.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            with zf.open(info) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    total += len(chunk)
                    if written > info.file_size or total > max_bytes:
                        raise DataError(f"{name}: member {info.filename!r} expands beyond its declared "
                                        "size or the size limit (possible zip bomb); refusing to extract")
                    dst.write(chunk)
        except RuntimeError:
            raise DataError(f"{name}: member {info.filename!r} is password-protected; "
                            "zip it again without a password") from None
        except (zipfile.BadZipFile, NotImplementedError, EOFError, zlib.error) as e:
            raise DataError(f"{name}: member {info.filename!r} is corrupt or uses an unsupported "
                            f"compression ({e}); re-create the zip") from None


def safe_extract_zip(zip_path, dest_dir, *, max_bytes=ZIP_MAX_BYTES, max_files=ZIP_MAX_FILES,
                     marker: Optional[tuple] = None, shared: bool = False) -> Path:
    """Extract a zip into dest_dir safely, all or nothing; returns dest_dir.

    Refuses members with '..', absolute paths or drive letters, symlinks and special files, more than
    max_files files or max_bytes uncompressed (declared sizes and real bytes counted while extracting).
    Hidden entries (__MACOSX, .DS_Store) and inner .zip files are skipped (a zip holding only a zip is
    refused). Extraction goes to a temporary sibling folder that is renamed only on success.
    ``marker``: (file name, text) written into the folder before the rename. ``shared``: the folder is
    content-addressed, so one that another process completed first is kept (see atomic_directory).
    """
    zp, dest = Path(zip_path).expanduser(), Path(dest_dir).expanduser()
    if not zp.is_file():
        raise DataError(f"zip file {zp} does not exist")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        if shared and dest.is_dir():   # another process extracted the same content meanwhile
            return dest
        raise DataError(f"{dest} already exists and is not an empty folder; choose a new folder")
    try:
        zf = zipfile.ZipFile(zp)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{zp.name} is not a valid zip archive ({e}); re-create it") from None
    with zf:
        members = _zip_members(zf, zp.name, int(max_bytes), int(max_files))
        def fill(tmp: Path) -> None:
            _extract_members(zf, members, tmp, int(max_bytes), zp.name)
            if marker is not None:   # (file name, text): written inside, so dest never exists without it
                (tmp / marker[0]).write_text(marker[1])
        atomic_directory(dest, fill, exist_ok=shared)
    return dest


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _import_zip(zip_path: Path) -> Path:
    """Extract a zip once into default_data_dir()/imports/<content hash>/ and return that folder.

    The folder appears whole, with its .noisylab.json inside, or not at all; two processes importing
    the same zip at once (the app and a CLI run, two sweep cells) both end with the one folder."""
    dest = default_data_dir() / "imports" / _file_digest(zip_path)[:16]
    meta = dest / ".noisylab.json"
    if meta.is_file():
        return dest
    if dest.exists():
        shutil.rmtree(dest, ignore_errors=True)  # an extraction of an older version that never got its metadata
    text = json.dumps({"name": zip_path.stem, "source": str(zip_path), "imported": time.strftime("%Y-%m-%d %H:%M:%S")})
    safe_extract_zip(zip_path, dest, marker=(meta.name, text), shared=True)   # shared: a finished twin is kept
    return dest
