"""The file-level outcomes of reading one landing file: every reader raises these."""
from __future__ import annotations


class FileRejected(Exception):
    """The whole file cannot be loaded (missing column, empty, bad delimiter, undecodable bytes,
    truncated, ...): nothing of it is loaded and the message, naming the file, says why."""


class FileChanged(Exception):
    """The file changed while it was read (still being written): nothing is loaded this run."""
