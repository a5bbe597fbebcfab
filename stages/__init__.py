"""Pipeline stages (see dvc.yaml) and the commands beside them.

Importing this package pins torch's kernel libraries to params.yaml's `kernels` before any stage or command
imports torch: `python -m stages.<name>`, DVC's stage processes and the tests all come through here first.
"""

from stages.common.kernels import mode_in_params, set_switches

set_switches(mode_in_params())
