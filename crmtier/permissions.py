"""Who may read what the pipeline writes.

Everything under the home holds personal data or is derived from it (warehouse, snapshot, reports,
logs, the Airflow metadata DB), so it is created owner-only: the run's processes work under umask
077 (files 0600, folders 0700). Settings:

* ``CRMTIER_UMASK`` (octal, default ``077``): the umask of the run, e.g. ``027`` to let a group
  read everything (then the home's group decides who).
* ``CRMTIER_SHARE_GROUP``: a group (name or gid) allowed to read the published snapshot only: the
  snapshot becomes 0640 and its folder 0750 with that group, and the home folder 0710 (the group
  may pass through it to the snapshot, not list or read anything else).

Files an older version created world-readable are tightened at the start of a run (`secure_home`).
"""
from __future__ import annotations

import grp
import os
from pathlib import Path

DEFAULT_UMASK = "077"
SKIP_TIGHTEN = ("landing",)  # the input: owned by whoever lands the exports


def run_umask() -> int:
    return int(os.environ.get("CRMTIER_UMASK", DEFAULT_UMASK), 8)


def apply_umask() -> int:
    """Set the process umask for this run (inherited by Airflow's child processes; dbt and DuckDB run in them);
    returns the previous one."""
    return os.umask(run_umask())


def share_gid() -> int | None:
    group = os.environ.get("CRMTIER_SHARE_GROUP", "").strip()
    if not group:
        return None
    try:
        return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise RuntimeError(f"CRMTIER_SHARE_GROUP={group!r} is not a group on this machine") from None


def share_published(snapshot: Path) -> None:
    """Give the share group (if any) read access to the snapshot and a way to reach it."""
    gid = share_gid()
    if gid is None:
        return
    os.chown(snapshot, -1, gid)
    os.chmod(snapshot, 0o640)
    folder = snapshot.parent
    os.chown(folder, -1, gid)
    os.chmod(folder, 0o750)


def secure_home(home: Path) -> int:
    """Tighten the home to the run's umask (owner-only by default); returns files changed."""
    mask = run_umask()
    changed = 0
    gid = share_gid()
    if home.is_dir():
        wanted = (0o777 & ~mask) | (0o010 if gid is not None else 0)
        if gid is not None:
            os.chown(home, -1, gid)
        if home.stat().st_mode & 0o777 != wanted:
            os.chmod(home, wanted)
            changed += 1
    for root, dirs, files in os.walk(home):
        if Path(root) == home:
            dirs[:] = [d for d in dirs if d not in SKIP_TIGHTEN]
        for name in [*dirs, *files]:
            path = Path(root) / name
            if path.is_symlink():
                continue
            mode = path.stat().st_mode & 0o777
            if mode & mask and not (gid is not None and path.stat().st_gid == gid and not mode & 0o007):
                os.chmod(path, mode & ~mask)
                changed += 1
    return changed
