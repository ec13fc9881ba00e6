"""``python -m train`` from the repository root: :mod:`k8s_gpu_rl.agents.cli`.

Not installed: the installed command is ``k8s-gpu-rl train`` (same options).
"""

import sys

from k8s_gpu_rl.agents.cli import main

if __name__ == "__main__":
    sys.exit(main())
