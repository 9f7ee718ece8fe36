"""Peak memory of a benchmark's measured child process."""
from __future__ import annotations

import resource


def peak_rss_kb() -> int:
    """This process's own peak RSS: VmHWM, where Linux has it.

    Not ru_maxrss: Linux carries it across exec from the forked image, so a child started by a parent
    that has just seeded a million rankings reported the parent's size (448 MB at 1M) as its own."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
