"""The whole dp-vs-tp study from one command: ``python -m sglang_ext.study {check,quick,comprehensive}``.

Steps (each a call into the library that does the job, records as JSONL):
1 env (perf.comm.envcheck), 2 bandwidth (perf.comm.devbw, perf.comm.collectives), 3 latency and
4 scaling (sglang.bench_one_batch through perf.scaling), 5 serving (perf.serving.compare),
6 sp_pp (perf.prefill_bench), 7 profile (sglang_ext.profile when present), 8 report.
"""

from .config import STEPS, StudyConfig, load_config

__all__ = ["STEPS", "StudyConfig", "load_config"]
