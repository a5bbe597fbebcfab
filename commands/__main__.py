"""`python -m commands <name> [args]`: run one command with params.yaml's kernel switches set before torch
loads (bignn/kernels.py says why they must come first)."""

import sys

from bignn.kernels import launch
from commands import COMMANDS

launch("commands", list(COMMANDS), sys.argv[1:])
