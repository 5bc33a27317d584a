#!/usr/bin/python3 -IS
"""ModelMux launcher, installed by the .deb as /usr/bin/modelmux.

The package ships ModelMux and all its Python dependencies in /opt/modelmux/lib (a
`pip install --target` tree built for one Python minor version). This script runs the system
interpreter isolated from the rest of the machine (-I: no PYTHON* variables, no user site; -S: no
system site-packages), puts that tree on sys.path and calls the console entry point.

The tree is found relative to this file's real location (<root>/usr/bin/modelmux ->
<root>/opt/modelmux/lib), so a package unpacked under another root (dpkg-deb -x) runs too.
"""

import os
import site
import sys

BUILT_FOR = "@PYTHON_VERSION@"  # major.minor, filled in by build-deb.sh

_running = "{}.{}".format(*sys.version_info[:2])
if _running != BUILT_FOR:
    sys.stderr.write(
        f"modelmux: this package was built for Python {BUILT_FOR}, but {sys.executable} is "
        f"Python {_running}; install the modelmux package built for this distribution\n"
    )
    sys.exit(1)

_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
_lib = os.path.join(_root, "opt", "modelmux", "lib")
sys.path.insert(0, _lib)
site.addsitedir(_lib)  # honours .pth files in the tree, as a site-packages directory would

from modelmux.cli.main import main

sys.exit(main())
