from __future__ import annotations

import subprocess
import sys

import instgs


def test_public_names_resolve():
    for name in instgs.__all__:
        assert getattr(instgs, name) is not None, name


def test_import_instgs_does_not_import_torch_modules_eagerly():
    code = ("import sys, instgs; "
            "print('instgs.render' in sys.modules, 'instgs.train' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
