"""``python -m sweep`` from the repository root: :mod:`k8s_gpu_rl.sweep.cli`.

Not installed: the installed command is ``k8s-gpu-rl sweep`` (same options).
"""

import sys

from k8s_gpu_rl.sweep.cli import main

if __name__ == "__main__":
    sys.exit(main())
