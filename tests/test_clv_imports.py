"""The CLV module runs without the `lifetimes` package (a dev dependency, used by test_clv.py only as
the reference implementation): checked in a fresh interpreter."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crmtier.value import clv

pytestmark = pytest.mark.integration


def test_clv_module_does_not_import_lifetimes():
    code = "import sys, crmtier.value.clv; assert 'lifetimes' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    src = Path(clv.__file__).read_text(encoding="utf-8")
    assert "import lifetimes" not in src and "from lifetimes" not in src
