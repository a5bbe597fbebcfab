"""`python -m stages <name>`: run one stage with params.yaml's kernel switches set before torch loads
(bignn/kernels.py says why they must come first)."""

import sys

from bignn.kernels import launch
from stages import STAGES

launch("stages", list(STAGES), sys.argv[1:])
