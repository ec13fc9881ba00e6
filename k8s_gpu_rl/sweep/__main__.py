"""``python -m k8s_gpu_rl.sweep`` (the same as ``python -m sweep`` in the repository root)."""

import sys

from k8s_gpu_rl.sweep.cli import main

sys.exit(main())
