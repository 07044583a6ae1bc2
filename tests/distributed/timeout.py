"""Run under ``mpiexec -n 2`` with ``hang`` or ``die``: rank 1 stops taking part (sleeps, or
exits) while rank 0 waits in an all_reduce with a 2 s timeout. Rank 0 must not wait forever: it
prints the error's one line and the job ends (the test checks the line and that it ended)."""
import os
import sys
import time

import minires as mr
import minires.distributed as dist

dist.init_process_group("mpi", timeout=2.0)
t = mr.ones(4)
dist.all_reduce(t)                            # both ranks alive: fine
if dist.get_rank() == 1:
    if sys.argv[1] == "die":
        os._exit(3)
    time.sleep(60)
    sys.exit(0)
try:
    dist.all_reduce(t)
except dist.DistributedTimeoutError as error:
    print("timeout:", error, flush=True)
    raise SystemExit(2)
