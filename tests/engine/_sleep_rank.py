"""A stand-in engine rank for launcher tests: writes its pid and sleeps.

``python -m _sleep_rank OUT_DIR`` (with this folder on PYTHONPATH).  It starts one child
of its own, so the tests see that the launcher cleans up a rank's whole tree.  It does not
import torch (start-up cost); the real rendezvous is covered by test_sp_pp's launcher runs.
"""

import os
import subprocess
import sys
import time

out, rank = sys.argv[1], os.environ["RANK"]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
with open(os.path.join(out, f"rank{rank}.pid.tmp"), "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
os.replace(os.path.join(out, f"rank{rank}.pid.tmp"), os.path.join(out, f"rank{rank}.pid"))
time.sleep(300)
