"""CPU time used so far by the processes of a benchmark, by kind, in seconds:
fhirledger (every replica), postgres (every backend and helper), haproxy and
wrk, plus the machine's total busy time, as one JSON line.

    python3 cpu.py            # prints {"fhirledger": 12.3, ..., "busy": 40.1, "cores": 2}

Two readings around a run give where its CPU went (see replicas.sh).
"""
import json
import os

KINDS = ("fhirledger", "postgres", "haproxy", "wrk")
TICKS = os.sysconf("SC_CLK_TCK")

used = {kind: 0.0 for kind in KINDS}
used["other"] = 0.0
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        continue
    # The command name is in parentheses and may contain spaces.
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    # utime and stime are fields 14 and 15 of stat(5); fields[0] is field 3.
    seconds = (int(fields[11]) + int(fields[12])) / TICKS
    kind = next((k for k in KINDS if name.startswith(k)), "other")
    used[kind] += seconds

with open("/proc/stat") as f:
    cpu = f.readline().split()[1:]
# user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
values = [int(v) for v in cpu[:8]]
used["busy"] = (sum(values) - values[3] - values[4]) / TICKS
used["cores"] = os.cpu_count()
print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in used.items()}))
