"""What the host-side layers send home: `POST /api/report` (docs/report-api.md).

Layer 2 (the hourly self-heal task) and Layer 3 (win-acme's post-renew step) report every run,
signed with their host's `report_secret`. A report that failed opens an incident for the host, a
repair is told to the channel, and a self-heal task that stops reporting is an incident too.
"""

from __future__ import annotations

# the incident problem codes reports add to the probe's and the host diagnosis's
REPORT_PROBLEMS = {
    "self_heal_failed": "a run of the self-heal task (Layer 2) reported ok = false",
    "post_renew_failed": "win-acme's post-renew step (Layer 3) reported ok = false",
    "self_heal_silent": "the self-heal task has not reported for twice its report_interval",
}
