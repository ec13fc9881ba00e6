"""``python -m evaluate`` from the repository root: :mod:`k8s_gpu_rl.evaluation.cli`.

Not installed (PyPI's ``evaluate`` is Hugging Face's): the installed command is
``k8s-gpu-rl evaluate`` (same options).
"""

import sys

from k8s_gpu_rl.evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
