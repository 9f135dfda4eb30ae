"""`otc chaos`: kill -9 random services of a running `otc up` while RFQs flow, then
prove nothing was lost: every RFQ reached a final state, every accepted one settled
or failed explicitly, and the invariant checker finds the services' books agree.

It drills the supervisor (`stack.infra.supervisor`, which brings each killed service
back) and the services' crash safety together. The kills are seeded, so a run that
finds a bug can be repeated in the same order, as far as the platform's timing
allows. Loopback only: the trader edge of this machine's `otc up` and the pids it
wrote down.

    report.py   what the traders saw, and the verdict on it (pure)
    kills.py    choosing a service and signalling only what is one of ours
    traders.py  patient traders: RFQs retried until the edge answers
    drill.py    the command: find the platform, run, check, judge
"""

from .drill import drill, run_chaos
from .report import Chaos, Report, Rfq

__all__ = ["Chaos", "Report", "Rfq", "drill", "run_chaos"]
